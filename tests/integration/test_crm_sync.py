"""The diff-only CRM sync through the sql adapter: the embedded SQLite CRM and a PostgreSQL CRM.

The desired tags are written straight into mart.account_segments (the segmentation engine
has its own tests); the CRM is a real database table the adapter reads and updates.
"""

from __future__ import annotations

import random
import uuid
from datetime import date, datetime

import pytest
import sqlalchemy as sa

from crm_fixtures import crm_rows, crm_table, seed_crm
from postsales import warehouse
from postsales.crm.base import Change, CrmRecord, WriteResult, keeps_results
from postsales.crm.config import load_crm_sync
from postsales.crm.sql_adapter import SqlCrmAdapter
from postsales.crm.sync import (
    SafetyValveTripped,
    crm_sync_log,
    crm_sync_runs,
    crm_sync_state,
    plan_changes,
    sync,
)
from postsales.errors import AccessRefusedError
from postsales.retry import RetryPolicy
from postsales.segment.engine import account_segments
from postsales.segment.engine import ensure_tables as ensure_segment_tables

AS_OF = date(2026, 10, 31)
TAG_COLUMNS = (
    "Value_Tier__c",
    "Quadrant__c",
    "Segment_Lifecycle_Stage__c",
    "Health_Score__c",
    "Engagement_Model__c",
    "Case_Study_Candidate__c",
    "Segment_Updated_At__c",
)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def crm_url(request, tmp_path, monkeypatch):
    """An empty CRM table on SQLite (the embedded default's engine) or PostgreSQL."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'crm.sqlite'}"
    else:
        url = request.getfixturevalue("pg_database")
    engine = sa.create_engine(url)
    metadata = sa.MetaData()
    table = crm_table(metadata)
    with engine.begin() as conn:
        table.drop(conn, checkfirst=True)
        table.create(conn)
    monkeypatch.setenv("POSTSALES_CRM_SYNC_URL", url)
    yield url
    engine.dispose()


def segment_row(account_id: str, **values) -> dict:
    row = {
        "as_of_date": AS_OF,
        "account_id": account_id,
        "firmographic_segment": "51-200 · Technology & Media",
        "employee_band": "51-200",
        "industry_group": "Technology & Media",
        "revenue_band": "<10M",
        "value_tier": "SMB",
        "value_tier_source": "arr_band",
        "arr": 12000.0,
        "arr_band": "SMB",
        "arr_percentile_band": "Bottom 50%",
        "lifecycle_stage": "Adoption",
        "lifecycle_rule": "default",
        "status_segment": "Promoter · Healthy",
        "nps_category": "Promoter",
        "csat_band": "High",
        "health_band": "Healthy",
        "referenceable": False,
        "adoption_segment": "Steady",
        "adoption_rule": "default",
        "health_score": 71.234,
        "quadrant": "Grow",
        "quadrant_rule": "r",
        "recommended_quadrant": "Grow",
        "engagement_model": "tech-touch",
        "engagement_rule": "default",
        "case_study_candidate": False,
        "explanation": "{}",
        "rules_version": "test",
        "computed_at": datetime(2026, 11, 1),
    }
    return row | values


def write_segments(url: str, rows: list[dict], as_of: date = AS_OF) -> None:
    eng = warehouse.engine(url)
    warehouse.ensure_schema(eng)
    ensure_segment_tables(eng)
    with eng.begin() as conn:
        conn.execute(account_segments.delete().where(account_segments.c.as_of_date == as_of))
        conn.execute(account_segments.insert(), [r | {"as_of_date": as_of} for r in rows])


def fetch_all(url: str, table: sa.Table) -> list:
    with warehouse.engine(url).connect() as conn:
        return list(conn.execute(sa.select(table)))


NO_SLEEP = {"sleep": lambda seconds: None}


def test_first_push_dry_run_then_push_then_nothing(warehouse_url, crm_url):
    write_segments(
        warehouse_url,
        [
            segment_row("A1", value_tier="Mid-Market", quadrant="Protect", case_study_candidate=True),
            segment_row("A2"),
            segment_row("A3"),  # locked in the CRM
            segment_row("A4"),  # not in the CRM
        ],
    )
    seed_crm(
        crm_url,
        [
            {"Id": "A1", "Name": "One"},
            {"Id": "A2", "Name": "Two", "Quadrant__c": "Grow"},  # already holds our quadrant
            {"Id": "A3", "Name": "Three", "Value_Tier__c": "Enterprise", "Manual_Segment_Lock__c": 1},
            {"Id": "Z9", "Name": "Not ours"},
        ],
    )
    before = crm_rows(crm_url)

    first = sync(AS_OF, run_id="r1", **NO_SLEEP)
    assert first["mode"] == "dry_run" and "first push" in first["reason"]
    assert crm_rows(crm_url) == before and fetch_all(warehouse_url, crm_sync_log) == []
    assert first["skipped"] == {"manual_override_set_in_crm": 1, "not_in_crm": 1}
    # A1: 6 tags + stamp = 7 fields; A2: 5 tags (the CRM already holds Quadrant__c) + stamp = 6.
    assert (first["accounts_considered"], first["accounts_changed"], first["fields_changed"]) == (2, 2, 13)

    second = sync(AS_OF, run_id="r2", approve_first_push=True, approve_large_change=True, **NO_SLEEP)
    assert second["mode"] == "push" and second["fields_succeeded"] == 13 and second["fields_failed"] == 0
    assert second["write_calls"] == 1
    crm = crm_rows(crm_url)
    assert crm["A1"]["Value_Tier__c"] == "Mid-Market" and crm["A1"]["Quadrant__c"] == "Protect"
    assert crm["A1"]["Health_Score__c"] == pytest.approx(71.23)  # rounded to 2 decimals
    assert crm["A1"]["Case_Study_Candidate__c"] == 1 and crm["A2"]["Case_Study_Candidate__c"] == 0
    assert crm["A1"]["Segment_Updated_At__c"] == "2026-10-31"
    assert crm["A3"] == before["A3"] and crm["Z9"] == before["Z9"]  # locked and foreign rows untouched
    assert "A4" not in crm  # never created
    log_rows = fetch_all(warehouse_url, crm_sync_log)
    assert len(log_rows) == 13 and {r.status for r in log_rows} == {"success"} and {r.attempt for r in log_rows} == {1}
    assert len(fetch_all(warehouse_url, crm_sync_state)) == 13

    third = sync(AS_OF, run_id="r3", **NO_SLEEP)
    assert (third["mode"], third["fields_changed"], third["write_calls"]) == ("push", 0, 0)
    assert crm_rows(crm_url) == crm
    modes = {r.run_id: r.mode for r in fetch_all(warehouse_url, crm_sync_runs)}
    assert modes == {"r1": "dry_run", "r2": "push", "r3": "push"}


def test_nulls_manual_edits_and_the_stamp(warehouse_url, crm_url):
    write_segments(warehouse_url, [segment_row("A1"), segment_row("A2", health_score=None)])
    seed_crm(crm_url, [{"Id": "A1"}, {"Id": "A2", "Health_Score__c": 55.0}])
    sync(AS_OF, approve_first_push=True, approve_large_change=True, **NO_SLEEP)
    crm = crm_rows(crm_url)
    assert crm["A2"]["Health_Score__c"] == 55.0  # a null is never written over a value

    # A person edits a tag in the CRM: our value did not change, so it stays.
    engine = sa.create_engine(crm_url)
    with engine.begin() as conn:
        conn.execute(sa.text("""update crm_account set "Quadrant__c" = 'Protect' where "Id" = 'A1'"""))
    later = date(2026, 11, 30)
    write_segments(warehouse_url, [segment_row("A1"), segment_row("A2", health_score=None)], as_of=later)
    quiet = sync(later, **NO_SLEEP)
    assert quiet["fields_changed"] == 0  # and the stamp alone is never written
    assert crm_rows(crm_url)["A1"]["Quadrant__c"] == "Protect"
    assert crm_rows(crm_url)["A1"]["Segment_Updated_At__c"] == "2026-10-31"

    # Our value changes: it is written, with the new stamp.
    write_segments(warehouse_url, [segment_row("A1", quadrant="Manage"), segment_row("A2", health_score=None)], later)
    moved = sync(later, approve_large_change=True, **NO_SLEEP)
    assert moved["fields_changed"] == 2
    assert crm_rows(crm_url)["A1"]["Quadrant__c"] == "Manage"
    assert crm_rows(crm_url)["A1"]["Segment_Updated_At__c"] == "2026-11-30"
    engine.dispose()


def test_write_nulls_when_the_mapping_says_so(warehouse_url, crm_url):
    config = load_crm_sync()
    fields = dict(config.fields)
    fields["health_score"] = fields["health_score"].model_copy(update={"write_nulls": True})
    config = config.model_copy(update={"fields": fields})
    write_segments(warehouse_url, [segment_row("A2", health_score=None)])
    seed_crm(crm_url, [{"Id": "A2", "Health_Score__c": 55.0}])
    sync(AS_OF, config=config, approve_first_push=True, approve_large_change=True, **NO_SLEEP)
    assert crm_rows(crm_url)["A2"]["Health_Score__c"] is None


def test_safety_valve_stops_before_any_write(warehouse_url, crm_url):
    accounts = [f"A{i}" for i in range(10)]
    write_segments(warehouse_url, [segment_row(a) for a in accounts])
    seed_crm(crm_url, [{"Id": a} for a in accounts])
    sync(AS_OF, approve_first_push=True, approve_large_change=True, **NO_SLEEP)
    pushed = crm_rows(crm_url)
    # 4 of 10 accounts change quadrant: 40 % > max_changed_share 30 %.
    changed = [segment_row(a, quadrant="Manage" if i < 4 else "Grow") for i, a in enumerate(accounts)]
    later = date(2026, 11, 30)
    write_segments(warehouse_url, changed, as_of=later)
    with pytest.raises(SafetyValveTripped, match="4 of 10 accounts"):
        sync(later, run_id="blocked", **NO_SLEEP)
    assert crm_rows(crm_url) == pushed
    blocked = [r for r in fetch_all(warehouse_url, crm_sync_runs) if r.run_id == "blocked"]
    assert blocked[0].mode == "blocked" and blocked[0].write_calls == 0
    approved = sync(later, approve_large_change=True, **NO_SLEEP)
    assert approved["accounts_changed"] == 4
    assert [crm_rows(crm_url)[a]["Quadrant__c"] for a in accounts[:5]] == ["Manage"] * 4 + ["Grow"]


def test_a_key_matching_several_crm_records_is_not_written(warehouse_url, crm_url):
    write_segments(warehouse_url, [segment_row("A1"), segment_row("D1")])
    seed_crm(crm_url, [{"Id": "A1"}, {"Id": "D1", "Name": "first"}, {"Id": "D1", "Name": "second"}])
    result = sync(AS_OF, approve_first_push=True, approve_large_change=True, **NO_SLEEP)
    assert result["skipped"] == {"key_matches_several_crm_records": 1}
    assert {r["Value_Tier__c"] for r in crm_rows(crm_url).values() if r["Id"] == "D1"} == {None}


class FlakyAdapter:
    """The real sql adapter, but each record fails transiently with probability ``p`` (not written)."""

    def __init__(self, inner: SqlCrmAdapter, p: float, seed: int):
        self.inner, self.p, self.rng = inner, p, random.Random(seed)
        self.name, self.calls, self.attempts = "flaky", 0, []

    def describe(self) -> str:
        return self.inner.describe()

    def fetch(self, account_ids, crm_fields):
        return self.inner.fetch(account_ids, crm_fields)

    def update(self, changes: list[Change]) -> list[WriteResult]:
        self.calls += 1
        lucky = [c for c in changes if self.rng.random() >= self.p]
        failed = [c for c in changes if c not in lucky]
        self.attempts += [(c.account_id, f) for c in changes for f in c.fields]
        results = self.inner.update(lucky) if lucky else []
        return results + [
            WriteResult(c.account_id, c.crm_id, "failed_transient", "UNABLE_TO_LOCK_ROW", "x") for c in failed
        ]


class StoppingAdapter:
    """The real sql adapter writing the first ``keep`` changes, then raising ``error`` before the rest."""

    def __init__(self, inner: SqlCrmAdapter, keep: int, error: Exception):
        self.inner, self.keep, self.error = inner, keep, error
        self.name, self.calls = "stopping", 0

    def describe(self) -> str:
        return self.inner.describe()

    def fetch(self, account_ids, crm_fields):
        return self.inner.fetch(account_ids, crm_fields)

    @keeps_results
    def update(self, changes: list[Change]):
        self.calls += 1
        yield from self.inner.update(changes[: self.keep])
        raise self.error


@pytest.mark.parametrize(
    ("error", "reason"),
    [
        (AccessRefusedError("UNAUTHORIZED", "renew the token"), "stopped: UNAUTHORIZED: renew the token"),
        (KeyError("a bug quoting s3cr3t"), "stopped: KeyError (see the task log)"),
    ],
)
def test_a_push_stopped_part_way_audits_what_was_written_then_fails(warehouse_url, crm_url, error, reason):
    accounts = [f"A{i}" for i in range(1, 6)]
    write_segments(warehouse_url, [segment_row(a) for a in accounts])
    seed_crm(crm_url, [{"Id": a} for a in accounts])
    config = load_crm_sync()
    inner = SqlCrmAdapter(config.sql, "Id", RetryPolicy(sleep=lambda s: None), url=crm_url)
    adapter = StoppingAdapter(inner, 2, error)

    with pytest.raises(type(error)) as raised:
        sync(AS_OF, config=config, adapter=adapter, run_id="cut", approve_first_push=True,
             approve_large_change=True, **NO_SLEEP)  # fmt: skip

    assert raised.value is error and raised.value.__context__ is None
    # The two accounts written are audited and in the state (7 fields each): the next run skips them.
    written = {r.account_id for r in fetch_all(warehouse_url, crm_sync_log)}
    assert written == {a for a, row in crm_rows(crm_url).items() if row["Value_Tier__c"] is not None} == {"A1", "A2"}
    assert {r.status for r in fetch_all(warehouse_url, crm_sync_log)} == {"success"}
    assert len(fetch_all(warehouse_url, crm_sync_state)) == 14
    [run] = fetch_all(warehouse_url, crm_sync_runs)
    assert (run.run_id, run.mode, run.reason) == ("cut", "push", reason)
    assert (run.fields_changed, run.fields_succeeded, run.fields_failed) == (35, 14, 0)
    assert "s3cr3t" not in run.report

    # The next run sends only the three left.
    result = sync(AS_OF, config=config, adapter=inner, run_id="next", approve_large_change=True, **NO_SLEEP)
    assert (result["accounts_changed"], result["fields_succeeded"]) == (3, 21)


class DailyLimitAdapter(StoppingAdapter):
    """One request, refused for the day: every record fails transiently, later rounds send nothing."""

    def __init__(self, inner: SqlCrmAdapter):
        super().__init__(inner, 0, RuntimeError("unused"))
        self.rounds = 0

    def update(self, changes: list[Change]) -> list[WriteResult]:
        self.rounds += 1
        self.calls = 1  # the first round's request; none after it
        return [WriteResult(c.account_id, c.crm_id, "failed_transient", "DAILY_LIMIT", "spent") for c in changes]


def test_a_round_that_sends_nothing_is_the_last(warehouse_url, crm_url):
    """A daily limit met: the second round sent no request, so there is no third one after a backoff."""
    write_segments(warehouse_url, [segment_row(a) for a in ("A1", "A2")])
    seed_crm(crm_url, [{"Id": a} for a in ("A1", "A2")])
    config = load_crm_sync()
    config = config.model_copy(update={"retries": config.retries.model_copy(update={"attempts": 4})})
    adapter = DailyLimitAdapter(SqlCrmAdapter(config.sql, "Id", RetryPolicy(sleep=lambda s: None), url=crm_url))
    sleeps: list[float] = []

    result = sync(AS_OF, config=config, adapter=adapter, approve_first_push=True, approve_large_change=True,
                  sleep=sleeps.append)  # fmt: skip

    assert adapter.rounds == 2 and len(sleeps) == 1
    assert (result["fields_changed"], result["fields_failed"], result["write_calls"]) == (14, 14, 1)
    assert sorted(r.attempt for r in fetch_all(warehouse_url, crm_sync_log)) == [1] * 14 + [2] * 14


def test_random_transient_failures_end_with_every_record_synced_exactly_once(warehouse_url, crm_url):
    accounts = [f"A{i:03d}" for i in range(60)]
    tiers = ["SMB", "Mid-Market", "Enterprise"]
    write_segments(warehouse_url, [segment_row(a, value_tier=tiers[i % 3]) for i, a in enumerate(accounts)])
    locked = {"A007", "A042"}
    seed_crm(crm_url, [{"Id": a, "Manual_Segment_Lock__c": int(a in locked), "Quadrant__c": "keep"} for a in accounts])
    config = load_crm_sync()
    config = config.model_copy(update={"retries": config.retries.model_copy(update={"attempts": 2})})
    flaky = FlakyAdapter(SqlCrmAdapter(config.sql, "Id", RetryPolicy(sleep=lambda s: None), url=crm_url), 0.5, 7)
    runs = 0
    while True:
        runs += 1
        result = sync(AS_OF, config=config, adapter=flaky, approve_first_push=True, approve_large_change=True,
                      run_id=f"run{runs}-{uuid.uuid4().hex[:4]}", **NO_SLEEP)  # fmt: skip
        if result["fields_changed"] == 0:
            break
        assert runs < 30
    assert runs > 2  # the failures really spanned several runs
    crm = crm_rows(crm_url)
    for i, account in enumerate(accounts):
        if account in locked:
            assert crm[account]["Quadrant__c"] == "keep" and crm[account]["Value_Tier__c"] is None
        else:
            assert crm[account]["Value_Tier__c"] == tiers[i % 3] and crm[account]["Quadrant__c"] == "Grow"
    log_rows = fetch_all(warehouse_url, crm_sync_log)
    # A log row for every attempt of every field, and exactly one success per field.
    assert len(log_rows) == len(flaky.attempts)
    successes = [(r.account_id, r.crm_field) for r in log_rows if r.status == "success"]
    assert len(successes) == len(set(successes)) == len(fetch_all(warehouse_url, crm_sync_state))
    assert not {a for a, _ in successes} & locked
    # 58 unlocked accounts x (6 tags + stamp); quadrant differs from "keep" everywhere.
    assert len(successes) == 58 * 7


def test_call_counts(warehouse_url, crm_url):
    """Chunks of 500 updates, one transaction each; nothing changed means no write call."""
    accounts = [f"A{i:04d}" for i in range(1200)]
    write_segments(warehouse_url, [segment_row(a) for a in accounts])
    seed_crm(crm_url, [{"Id": a} for a in accounts])
    first = sync(AS_OF, approve_first_push=True, approve_large_change=True, **NO_SLEEP)
    assert first["write_calls"] == 3 and first["fields_succeeded"] == 1200 * 7
    assert sync(AS_OF, **NO_SLEEP)["write_calls"] == 0


def test_an_unknown_never_replaces_a_value_in_the_crm(warehouse_url, crm_url):
    # Unknown (Unclassified for the quadrant) = the segmentation lacked an input (say, the wallet
    # potential was emptied in the CRM).
    write_segments(warehouse_url, [segment_row("A1"), segment_row("A2"), segment_row("A3")])
    seed_crm(crm_url, [{"Id": "A1"}, {"Id": "A2"}, {"Id": "A3"}])
    sync(AS_OF, approve_first_push=True, approve_large_change=True, **NO_SLEEP)
    assert [crm_rows(crm_url)[a]["Quadrant__c"] for a in ("A1", "A2", "A3")] == ["Grow"] * 3

    later = date(2026, 11, 30)
    unknown = {"quadrant": "Unclassified", "engagement_model": "Unknown"}
    # A1's quadrant is Unclassified and its engagement model Unknown; a person emptied A2's quadrant in
    # the CRM and set A3's engagement model to pooled.
    write_segments(
        warehouse_url,
        [segment_row("A1", **unknown), segment_row("A2", **unknown), segment_row("A3", engagement_model="Unknown")],
        as_of=later,
    )
    engine = sa.create_engine(crm_url)
    with engine.begin() as conn:
        conn.execute(sa.text("""update crm_account set "Quadrant__c" = null where "Id" = 'A2'"""))
        conn.execute(sa.text("""update crm_account set "Engagement_Model__c" = 'pooled' where "Id" = 'A3'"""))
    result = sync(later, approve_large_change=True, **NO_SLEEP)
    crm = crm_rows(crm_url)
    # Kept: our earlier Grow (A1), the tech-touch we pushed (A1, A2), the person's pooled (A3).
    assert [crm[a]["Quadrant__c"] for a in ("A1", "A2", "A3")] == ["Grow", "Unclassified", "Grow"]
    assert [crm[a]["Engagement_Model__c"] for a in ("A1", "A2", "A3")] == ["tech-touch", "tech-touch", "pooled"]
    # A2's empty quadrant gets Unclassified (there is nothing to lose), with the stamp.
    assert result["fields_changed"] == 2 and crm["A2"]["Segment_Updated_At__c"] == "2026-11-30"
    with warehouse.engine(warehouse_url).connect() as conn:
        report = conn.execute(sa.select(crm_sync_runs.c.report).where(crm_sync_runs.c.as_of_date == later)).scalar()
    assert '"unknowns_not_written": 4' in report  # A1 quadrant and engagement, A2 and A3 engagement

    # Once the input is filled in again, the real value is written as usual.
    write_segments(warehouse_url, [segment_row("A1", quadrant="Manage"), segment_row("A2"), segment_row("A3")], later)
    sync(later, approve_large_change=True, **NO_SLEEP)
    crm = crm_rows(crm_url)
    assert [crm[a]["Quadrant__c"] for a in ("A1", "A2", "A3")] == ["Manage", "Grow", "Grow"]
    engine.dispose()


@pytest.mark.parametrize("held", ["n/a", "71,4", "", None, [71.23]])
def test_a_crm_value_that_is_no_number_is_replaced_not_a_crash(held):
    """A CRM admin typed text into the (text) field a number is synced to: one such record made the
    whole sync fail with "could not convert string to float", naming neither the record nor the field."""
    config = load_crm_sync()
    desired = {"A1": {"health_score": 71.234, "value_tier": "SMB"}}
    crm = {"A1": CrmRecord("A1", "001A1", {"Health_Score__c": held, "Value_Tier__c": "SMB"})}

    plan = plan_changes(desired, crm, {}, config, AS_OF)

    assert [c.fields for c in plan.changes] == [{"Health_Score__c": 71.23, "Segment_Updated_At__c": "2026-10-31"}]
    assert plan.old_values[("A1", "Health_Score__c")] == (None if held in ("", None) else str(held))
