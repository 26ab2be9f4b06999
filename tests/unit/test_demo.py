"""Tests for the synthetic demo data generator (postsales_dev.demo)."""

from __future__ import annotations

import json
import re
import sqlite3
from collections import Counter
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from postsales_dev import demo

N = 300
SEED = 11
AS_OF = demo.DEFAULT_AS_OF
AS_OF_TS = pd.Timestamp(AS_OF)
CSV_FILES = ("accounts.csv", "contracts.csv", "survey_responses.csv")
FAR_FUTURE = pd.Timestamp("2200-01-01")


def _csv(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, dtype=str, keep_default_na=False)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("demo") / "run1"
    summary = demo.generate(out, accounts=N, seed=SEED)
    return out, summary


@pytest.fixture(scope="module")
def data(dataset: tuple[Path, dict]) -> dict:
    out, _ = dataset
    manifest = json.loads((out / "_bad_rows.json").read_text(encoding="utf-8"))
    accounts = _csv(out / "accounts.csv")
    contracts = _csv(out / "contracts.csv")
    surveys = _csv(out / "survey_responses.csv")
    bad_contract_ids = {m["key"]["contract_id"] for m in manifest if m["table"] == "contracts"}
    good = contracts[~contracts["contract_id"].isin(bad_contract_ids)].copy()
    good["start"] = pd.to_datetime(good["start_date"], format="%Y-%m-%d")
    good["end"] = pd.to_datetime(good["end_date"].replace("", None), format="%Y-%m-%d")
    good["end_or_open"] = good["end"].fillna(FAR_FUTURE)
    good["arr_num"] = good["arr"].astype(float)
    usage_parts = []
    for path in sorted((out / "usage_daily").glob("*.parquet")):
        table = pq.read_table(path).to_pandas()
        table["file_date"] = path.stem
        usage_parts.append(table)
    usage = pd.concat(usage_parts, ignore_index=True)
    return {
        "out": out,
        "manifest": manifest,
        "accounts": accounts,
        "contracts": contracts,
        "good": good,
        "surveys": surveys,
        "usage": usage,
        "usage_files": len(usage_parts),
    }


def _spans(good: pd.DataFrame) -> pd.DataFrame:
    """Merge each account's contracts into continuous periods of service."""
    rows = []
    for account_id, grp in good.sort_values(["account_id", "start"]).groupby("account_id"):
        start = end = None
        for s, e in zip(grp["start"], grp["end_or_open"], strict=True):
            if end is not None and s <= end + pd.Timedelta(days=1):
                end = max(end, e)
                continue
            if end is not None:
                rows.append((account_id, start, end))
            start, end = s, e
        rows.append((account_id, start, end))
    return pd.DataFrame(rows, columns=["account_id", "start", "end"])


def _manifest_keys(manifest: list[dict], problem: str) -> list[dict]:
    return [m["key"] for m in manifest if m["problem"] == problem]


# --------------------------------------------------------------------------
# determinism, layout, summary
# --------------------------------------------------------------------------


def test_same_seed_is_byte_identical_and_other_seed_differs(dataset, tmp_path):
    out, summary = dataset
    again = demo.generate(tmp_path / "again", accounts=N, seed=SEED)
    assert {k: v for k, v in again.items() if k != "out_dir"} == {k: v for k, v in summary.items() if k != "out_dir"}
    for name in (*CSV_FILES, "_bad_rows.json"):
        assert (tmp_path / "again" / name).read_bytes() == (out / name).read_bytes(), name
    for day in ("2024-06-03", AS_OF.isoformat()):
        rel = f"usage_daily/{day}.parquet"
        assert (tmp_path / "again" / rel).read_bytes() == (out / rel).read_bytes(), rel

    demo.generate(tmp_path / "other", accounts=N, seed=SEED + 1)
    for name in CSV_FILES:
        assert (tmp_path / "other" / name).read_bytes() != (out / name).read_bytes(), name


def test_files_and_columns(data):
    out = data["out"]
    assert list(data["accounts"].columns) == list(demo.ACCOUNT_COLUMNS)
    assert list(data["contracts"].columns) == list(demo.CONTRACT_COLUMNS)
    assert list(data["surveys"].columns) == list(demo.SURVEY_COLUMNS)
    assert (out / "crm.sqlite").is_file()
    # one usage file per day of the three-year history, named by date
    assert data["usage_files"] == demo.HISTORY_DAYS
    first = AS_OF - timedelta(days=demo.HISTORY_DAYS - 1)
    assert (out / "usage_daily" / f"{first.isoformat()}.parquet").is_file()
    assert (out / "usage_daily" / f"{AS_OF.isoformat()}.parquet").is_file()
    schema = pq.read_schema(out / "usage_daily" / f"{AS_OF.isoformat()}.parquet")
    assert schema.names == list(demo.USAGE_COLUMNS)
    assert str(schema.field("usage_date").type) == "date32[day]"
    for col in ("active_users", "licensed_seats", "events", "features_used"):
        assert str(schema.field(col).type) == "int64"
    assert str(schema.field("account_id").type) == "string"


def test_summary_matches_files(dataset, data):
    _, summary = dataset
    assert summary["accounts"] == len(data["accounts"])
    assert summary["contracts"] == len(data["contracts"])
    assert summary["survey_responses"] == len(data["surveys"])
    assert summary["usage_rows"] == len(data["usage"])
    assert summary["usage_files"] == data["usage_files"]
    assert summary["bad_rows"] == len(data["manifest"])
    assert summary["distinct_accounts"] == N


def test_value_formats(data):
    ts = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}$")
    day = re.compile(r"^\d{4}-\d{2}-\d{2}$")
    acc, con, sur = data["accounts"], data["contracts"], data["surveys"]
    for col in ("created_at", "updated_at"):
        assert acc[col].str.match(ts).all(), col
    assert con["updated_at"].str.match(ts).all()
    assert sur["responded_at"].str.match(ts).all()
    assert con["start_date"].str.match(day).all()
    assert (con["end_date"].str.match(day) | (con["end_date"] == "")).all()
    assert (acc["go_live_date"].str.match(day) | (acc["go_live_date"] == "")).all()
    assert set(acc["referenceable"]) == {"true", "false"}
    assert set(acc["segment_override"]) <= {"", *demo.SEGMENTS}
    good_arr = data["good"]["arr"]
    assert good_arr.str.match(r"^\d+(\.\d{1,2})?$").all()
    assert set(acc["industry"]) <= set(demo.INDUSTRIES)
    assert set(acc["country"]) <= set(demo.COUNTRIES)
    emp = acc["employee_count"].astype(int)
    assert emp.between(5, 200_000).all()


# --------------------------------------------------------------------------
# bad rows
# --------------------------------------------------------------------------


def test_every_bad_row_kind_is_in_manifest_and_in_files(data):
    manifest = data["manifest"]
    counts = Counter(m["problem"] for m in manifest)
    assert set(counts) == set(demo.BAD_ROW_KINDS)
    for m in manifest:
        assert m["table"] == demo.BAD_ROW_KINDS[m["problem"]]

    acc, con, sur, usage = data["accounts"], data["contracts"], data["surveys"], data["usage"]
    ids = set(acc.loc[acc["account_id"] != "", "account_id"])

    # accounts: exactly the manifest rows are broken
    null_rows = acc[acc["account_id"] == ""]
    assert sorted(null_rows["name"]) == sorted(k["name"] for k in _manifest_keys(manifest, "null_account_id"))
    dup_counts = acc[acc["account_id"] != ""]["account_id"].value_counts()
    dup_ids = set(dup_counts[dup_counts > 1].index)
    assert dup_ids == {k["account_id"] for k in _manifest_keys(manifest, "duplicate_account_id")}
    for account_id in dup_ids:
        assert acc.loc[acc["account_id"] == account_id, "name"].nunique() > 1
    stage = acc["lifecycle_stage"]
    odd_stage = set(acc.loc[(stage != "") & ~stage.isin(demo.LIFECYCLE_STAGES), "account_id"])
    assert odd_stage == {k["account_id"] for k in _manifest_keys(manifest, "unknown_lifecycle_stage")}

    # contracts
    arr = pd.to_numeric(con["arr"], errors="coerce")
    assert set(con.loc[arr.isna(), "contract_id"]) == {
        k["contract_id"] for k in _manifest_keys(manifest, "non_numeric_arr")
    }
    assert set(con.loc[arr < 0, "contract_id"]) == {k["contract_id"] for k in _manifest_keys(manifest, "negative_arr")}
    assert set(con.loc[(con["end_date"] != "") & (con["end_date"] < con["start_date"]), "contract_id"]) == {
        k["contract_id"] for k in _manifest_keys(manifest, "end_before_start")
    }
    assert set(con.loc[~con["account_id"].isin(ids), "contract_id"]) == {
        k["contract_id"] for k in _manifest_keys(manifest, "unknown_account_id")
    }
    assert con["contract_id"].is_unique

    # surveys
    score = sur["score"].astype(int)
    out_of_range = ((sur["survey_type"] == "nps") & ~score.between(0, 10)) | (
        (sur["survey_type"] == "csat") & ~score.between(1, 5)
    )
    bad_keys = {tuple(k.values()) for k in _manifest_keys(manifest, "score_out_of_range")}
    assert set(map(tuple, sur.loc[out_of_range, list(demo.SURVEY_COLUMNS[:3])].to_numpy())) == bad_keys
    assert {11, -1} & set(score[out_of_range])
    assert not sur.duplicated(list(demo.SURVEY_COLUMNS[:3])).any()

    # usage: future-dated rows sit in the as_of file
    usage_date = pd.to_datetime(usage["usage_date"])
    future = usage[usage_date > AS_OF_TS]
    assert (future["file_date"] == AS_OF.isoformat()).all()
    assert {(r.account_id, str(r.usage_date)) for r in future.itertuples()} == {
        (k["account_id"], k["usage_date"]) for k in _manifest_keys(manifest, "future_usage_date")
    }

    # about 1 % of the CSV rows are bad
    csv_rows = len(acc) + len(con) + len(sur)
    csv_bad = sum(v for k, v in counts.items() if k != "future_usage_date")
    assert 0.004 <= csv_bad / csv_rows <= 0.02


# --------------------------------------------------------------------------
# contracts
# --------------------------------------------------------------------------


def test_good_contracts_have_sane_dates(data):
    good = data["good"]
    ended = good["end"].notna()
    assert (good.loc[ended, "end"] >= good.loc[ended, "start"]).all()
    assert (good["start"] <= AS_OF_TS).all()
    assert (good["arr_num"] >= 0).all()
    assert (good["updated_at"] <= f"{AS_OF.isoformat()}T23:59:59").all()
    # evergreen (empty end_date) contracts and free pilots both exist
    assert (~ended).sum() >= 1
    assert ((good["arr_num"] == 0) & (good["plan"] == "Pilot")).sum() >= 1
    # the 2025 pricing change introduces a new plan name
    new_plan = good[good["plan"] == "Growth 2025"]
    assert len(new_plan) > 0
    assert (new_plan["start"] >= pd.Timestamp(demo.PRICING_CHANGE_DATE)).all()
    # ... but a co-termed add-on keeps the plan of the contract it extends
    change = pd.Timestamp(demo.PRICING_CHANGE_DATE)
    growth = good[good["plan"] == "Growth"]
    late = growth[growth["start"] >= change].merge(growth[growth["start"] < change], on="account_id")
    extends = (late["start_y"] < late["start_x"]) & (late["end_y"] == late["end_x"])
    assert late[extends]["contract_id_x"].nunique() == (growth["start"] >= change).sum()


def test_renewals_start_the_day_after_the_previous_end(data):
    good = data["good"]
    gaps = []
    for _, grp in good.groupby("account_id"):
        starts = np.sort(grp["start"].to_numpy())
        for end in grp.loc[grp["end"].notna() & (grp["end"] < AS_OF_TS), "end"]:
            later = starts[starts > np.datetime64(end)]
            if later.size:
                gaps.append(int((later[0] - np.datetime64(end)) / np.timedelta64(1, "D")))
    gaps = np.asarray(gaps)
    # either a renewal starting the next day, or a reactivation after >= 2 months
    assert ((gaps == 1) | (gaps >= 60)).all(), sorted(set(gaps.tolist()))
    assert (gaps == 1).sum() >= N // 2
    # annual terms: start + 12 months - 1 day
    annual = good[good["end"].notna() & (good["plan"] != "Pilot")]
    term_days = (annual["end"] - annual["start"]).dt.days + 1
    assert term_days.isin([365, 366]).mean() > 0.7


def test_churn_rate_is_realistic(data):
    spans = _spans(data["good"])
    rates = []
    for years_back in (1, 2):
        lo = AS_OF_TS - pd.Timedelta(days=365 * years_back)
        hi = lo + pd.Timedelta(days=365)
        at_start = spans[(spans["start"] <= lo) & (spans["end"] >= lo)]
        if len(at_start) < 50:
            continue
        churned = at_start[(at_start["end"] < hi) & (at_start["end"] < AS_OF_TS)]
        rates.append(len(churned) / len(at_start))
    assert rates
    for rate in rates:
        assert 0.05 <= rate <= 0.25, rates


def test_tier_mix(data):
    good = data["good"]
    first = good[good["arr_num"] > 0].sort_values("start").groupby("account_id")["arr_num"].first()
    smb = (first < 25_000).mean()
    ent = (first >= 100_000).mean()
    mid = 1 - smb - ent
    assert 0.60 <= smb <= 0.80
    assert 0.15 <= mid <= 0.35
    assert 0.015 <= ent <= 0.11
    assert first.max() >= 300_000  # a handful of very large accounts


# --------------------------------------------------------------------------
# accounts
# --------------------------------------------------------------------------


def test_account_dates_and_profile(data):
    acc = data["accounts"]
    good = data["good"]
    clean = acc[(acc["account_id"] != "") & ~acc["account_id"].duplicated(keep=False)].set_index("account_id")
    first_start = good.groupby("account_id")["start"].min()
    created = pd.to_datetime(clean["created_at"])
    updated = pd.to_datetime(clean["updated_at"])
    assert (created < first_start.reindex(clean.index)).all()
    assert (updated >= created).all()
    assert (updated <= AS_OF_TS + pd.Timedelta(days=1)).all()
    assert (updated >= AS_OF_TS - pd.Timedelta(days=90)).mean() > 0.2  # many recent updates

    live = clean["go_live_date"] != ""
    go_live = pd.to_datetime(clean.loc[live, "go_live_date"])
    lag = (go_live - first_start.reindex(go_live.index)).dt.days
    assert lag.between(30, 120).all()
    assert (go_live <= AS_OF_TS).all()
    # not live yet -> still implementing (or blank / deliberately bad)
    assert set(clean.loc[~live, "lifecycle_stage"]) <= {"Implementation", "", "Onboarding"}
    stages = clean["lifecycle_stage"]
    assert set(demo.LIFECYCLE_STAGES) <= set(stages)
    assert 0.04 <= (stages == "").mean() <= 0.18

    # wallet potential >= current ARR for most accounts
    cur = good[(good["start"] <= AS_OF_TS) & (good["end_or_open"] >= AS_OF_TS)].groupby("account_id")["arr_num"].sum()
    wallet = clean["wallet_potential_arr"].astype(float).reindex(cur.index)
    assert (wallet >= cur).mean() >= 0.85
    # employees correlate with ARR
    first = good[good["arr_num"] > 0].sort_values("start").groupby("account_id")["arr_num"].first()
    both = pd.concat([clean["employee_count"].astype(float), first], axis=1, join="inner")
    assert np.corrcoef(np.log(both.iloc[:, 0]), np.log(both.iloc[:, 1]))[0, 1] > 0.5


def test_health_signal_in_surveys_and_usage(data):
    good, sur, usage = data["good"], data["surveys"], data["usage"]
    spans = _spans(good)
    churned = set(spans.loc[spans["end"] < AS_OF_TS, "account_id"])
    nps = sur[(sur["survey_type"] == "nps")].copy()
    nps["score"] = nps["score"].astype(int)
    nps = nps[nps["score"].between(0, 10)]
    assert nps[nps["account_id"].isin(churned)]["score"].mean() < nps[~nps["account_id"].isin(churned)]["score"].mean()

    last_end = spans[spans["end"] < AS_OF_TS].groupby("account_id")["end"].max()
    u = usage[pd.to_datetime(usage["usage_date"]) <= AS_OF_TS].copy()
    u["ratio"] = u["active_users"] / u["licensed_seats"]
    days_left = (u["account_id"].map(last_end) - pd.to_datetime(u["usage_date"])).dt.days
    before_churn = days_left.between(0, 60)
    assert u.loc[before_churn, "ratio"].mean() < 0.8 * u.loc[~before_churn, "ratio"].mean()


# --------------------------------------------------------------------------
# usage
# --------------------------------------------------------------------------


def test_usage_only_on_days_with_an_active_contract(data):
    usage, good = data["usage"], data["good"]
    u = usage.copy()
    u["day"] = pd.to_datetime(u["usage_date"])
    future = u["day"] > AS_OF_TS
    u = u[~future]
    assert (u["usage_date"].astype(str) == u["file_date"]).all()
    merged = u.reset_index().merge(good[["account_id", "start", "end_or_open"]], on="account_id")
    covered = merged[(merged["start"] <= merged["day"]) & (merged["end_or_open"] >= merged["day"])]
    assert covered["index"].nunique() == len(u)
    assert not u.duplicated(["account_id", "usage_date"]).any()

    # and every account-day with an active contract has a row
    spans = _spans(good)
    expected = sum(
        (min(e, AS_OF_TS) - max(s, AS_OF_TS - pd.Timedelta(days=demo.HISTORY_DAYS - 1))).days + 1
        for s, e in zip(spans["start"], spans["end"], strict=True)
    )
    assert len(u) == expected

    assert (u["licensed_seats"] >= 1).all()
    assert (u["active_users"] >= 0).all()
    assert (u["active_users"] <= u["licensed_seats"]).all()
    assert (u["events"] >= 0).all()
    assert u["features_used"].between(0, 40).all()
    weekday = u["day"].dt.day_of_week < 5
    assert u.loc[weekday, "active_users"].mean() > 1.5 * u.loc[~weekday, "active_users"].mean()


# --------------------------------------------------------------------------
# CRM
# --------------------------------------------------------------------------


def test_crm_sqlite_mirrors_the_csv_files(data):
    with sqlite3.connect(data["out"] / "crm.sqlite") as db:
        count = {t: db.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0] for t in demo.CRM_TABLES}
        assert count["crm_account"] == len(data["accounts"])
        assert count["crm_contract"] == len(data["contracts"])
        assert count["crm_survey_response"] == len(data["surveys"])
        cols = [r[1] for r in db.execute("PRAGMA table_info(crm_account)")]
        for col in (
            "Id",
            "Wallet_Potential_ARR__c",
            "Value_Tier__c",
            "Quadrant__c",
            "Segment_Lifecycle_Stage__c",
            "Health_Score__c",
            "Engagement_Model__c",
            "Case_Study_Candidate__c",
            "Segment_Updated_At__c",
            "Manual_Segment_Lock__c",
        ):
            assert col in cols
        locked = db.execute("SELECT SUM(Manual_Segment_Lock__c) FROM crm_account").fetchone()[0]
        assert 1 <= locked <= 0.05 * count["crm_account"]
        assert db.execute("SELECT COUNT(*) FROM crm_account WHERE Value_Tier__c IS NOT NULL").fetchone()[0] == 0
        assert db.execute("SELECT COUNT(*) FROM crm_account WHERE Id IS NULL").fetchone()[0] >= 1
        bad_id = _manifest_keys(data["manifest"], "non_numeric_arr")[0]["contract_id"]
        value, kind = db.execute("SELECT ARR__c, typeof(ARR__c) FROM crm_contract WHERE Id = ?", (bad_id,)).fetchone()
        assert (value, kind) == ("n/a", "text")
        assert db.execute("SELECT typeof(ARR__c) FROM crm_contract WHERE Plan__c = 'Starter' LIMIT 1").fetchone()[
            0
        ] == ("real")
        assert {r[0] for r in db.execute("SELECT DISTINCT Referenceable__c FROM crm_account")} == {0, 1}


# --------------------------------------------------------------------------
# parameters and CLI
# --------------------------------------------------------------------------


def test_custom_as_of_and_cli(tmp_path, capsys):
    as_of = date(2025, 6, 30)
    assert demo.main(["--accounts", "40", "--seed", "3", "--out", str(tmp_path), "--as-of", as_of.isoformat()]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["as_of"] == as_of.isoformat()
    files = sorted(p.stem for p in (tmp_path / "usage_daily").glob("*.parquet"))
    assert len(files) == demo.HISTORY_DAYS
    assert files[-1] == as_of.isoformat()
    con = _csv(tmp_path / "contracts.csv")
    assert (con["start_date"] <= as_of.isoformat()).all()
    assert (_csv(tmp_path / "survey_responses.csv")["responded_at"] <= f"{as_of.isoformat()}T23:59:59").all()


def test_rejects_bad_arguments(tmp_path):
    with pytest.raises(ValueError):
        demo.generate(tmp_path, accounts=0, seed=1)
    with pytest.raises(ValueError):
        demo.generate(tmp_path, accounts=10, seed=-1)
