"""The segmentation report on the hand-placed accounts of tests/segment_fixtures.py (PLANE_ACCOUNTS).

Expected values by hand: thresholds share 0.8, wallet 25,000; capacity weights high-touch 1,
pooled 0.25, tech-touch 0.
"""

from __future__ import annotations

import re
import subprocess
from datetime import date, datetime
from types import SimpleNamespace

import pytest
import sqlalchemy as sa

import segment_fixtures as fx
from browser import chromium_flags, chromium_or_skip
from postsales import warehouse
from postsales.crm import sync
from postsales.reports.segmentation_report import (
    COLORS,
    REGION_FILLS,
    capacity_weights,
    focus_section,
    scatter,
    write_report,
)
from postsales.segment.rules import SegmentationRules, load_rules
from postsales.segment.sensitivity import quadrant_sensitivity, stored_differences

AS_OF = date(2024, 6, 30)
BEFORE = date(2024, 5, 31)
REMOTE = re.compile(r"""(?:src|href)\s*=\s*["']?(?:https?:)?//|url\(\s*["']?(?:https?:)?//""", re.IGNORECASE)


def test_quadrants_of_the_placed_accounts(warehouse_url):
    fx.store_segments(warehouse_url, fx.PLANE_ACCOUNTS, AS_OF)
    got = {a: (r["quadrant"], r["engagement_model"]) for a, r in fx.segments(warehouse_url, AS_OF).items()}
    assert got == {
        "A": ("Grow", "pooled"), "B": ("Protect", "high-touch"), "C": ("Grow", "high-touch"),
        "D": ("Grow", "high-touch"), "E": ("Manage", "tech-touch"), "F": ("Grow", "pooled"),
        "G": ("Re-evaluate", "tech-touch"), "H": ("Manage", "tech-touch"), "I": ("Protect", "high-touch"),
        "J": ("Unclassified", "Unknown"),  # SMB: smb_to_grow reads the quadrant J lacks
    }  # fmt: skip


def test_focus_check(warehouse_url):
    fx.store_segments(warehouse_url, fx.PLANE_ACCOUNTS, AS_OF)
    with warehouse.engine(warehouse_url).connect() as conn:
        rows = warehouse.query(conn, "reports", "quadrant_summary", as_of_date=AS_OF, **capacity_weights())
    got = {
        r.quadrant: (r.account_count, float(r.arr), r.unrealized_wallet and float(r.unrealized_wallet),
                     float(r.capacity), r.capacity_share and float(r.capacity_share))
        for r in rows
    }  # fmt: skip
    models = {
        r.quadrant: (r.high_touch_accounts, r.pooled_accounts, r.tech_touch_accounts, r.other_accounts) for r in rows
    }
    assert models == {
        "Grow": (2, 2, 0, 0), "Protect": (2, 0, 0, 0), "Re-evaluate": (0, 0, 1, 0), "Manage": (0, 0, 2, 0),
        "Unclassified": (0, 0, 0, 1),  # J: Unknown
    }  # fmt: skip
    # Capacity: Grow A .25 + C 1 + D 1 + F .25 = 2.5; Protect B 1 + I 1 = 2; the rest tech-touch or Unknown (J),
    # 0: 4.5 in all.
    # Unrealised: Grow 80,000 + 14,000 + 15,000 + 21,000; Protect 6,000 + 50,000; G 22,000; E 3,000 + H 23,000.
    assert got == {
        "Grow": (4, 116_000.0, 130_000.0, 2.5, pytest.approx(2.5 / 4.5)),
        "Protect": (2, 304_000.0, 56_000.0, 2.0, pytest.approx(2 / 4.5)),
        "Re-evaluate": (1, 5_000.0, 22_000.0, 0.0, 0.0),
        "Manage": (2, 21_000.0, 26_000.0, 0.0, 0.0),
        "Unclassified": (1, 10_000.0, None, 0.0, 0.0),
    }
    assert [r.quadrant for r in rows] == ["Grow", "Protect", "Re-evaluate", "Manage", "Unclassified"]
    assert float(rows[0].part_of_unrealized_wallet) == pytest.approx(130_000 / 234_000)


def test_sensitivity_reclassifies_with_the_same_refinements(warehouse_url):
    fx.store_segments(warehouse_url, fx.PLANE_ACCOUNTS, AS_OF)
    with warehouse.engine(warehouse_url).connect() as conn:
        rows = quadrant_sensitivity(conn, AS_OF, load_rules())
        unmoved = quadrant_sensitivity(conn, AS_OF, load_rules(), moves=(0.0,))
    got = [(r.axis, r.direction, r.new_threshold, r.accounts_changing, r.moves) for r in rows]
    assert got == [
        # 0.72: C (0.767) is Protect; D (0.75) stays Grow, in its first year.
        ("share_of_wallet", "-10%", 0.72, 1, {("Grow", "Protect"): 1}),
        # 0.88: I (0.833) is Grow; B (0.90) stays Protect.
        ("share_of_wallet", "+10%", 0.88, 1, {("Protect", "Grow"): 1}),
        # 22,500: E (23,000, 0.87) is Protect; H (24,000, NPS 3) is Grow overlaid by Re-evaluate.
        ("wallet_size", "-10%", 22_500, 2, {("Manage", "Protect"): 1, ("Manage", "Re-evaluate"): 1}),
        # 27,500: F (26,000) and G (27,000, NPS 3: Manage is not overlaid) are Manage.
        ("wallet_size", "+10%", 27_500, 2, {("Grow", "Manage"): 1, ("Re-evaluate", "Manage"): 1}),
    ]
    assert [r.accounts_changing for r in unmoved] == [0, 0]
    # The stored quadrants are today's rules' own.
    with warehouse.engine(warehouse_url).connect() as conn:
        assert stored_differences(conn, AS_OF, load_rules()) == {}


def edited_rules(edit) -> SegmentationRules:
    """The shipped rules with ``edit`` applied to their plain data, validated again."""
    data = load_rules().model_dump()
    edit(data)
    return SegmentationRules.model_validate(data)


def test_sensitivity_of_a_reason_reading_a_layer_3_value(warehouse_url):
    # A Re-evaluate reason may read health_band (layer 3), not a stored feature.
    rules = edited_rules(
        lambda d: d["quadrant"]["reevaluate"]["reasons"].append(
            {"name": "at_risk", "when": {"health_band": {"in": ["At risk"]}}}
        )
    )
    # L: 1k of a 24k wallet, Manage. Health: seats 0.1 → 0, trend 0.7 → 0, NPS 7 → 70 × 0.25,
    # CSAT 3 → 50 × 0.15, growth −0.3 → 0: 25, At risk; no shipped reason holds (NPS 7, CSAT 3, no 90-day rise).
    at_risk = fx.plane_account(
        "L", 24_000, 1_000, seat_utilization=0.1, usage_trend=0.7, arr_growth_365d=-0.3, nps_latest=7, csat_avg=3.0
    )
    fx.store_segments(warehouse_url, [*fx.PLANE_ACCOUNTS, at_risk], AS_OF, rules)
    stored = fx.segments(warehouse_url, AS_OF)["L"]
    assert (stored["health_band"], stored["quadrant"]) == ("At risk", "Manage")
    with warehouse.engine(warehouse_url).connect() as conn:
        rows = quadrant_sensitivity(conn, AS_OF, rules)
    # At 22,500 L is in the Grow cell and at_risk overlays it, besides E and H as with the shipped rules.
    assert rows[2].moves == {("Manage", "Protect"): 1, ("Manage", "Re-evaluate"): 2}
    assert [r.accounts_changing for r in rows] == [1, 1, 3, 2]


def test_sensitivity_counts_from_todays_rules_not_the_stored_quadrants(warehouse_url):
    fx.store_segments(warehouse_url, fx.PLANE_ACCOUNTS, AS_OF)  # the shipped share threshold, 0.8
    shipped = load_rules().version

    def lower_share(data):
        data["version"] = "test-share-0.75"
        data["quadrant"]["share_of_wallet"]["threshold"] = 0.75

    rules = edited_rules(lower_share)
    with warehouse.engine(warehouse_url).connect() as conn:
        rows = quadrant_sensitivity(conn, AS_OF, rules)
        differing = stored_differences(conn, AS_OF, rules)
    # At 0.75, C (0.767, mature) is Protect, stored Grow; D (0.75) is Grow in its first year either way.
    assert differing == {shipped: 1}
    got = [(r.direction, r.new_threshold, r.moves) for r in rows[:2]]
    # 0.675: nobody moves from 0.75 (C already Protect); 0.825: C (0.767) Grow, I (0.833) stays Protect.
    assert got == [("-10%", 0.675, {}), ("+10%", 0.825, {("Protect", "Grow"): 1})]
    page = write_report(AS_OF, warehouse_url=warehouse_url, rules=rules).read_text()
    assert (
        f"1 accounts' stored quadrant differs from today's rules (test-share-0.75): segmented under rules {shipped}"
        in sections(page)["Threshold sensitivity (±10 %)"]
    )


def load_history(url: str) -> None:
    """2024-05-31: C at 0.833 share (Protect), A not yet a customer, K since gone; a push then,
    and a later dry run (not a revision)."""
    before = [r for r in fx.PLANE_ACCOUNTS if r["account_id"] not in ("A", "C")]
    before += [fx.plane_account("C", 60_000, 50_000), fx.plane_account("K", 50_000, 10_000)]
    fx.store_segments(url, before, BEFORE)
    fx.store_segments(url, fx.PLANE_ACCOUNTS, AS_OF)
    eng = warehouse.engine(url)
    warehouse.ensure_schema(eng)
    run = {"target": "hubspot", "reason": None, "accounts_considered": 10, "accounts_changed": 0,
           "fields_changed": 0, "fields_succeeded": 0, "fields_failed": 0, "accounts_skipped": 0, "write_calls": 0,
           "report": "{}", "started_at": datetime(2024, 6, 1), "finished_at": datetime(2024, 6, 1)}  # fmt: skip
    with eng.begin() as conn:
        conn.execute(
            sync.crm_sync_runs.insert(),
            [run | {"run_id": "r1", "as_of_date": BEFORE, "mode": "push"},
             run | {"run_id": "r2", "as_of_date": date(2024, 6, 15), "mode": "dry_run"}],
        )  # fmt: skip


def test_migration_matrix_since_previous_snapshot_and_last_revision(warehouse_url):
    load_history(warehouse_url)
    with warehouse.engine(warehouse_url).connect() as conn:
        dates = warehouse.query(conn, "reports", "segmentation_compared_dates", as_of_date=AS_OF)
        cells = warehouse.query(conn, "reports", "quadrant_migration", as_of_date=AS_OF, compared_to=BEFORE)
    assert [(str(d.previous_snapshot)[:10], str(d.last_revision)[:10]) for d in dates] == [(str(BEFORE),) * 2]
    assert {(c.from_quadrant, c.to_quadrant): c.account_count for c in cells} == {
        ("(new)", "Grow"): 1,  # A
        ("Grow", "(gone)"): 1,  # K: 0.20 of 50,000
        ("Protect", "Grow"): 1,  # C
        ("Grow", "Grow"): 2,  # D, F
        ("Protect", "Protect"): 2,  # B, I
        ("Re-evaluate", "Re-evaluate"): 1,
        ("Manage", "Manage"): 2,
        ("Unclassified", "Unclassified"): 1,
    }


def sections(page: str) -> dict[str, str]:
    parts = re.split(r"<h2>(.*?)</h2>", page)
    return dict(zip(parts[1::2], parts[2::2], strict=True))


def test_report_sections(duckdb_url):
    load_history(duckdb_url)
    page = write_report(AS_OF).read_text()
    parts = sections(page)
    assert list(parts) == [
        "The 2x2: share of wallet × wallet size", "Accounts and ARR per quadrant", "Focus check (80:20)", "Movers",
        "Tier-migration candidates", "Threshold sensitivity (±10 %)", "Accounts",
    ]  # fmt: skip
    focus = parts["Focus check (80:20)"]
    assert "Below target: Grow gets 56% of the customer-success capacity, the target is 80%" in focus
    movers = parts["Movers"]
    assert "Since the previous snapshot (2024-05-31): 1 accounts changed quadrant" in movers
    assert "Since the last CRM revision (2024-05-31): 1 accounts changed quadrant" in movers
    assert "1 Unclassified account cannot be placed" in parts["The 2x2: share of wallet × wallet size"]
    assert "No forecast for this date yet" in parts["Tier-migration candidates"]
    assert "Manage → Protect: 1" in parts["Threshold sensitivity (±10 %)"]
    assert page.count("<circle class=point") == 9
    assert REMOTE.findall(page) == []


def test_no_revision_yet_is_said(duckdb_url):
    fx.store_segments(duckdb_url, fx.PLANE_ACCOUNTS, AS_OF)
    movers = sections(write_report(AS_OF).read_text())["Movers"]
    assert "No previous snapshot: nothing to compare with." in movers
    assert "No last CRM revision: nothing to compare with." in movers


def test_report_renders_offline_with_regions_labelled_and_names_escaped(duckdb_url, tmp_path):
    hostile = '<img src=x onerror="alert(1)">&<script>alert(2)</script>'
    accounts = [r | {"name": hostile} if r["account_id"] == "G" else r for r in fx.PLANE_ACCOUNTS]
    fx.store_segments(duckdb_url, accounts, AS_OF)
    path = write_report(AS_OF)
    text = path.read_text()
    assert "<script" not in text and "<img" not in text
    assert "&lt;img src=x onerror=&quot;alert(1)&quot;&gt;&amp;&lt;script&gt;" in text
    browser = chromium_or_skip()
    flags = [*chromium_flags(tmp_path / "chromium"), "--host-resolver-rules=MAP * ~NOTFOUND",
             "--proxy-server=socks5://127.0.0.1:9"]  # fmt: skip
    dom = subprocess.run(
        [browser, *flags, "--dump-dom", path.as_uri()], capture_output=True, text=True, timeout=120, check=True
    ).stdout
    labels = re.findall(r'<text class="region-label"[^>]*>([^<]+)</text>', dom)
    assert labels == ["Grow", "Protect", "Manage"]
    assert "Re-evaluate: ringed points" in dom
    assert "share of wallet (ARR ÷ wallet potential)" in dom and "log scale" in dom
    assert dom.count('class="threshold"') == 2
    # The hostile name is text in the browser's DOM, not an element.
    assert "<img src" not in dom and "alert(2)</script>" not in dom
    screenshot = tmp_path / "report.png"
    subprocess.run(
        [browser, *flags, "--window-size=1000,800", f"--screenshot={screenshot}", path.as_uri()],
        capture_output=True, timeout=120, check=True, cwd=tmp_path,
    )  # fmt: skip
    assert screenshot.stat().st_size > 10_000


def test_sensitivity_in_the_review_report(duckdb_url):
    from postsales.reports.evaluation_report import write_report as write_evaluation

    fx.store_segments(duckdb_url, fx.PLANE_ACCOUNTS, AS_OF)
    page = write_evaluation(AS_OF).read_text()
    section = sections(page)["Quadrant threshold sensitivity (±10 %)"]
    assert "Grow → Manage: 1" in section and "Re-evaluate → Manage: 1" in section
    with warehouse.engine(duckdb_url).connect() as conn:
        assert sa.inspect(conn).has_table("account_segments", schema="mart")


def placed(account_id: str, quadrant: str, cell: str | None, share: float | None, wallet: float | None):
    return SimpleNamespace(
        account_id=account_id, name=None, quadrant=quadrant, quadrant_cell=cell, share_of_wallet=share,
        wallet_size=wallet, arr=1_000.0,
    )  # fmt: skip


def test_scatter_regions_come_from_the_cells_and_every_colour_is_explained():
    def cells(data):
        data["quadrant"]["cells"] = {
            "large_wallet_low_share": "Grow", "large_wallet_high_share": "Protect",
            "small_wallet_low_share": "Protect", "small_wallet_high_share": "Manage",
        }  # fmt: skip

    accounts = [
        placed("A", "Grow", "Large wallet · Low share", 0.2, 100_000),
        placed("B", "Grow", "Large wallet · High share", 0.9, 100_000),  # still_grow: first year
        placed("C", "Unclassified", "Large wallet · High share", 0.85, 90_000),  # still_grow undecided
        placed("D", "Manage", "Small wallet · High share", None, 0),  # a wallet of 0
        placed("E", "Unclassified", None, None, None),
    ]
    svg = scatter(accounts, edited_rules(cells))
    regions = re.findall(r'<rect class="region" data-cell="(\w+)" data-quadrant="([\w-]+)"[^>]*fill="([^"]+)"', svg)
    assert regions == [
        ("large_wallet_low_share", "Grow", REGION_FILLS["Grow"]),
        ("large_wallet_high_share", "Protect", REGION_FILLS["Protect"]),
        ("small_wallet_low_share", "Protect", REGION_FILLS["Protect"]),
        ("small_wallet_high_share", "Manage", REGION_FILLS["Manage"]),
    ]
    # Protect's two cells are diagonal: one label each.
    assert re.findall(r"<text class=region-label[^>]*>([^<]+)</text>", svg) == ["Grow", "Protect", "Protect", "Manage"]
    assert svg.count(f'fill="{COLORS["Unclassified"]}" fill-opacity') == 1
    assert "A Grow point in a Protect cell: a <code>still_grow</code> condition holds (first_year, high_growth" in svg
    assert "An Unclassified point on a cell" in svg
    assert "1 account with a wallet potential of 0 is on a cell but not drawn" in svg
    assert "1 Unclassified account cannot be placed" in svg
    # The shipped cells: Manage's two cells side by side, one label.
    shipped = scatter(accounts[:2], load_rules())
    assert re.findall(r"<text class=region-label[^>]*>([^<]+)</text>", shipped) == ["Grow", "Protect", "Manage"]
    assert "Unclassified" not in shipped


def test_focus_without_capacity_says_so():
    tech_touch = SimpleNamespace(
        quadrant="Grow", account_count=2, arr=10_000, unrealized_wallet=90_000, part_of_unrealized_wallet=1.0,
        high_touch_accounts=0, pooled_accounts=0, tech_touch_accounts=2, other_accounts=0, capacity=0.0,
        capacity_share=None,
    )  # fmt: skip
    text = focus_section([tech_touch])
    assert "No customer-success capacity is assigned" in text
    assert "Below target" not in text
