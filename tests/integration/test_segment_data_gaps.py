"""Missing rule inputs: the account is segmented, the value that needs the input is Unknown, the
explanation names the missing field and mart.account_data_gaps records it (docs/metrics.md,
"Missing rule inputs"). Every expectation is read off the shipped rules by hand.
"""

from __future__ import annotations

import json
from datetime import date

import segment_fixtures as fx
from postsales import warehouse
from postsales.reports.data_gaps import data_gaps, summary_lines
from postsales.reports.evaluation_report import write_report
from postsales.segment.engine import compute_segments
from postsales_dev.summary import summary_text

AS_OF = date(2024, 6, 30)
WALLET, REVENUE, SIZE = "accounts.wallet_potential_arr", "accounts.annual_revenue", "accounts.employee_count"


def load(url: str) -> None:
    acc, con = fx.account, fx.contract
    fx.load_staging(
        url,
        accounts=[
            acc("FULL"),
            acc("NOWALLET", wallet_potential_arr=None),
            acc("NOREV", annual_revenue=None),
            acc("BIGNOSIZE", employee_count=None),
            # NOROW: no row of the account (all quarantined)
        ],
        contracts=[
            con("FULL-1", "FULL", date(2023, 1, 1), None, 12_000),
            # tenure 3 months, no NPS: without the wallet it is on no cell of the 2x2
            con("NOWALLET-1", "NOWALLET", date(2024, 3, 1), None, 12_000),
            con("NOREV-1", "NOREV", date(2023, 1, 1), None, 12_000),
            # Mid-Market (50k), wallet 100k (share 0.5), 3 months: Grow, high-touch without the size
            con("BIGNOSIZE-1", "BIGNOSIZE", date(2024, 3, 1), None, 50_000),
            con("NOROW-1", "NOROW", date(2023, 1, 1), None, 12_000),
        ],
    )


def test_missing_inputs_give_unknown_values_named_in_the_explanation(warehouse_url):
    load(warehouse_url)
    summary = compute_segments(AS_OF, warehouse_url=warehouse_url)
    segments = fx.segments(warehouse_url, AS_OF)
    assert sorted(segments) == ["BIGNOSIZE", "FULL", "NOREV", "NOROW", "NOWALLET"]

    def view(account_id: str) -> dict:
        row = segments[account_id]
        keys = ("quadrant", "quadrant_rule", "engagement_model", "engagement_rule", "firmographic_segment")
        return {k: row[k] for k in (*keys, "revenue_band")}

    assert view("FULL") == {
        # tenure 17 months, no NPS, no growth; wallet 100k ≥ 25k, share 12k / 100k = 0.12 < 0.8
        "quadrant": "Grow",
        "quadrant_rule": "large_wallet_low_share",
        # an SMB in Grow
        "engagement_model": "pooled",
        "engagement_rule": "smb_to_grow",
        "firmographic_segment": "51-200 · Technology & Media",
        "revenue_band": "<10M",
    }
    assert view("NOWALLET") == {
        "quadrant": "Unclassified",
        "quadrant_rule": "missing_input",
        # SMB: pooled if in Grow, which cannot be told without the wallet
        "engagement_model": "Unknown",
        "engagement_rule": "missing_input",
        "firmographic_segment": "51-200 · Technology & Media",
        "revenue_band": "<10M",
    }
    assert view("NOREV")["revenue_band"] == "Unknown"
    assert view("NOREV")["quadrant"] == "Grow"
    assert view("BIGNOSIZE") == {
        "quadrant": "Grow",
        "quadrant_rule": "large_wallet_low_share",
        "engagement_model": "high-touch",
        "engagement_rule": "mid_market_growing_or_protected",
        "firmographic_segment": "Unknown · Technology & Media",
        "revenue_band": "<10M",
    }
    assert view("NOROW") == {
        # tenure 17, no wallet (no account row): on no cell of the 2x2
        "quadrant": "Unclassified",
        "quadrant_rule": "missing_input",
        # SMB: pooled if in Grow, which cannot be told without the wallet
        "engagement_model": "Unknown",
        "engagement_rule": "missing_input",
        "firmographic_segment": "Unknown · Unknown",
        "revenue_band": "Unknown",
    }
    # Every other dimension is computed as usual.
    assert {segments[a]["value_tier"] for a in segments} == {"SMB", "Mid-Market"}
    assert segments["NOROW"]["lifecycle_stage"] == "Implementation"  # no go-live date known

    explanation = {a: json.loads(row["explanation"]) for a, row in segments.items()}
    assert explanation["NOWALLET"]["quadrant"]["missing"] == [WALLET]
    assert explanation["NOWALLET"]["quadrant"]["inputs"]["wallet_share"] is None
    assert explanation["NOROW"]["quadrant"]["missing"] == ["accounts"]
    assert explanation["NOROW"]["engagement_model"]["missing"] == ["accounts"]
    assert explanation["NOREV"]["firmographic_segment"]["missing"] == [REVENUE]
    # the engagement model no longer reads the company size (rules 2026.12.0: the wallet measures the budget)
    assert explanation["BIGNOSIZE"]["engagement_model"]["missing"] == []
    assert explanation["BIGNOSIZE"]["firmographic_segment"]["missing"] == [SIZE]
    for name in ("quadrant", "engagement_model", "firmographic_segment", "value_tier", "health_score"):
        assert explanation["FULL"][name]["missing"] == [], name
    assert explanation["NOWALLET"]["value_tier"]["missing"] == []

    assert fx.data_gaps(warehouse_url, AS_OF) == {
        ("NOWALLET", WALLET, None),
        ("NOWALLET", WALLET, "quadrant"),
        ("NOWALLET", WALLET, "engagement_model"),
        ("NOREV", REVENUE, None),
        ("NOREV", REVENUE, "revenue_band"),
        ("BIGNOSIZE", SIZE, None),
        ("BIGNOSIZE", SIZE, "employee_band"),
        ("BIGNOSIZE", SIZE, "firmographic_segment"),
        ("NOROW", "accounts", None),
        *(
            ("NOROW", "accounts", dimension)
            for dimension in (
                "employee_band",
                "industry_group",
                "revenue_band",
                "firmographic_segment",
                "quadrant",
                "engagement_model",
            )
        ),
    }
    assert summary["data_gaps"] == {"accounts": 1, REVENUE: 1, SIZE: 1, WALLET: 1}

    # A rerun replaces the date's gaps.
    compute_segments(AS_OF, warehouse_url=warehouse_url)
    assert len(fx.data_gaps(warehouse_url, AS_OF)) == 15


def test_data_gaps_per_field_in_the_summary_and_the_evaluation_report(warehouse_url):
    load(warehouse_url)
    compute_segments(AS_OF, warehouse_url=warehouse_url)
    with warehouse.engine(warehouse_url).connect() as conn:
        gaps = data_gaps(conn, AS_OF)
        assert data_gaps(conn) == gaps  # the latest
        assert data_gaps(conn, date(2024, 6, 29)) is None  # no segmentation on or before
    # By hand from the fixture: one account per gap; ties in field order, the missing row first.
    assert (gaps.as_of_date, gaps.segmented_accounts) == (AS_OF, 5)
    assert [(g.field, g.accounts, g.unknown) for g in gaps.fields] == [
        (
            "accounts",
            1,
            {
                "employee_band": 1,
                "industry_group": 1,
                "revenue_band": 1,
                "firmographic_segment": 1,
                "quadrant": 1,
                "engagement_model": 1,
            },
        ),
        (REVENUE, 1, {"revenue_band": 1}),
        (SIZE, 1, {"employee_band": 1, "firmographic_segment": 1}),
        (WALLET, 1, {"quadrant": 1, "engagement_model": 1}),
    ]

    lines = summary_text().splitlines()
    assert f"segmentation as of {AS_OF} (mart.account_segments): 5 accounts" in lines
    start = lines.index(f"data gaps as of {AS_OF} (mart.account_data_gaps; fill them in the CRM):")
    assert lines[start + 1 : start + 5] == [
        "  no valid account row (quarantined: see ops.quarantine): 1 of 5 segmented accounts; "
        "Unknown or Unclassified because of it: employee_band 1, engagement_model 1, firmographic_segment 1, "
        "industry_group 1, quadrant 1, revenue_band 1",
        "  accounts.annual_revenue: 1 of 5 segmented accounts; Unknown or Unclassified because of it: revenue_band 1",
        "  accounts.employee_count: 1 of 5 segmented accounts; Unknown or Unclassified because of it: "
        "employee_band 1, firmographic_segment 1",
        "  accounts.wallet_potential_arr: 1 of 5 segmented accounts; Unknown or Unclassified because of it: "
        "engagement_model 1, quadrant 1",
    ]

    page = write_report(AS_OF, warehouse_url=warehouse_url).read_text()
    section = page[page.index("<h2>Data gaps</h2>") :]
    assert "Segmentation as of 2024-06-30: 5 accounts" in section
    assert (
        '<th>accounts.employee_count</th><td>1</td><td class="text">employee_band 1, firmographic_segment 1</td>'
        in section
    )


def test_a_segmentation_without_gaps_says_so(warehouse_url):
    fx.load_staging(
        warehouse_url, accounts=[fx.account("FULL")], contracts=[fx.contract("FULL-1", "FULL", date(2023, 1, 1))]
    )
    compute_segments(AS_OF, warehouse_url=warehouse_url)
    with warehouse.engine(warehouse_url).connect() as conn:
        gaps = data_gaps(conn, AS_OF)
    assert (gaps.segmented_accounts, gaps.fields) == (1, [])
    assert summary_lines(gaps) == [
        f"data gaps as of {AS_OF} (mart.account_data_gaps; fill them in the CRM): none: every rule input of the "
        "1 segmented accounts is filled in"
    ]
