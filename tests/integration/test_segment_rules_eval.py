"""The shipped rules (include/rules/segmentation.yaml) on hand-made feature rows.

Feature rows go straight into mart.account_features and the compiled statement runs on
them, on DuckDB and PostgreSQL. Bands: ``min`` inclusive, ``max`` exclusive; rules: the
first match wins. Every expectation below is read off the YAML by hand.
"""

from __future__ import annotations

import json
from datetime import date
from typing import Any

import pytest

import segment_fixtures as fx
from postsales.segment.rules import Health, HealthComponent, load_rules

Case = tuple[str, dict[str, Any], dict[str, Any]]  # (account, features, expected outputs)


def run_cases(url: str, cases: list[Case], rules=None) -> dict[str, dict[str, Any]]:
    ids = [account_id for account_id, _, _ in cases]
    assert len(set(ids)) == len(ids), "duplicate case ids"
    out, _ = fx.evaluate(url, [fx.feature_row(account_id, **values) for account_id, values, _ in cases], rules=rules)
    actual = {account_id: {k: out[account_id][k] for k in expected} for account_id, _, expected in cases}
    expected = {account_id: expected for account_id, _, expected in cases}
    assert actual == expected
    return out


def test_employee_revenue_and_industry_bands(warehouse_url):
    cases: list[Case] = [
        ("e_neg", {"employee_count": -5}, {"employee_band": "1-50"}),  # first band has no min
        ("e0", {"employee_count": 0}, {"employee_band": "1-50"}),
        ("e50", {"employee_count": 50}, {"employee_band": "1-50"}),
        ("e51", {"employee_count": 51}, {"employee_band": "51-200"}),
        ("e200", {"employee_count": 200}, {"employee_band": "51-200"}),
        ("e201", {"employee_count": 201}, {"employee_band": "201-1000"}),
        ("e1000", {"employee_count": 1000}, {"employee_band": "201-1000"}),
        ("e1001", {"employee_count": 1001}, {"employee_band": "1001-5000"}),
        ("e5000", {"employee_count": 5000}, {"employee_band": "1001-5000"}),
        ("e5000.5", {"employee_count": 5000.5}, {"employee_band": "1001-5000"}),
        ("e5001", {"employee_count": 5001}, {"employee_band": "5000+"}),
        ("e_none", {}, {"employee_band": "Unknown", "revenue_band": "Unknown", "industry_group": "Unknown"}),
        ("r_low", {"annual_revenue": 9_999_999.99}, {"revenue_band": "<10M"}),
        ("r10m", {"annual_revenue": 10_000_000}, {"revenue_band": "10M-100M"}),
        ("r_mid", {"annual_revenue": 99_999_999.99}, {"revenue_band": "10M-100M"}),
        ("r100m", {"annual_revenue": 100_000_000}, {"revenue_band": "100M-1B"}),
        ("r_1b_minus", {"annual_revenue": 999_999_999.99}, {"revenue_band": "100M-1B"}),
        ("r1b", {"annual_revenue": 1_000_000_000}, {"revenue_band": "1B+"}),
        ("i_sw", {"industry": "Software", "employee_count": 120},
         {"industry_group": "Technology & Media", "firmographic_segment": "51-200 · Technology & Media"}),
        ("i_media", {"industry": "Media"}, {"industry_group": "Technology & Media"}),
        ("i_fs", {"industry": "Financial Services"}, {"industry_group": "Financial Services"}),
        ("i_hc", {"industry": "Healthcare", "employee_count": 9000},
         {"industry_group": "Healthcare", "firmographic_segment": "5000+ · Healthcare"}),
        ("i_retail", {"industry": "Retail"}, {"industry_group": "Commerce & Industry"}),
        ("i_manu", {"industry": "Manufacturing"}, {"industry_group": "Commerce & Industry"}),
        ("i_log", {"industry": "Logistics"}, {"industry_group": "Commerce & Industry"}),
        ("i_pub", {"industry": "Public Sector"}, {"industry_group": "Public & Education"}),
        ("i_edu", {"industry": "Education"}, {"industry_group": "Public & Education"}),
        ("i_ps", {"industry": "Professional Services"}, {"industry_group": "Professional Services"}),
        ("i_other", {"industry": "Agriculture", "employee_count": 10},
         {"industry_group": "Other", "firmographic_segment": "1-50 · Other"}),
        ("i_case", {"industry": "software"}, {"industry_group": "Other"}),  # exact match only
        ("i_none", {"employee_count": 10},  # no industry is not "another industry"
         {"industry_group": "Unknown", "firmographic_segment": "1-50 · Unknown"}),
    ]  # fmt: skip
    run_cases(warehouse_url, cases)


def test_arr_bands_and_value_tier_override(warehouse_url):
    cases: list[Case] = [
        ("a0", {"arr": 0}, {"arr_band": "SMB", "value_tier": "SMB", "value_tier_source": "arr_band"}),
        ("a_smb", {"arr": 24_999.99}, {"arr_band": "SMB", "value_tier": "SMB"}),
        ("a25k", {"arr": 25_000}, {"arr_band": "Mid-Market", "value_tier": "Mid-Market"}),
        ("a_mm", {"arr": 99_999.99}, {"arr_band": "Mid-Market", "value_tier": "Mid-Market"}),
        ("a100k", {"arr": 100_000}, {"arr_band": "Enterprise", "value_tier": "Enterprise"}),
        ("a_none", {}, {"arr_band": "Unknown", "value_tier": "Unknown", "value_tier_source": "arr_band",
                        "arr_percentile_band": "Unknown"}),
        ("o_ent", {"arr": 1_000, "segment_override": "Enterprise"},
         {"arr_band": "SMB", "value_tier": "Enterprise", "value_tier_source": "crm_override"}),
        ("o_smb", {"arr": 500_000, "segment_override": "SMB"},
         {"arr_band": "Enterprise", "value_tier": "SMB", "value_tier_source": "crm_override"}),
        ("o_no_arr", {"segment_override": "Mid-Market"},
         {"arr_band": "Unknown", "value_tier": "Mid-Market", "value_tier_source": "crm_override"}),
        ("p0", {"arr_percentile": 0}, {"arr_percentile_band": "Bottom 50%"}),
        ("p_49", {"arr_percentile": 0.4999}, {"arr_percentile_band": "Bottom 50%"}),
        ("p50", {"arr_percentile": 0.5}, {"arr_percentile_band": "P50-P80"}),
        ("p_79", {"arr_percentile": 0.7999}, {"arr_percentile_band": "P50-P80"}),
        ("p80", {"arr_percentile": 0.8}, {"arr_percentile_band": "P80-P95"}),
        ("p_94", {"arr_percentile": 0.9499}, {"arr_percentile_band": "P80-P95"}),
        ("p95", {"arr_percentile": 0.95}, {"arr_percentile_band": "Top 5%"}),
        ("p100", {"arr_percentile": 1.0}, {"arr_percentile_band": "Top 5%"}),
    ]  # fmt: skip
    run_cases(warehouse_url, cases)


def test_nps_and_csat_bands(warehouse_url):
    cases: list[Case] = [
        ("n0", {"nps_latest": 0}, {"nps_category": "Detractor"}),
        ("n_699", {"nps_latest": 6.99}, {"nps_category": "Detractor"}),
        ("n7", {"nps_latest": 7}, {"nps_category": "Passive"}),
        ("n_899", {"nps_latest": 8.99}, {"nps_category": "Passive"}),
        ("n9", {"nps_latest": 9}, {"nps_category": "Promoter"}),
        ("n10", {"nps_latest": 10}, {"nps_category": "Promoter"}),
        ("n_none", {}, {"nps_category": "No response", "csat_band": "No response",
                        "status_segment": "No response · Unknown"}),
        ("c1", {"csat_avg": 1}, {"csat_band": "Low"}),
        ("c_299", {"csat_avg": 2.99}, {"csat_band": "Low"}),
        ("c3", {"csat_avg": 3}, {"csat_band": "Neutral"}),
        ("c_399", {"csat_avg": 3.99}, {"csat_band": "Neutral"}),
        ("c4", {"csat_avg": 4}, {"csat_band": "High"}),
        ("c5", {"csat_avg": 5}, {"csat_band": "High"}),
    ]  # fmt: skip
    run_cases(warehouse_url, cases)


def test_lifecycle_rules_in_order(warehouse_url):
    live = {"go_live_date": date(2023, 1, 1)}
    cases: list[Case] = [
        # go-live missing wins over everything after it, including the renewal window
        ("no_golive", {"days_to_renewal": 10, "arr_change_90d": 500},
         {"lifecycle_stage": "Implementation", "lifecycle_rule": "not_live_yet"}),
        ("future", {**live, "days_since_go_live": -1, "days_to_renewal": 10},
         {"lifecycle_stage": "Implementation", "lifecycle_rule": "go_live_in_future"}),
        ("live_today", {**live, "days_since_go_live": 0, "days_to_renewal": 10},
         {"lifecycle_stage": "Hypercare", "lifecycle_rule": "first_90_days_live"}),
        ("live_89", {**live, "days_since_go_live": 89, "arr_change_90d": 500},
         {"lifecycle_stage": "Hypercare", "lifecycle_rule": "first_90_days_live"}),
        ("live_90", {**live, "days_since_go_live": 90},
         {"lifecycle_stage": "Adoption", "lifecycle_rule": "default"}),
        ("renew_90", {**live, "days_since_go_live": 400, "days_to_renewal": 90, "arr_change_90d": 500},
         {"lifecycle_stage": "Renewal", "lifecycle_rule": "renewal_window"}),
        ("renew_0", {**live, "days_since_go_live": 400, "days_to_renewal": 0},
         {"lifecycle_stage": "Renewal", "lifecycle_rule": "renewal_window"}),
        ("renew_91", {**live, "days_since_go_live": 400, "days_to_renewal": 91},
         {"lifecycle_stage": "Adoption", "lifecycle_rule": "default"}),
        ("expand", {**live, "days_since_go_live": 400, "days_to_renewal": 91, "arr_change_90d": 0.01},
         {"lifecycle_stage": "Expansion", "lifecycle_rule": "expanded_last_90_days"}),
        ("evergreen_expand", {**live, "days_since_go_live": 400, "arr_change_90d": 1},
         {"lifecycle_stage": "Expansion", "lifecycle_rule": "expanded_last_90_days"}),
        ("flat", {**live, "days_since_go_live": 400, "arr_change_90d": 0},
         {"lifecycle_stage": "Adoption", "lifecycle_rule": "default"}),
        ("shrinking", {**live, "days_since_go_live": 400, "arr_change_90d": -100},
         {"lifecycle_stage": "Adoption", "lifecycle_rule": "default"}),
        # crm_precedence is false: the CRM's stage does not matter
        ("crm_stage", {**live, "days_since_go_live": 400, "crm_lifecycle_stage": "Renewal"},
         {"lifecycle_stage": "Adoption", "lifecycle_rule": "default"}),
    ]  # fmt: skip
    run_cases(warehouse_url, cases)


def test_product_adoption_rules_in_order(warehouse_url):
    cases: list[Case] = [
        ("none", {"usage_days": 0, "usage_trend": 0.5, "seat_utilization": 0.1},
         {"adoption_segment": "No usage", "adoption_rule": "no_usage"}),
        ("power", {"usage_days": 90, "seat_utilization": 0.6, "avg_features_used": 15, "usage_trend": 0.5},
         {"adoption_segment": "Power users", "adoption_rule": "power_users"}),
        ("almost_power_seats", {"usage_days": 90, "seat_utilization": 0.5999, "avg_features_used": 20},
         {"adoption_segment": "Steady", "adoption_rule": "default"}),
        ("almost_power_features", {"usage_days": 90, "seat_utilization": 0.9, "avg_features_used": 14.99},
         {"adoption_segment": "Steady", "adoption_rule": "default"}),
        ("declining", {"usage_days": 90, "seat_utilization": 0.1, "usage_trend": 0.8499},
         {"adoption_segment": "Declining", "adoption_rule": "usage_falling"}),
        ("trend_085", {"usage_days": 90, "seat_utilization": 0.5, "usage_trend": 0.85},
         {"adoption_segment": "Steady", "adoption_rule": "default"}),
        ("growing", {"usage_days": 90, "seat_utilization": 0.1, "usage_trend": 1.15},
         {"adoption_segment": "Growing", "adoption_rule": "usage_rising"}),
        ("trend_1149", {"usage_days": 90, "seat_utilization": 0.5, "usage_trend": 1.1499},
         {"adoption_segment": "Steady", "adoption_rule": "default"}),
        ("low", {"usage_days": 90, "seat_utilization": 0.2999, "usage_trend": 1.0},
         {"adoption_segment": "Low adoption", "adoption_rule": "few_seats_used"}),
        ("low_no_trend", {"usage_days": 10, "seat_utilization": 0.0},
         {"adoption_segment": "Low adoption", "adoption_rule": "few_seats_used"}),
        ("util_03", {"usage_days": 90, "seat_utilization": 0.3, "usage_trend": 1.0},
         {"adoption_segment": "Steady", "adoption_rule": "default"}),
        ("all_missing", {}, {"adoption_segment": "Steady", "adoption_rule": "default"}),
    ]  # fmt: skip
    run_cases(warehouse_url, cases)


def quadrant_account(wallet: float | None, arr: float, tenure: int, **values: Any) -> dict[str, Any]:
    """Features of an account on the 2x2: its wallet potential, ARR (so its share) and tenure."""
    return {
        "account_known": True,
        "wallet_potential_arr": wallet,
        "arr": arr,
        "wallet_share": arr / wallet if wallet else None,  # as account_features.sql: null for no or a 0 wallet
        "unrealized_wallet": None if wallet is None else wallet - arr,
        "tenure_months": tenure,
        **values,
    }


def test_quadrant_clear_cut_cases(warehouse_url):
    # The article's quadrants, with the default rules (share of wallet 0.8, wallet size 25k).
    cases: list[Case] = [
        # new, 20k of a 200k wallet (share 0.1, 180k unrealised): Grow
        ("new_big_wallet", quadrant_account(200_000, 20_000, 2),
         {"quadrant": "Grow", "quadrant_rule": "large_wallet_low_share", "plane_quadrant": "Grow",
          "quadrant_cell": "Large wallet · Low share", "share_of_wallet": 0.1, "wallet_size": 200_000}),
        # 30 months in, 54k of a 60k wallet (0.9), passive NPS 8: Protect (was Manage: it needed NPS >= 9)
        ("mature_high_share_passive", quadrant_account(60_000, 54_000, 30, nps_latest=8),
         {"quadrant": "Protect", "quadrant_rule": "large_wallet_high_share", "plane_quadrant": "Protect",
          "quadrant_cell": "Large wallet · High share", "share_of_wallet": 0.9, "wallet_size": 60_000}),
        # the same with a detractor NPS: Re-evaluate over Protect
        ("mature_high_share_detractor", quadrant_account(60_000, 54_000, 30, nps_latest=5),
         {"quadrant": "Re-evaluate", "quadrant_rule": "low_nps", "plane_quadrant": "Protect",
          "quadrant_cell": "Large wallet · High share"}),
        # 9k of a 10k wallet, mature: a small budget, Manage
        ("small_wallet_mature_high_share", quadrant_account(10_000, 9_000, 30, nps_latest=8),
         {"quadrant": "Manage", "quadrant_rule": "small_wallet_high_share", "plane_quadrant": "Manage",
          "quadrant_cell": "Small wallet · High share", "share_of_wallet": 0.9, "wallet_size": 10_000}),
        # 34 months in, 100k of a 500k wallet (400k unrealised), promoter: Grow
        ("mature_big_unrealised_promoter", quadrant_account(500_000, 100_000, 34, nps_latest=10),
         {"quadrant": "Grow", "quadrant_rule": "large_wallet_low_share", "share_of_wallet": 0.2}),
        # no wallet potential: on no cell of the plane, Unclassified (never Manage)
        ("missing_wallet", quadrant_account(None, 50_000, 30, nps_latest=8),
         {"quadrant": "Unclassified", "quadrant_rule": "missing_input", "plane_quadrant": "Unclassified",
          "quadrant_cell": None, "share_of_wallet": None, "wallet_size": None}),
    ]  # fmt: skip
    out = run_cases(warehouse_url, cases)
    missing = {a: json.loads(row["explanation"])["quadrant"]["missing"] for a, row in out.items()}
    assert missing == {a: [] for a in out} | {"missing_wallet": ["accounts.wallet_potential_arr"]}
    # The example: 34 months in, 37 % of a wallet with 44k unrealised, NPS 10 (was Manage).
    row = run_cases(warehouse_url, [("example", quadrant_account(70_000, 25_900, 34, nps_latest=10), {})])["example"]
    assert (row["quadrant"], row["quadrant_rule"]) == ("Grow", "large_wallet_low_share")


def test_quadrant_plane_edges_refinement_and_overlay(warehouse_url):
    protect = {"nps_latest": 8}
    cases: list[Case] = [
        # both thresholds inclusive: share 0.8 of a 25,000 wallet, 12 months in: Protect
        ("edges", quadrant_account(25_000, 20_000, 12),
         {"quadrant": "Protect", "quadrant_cell": "Large wallet · High share"}),
        ("share_below", quadrant_account(25_000, 19_999, 24),
         {"quadrant": "Grow", "quadrant_rule": "large_wallet_low_share"}),
        ("wallet_below", quadrant_account(24_999, 20_000, 24),
         {"quadrant": "Manage", "quadrant_rule": "small_wallet_high_share"}),
        # share above 1 (paying more than the estimated wallet) is a high share
        ("share_above_1", quadrant_account(40_000, 60_000, 24), {"quadrant": "Protect", "share_of_wallet": 1.5}),
        # new with a small wallet: Manage (was Grow: any new account below 80 % share was)
        ("new_small_wallet", quadrant_account(10_000, 3_000, 2),
         {"quadrant": "Manage", "quadrant_rule": "small_wallet_low_share"}),
        # still_grow: in its first year, or growing 30 %+ a year, a high-share large account is Grow
        ("first_year", quadrant_account(100_000, 90_000, 11),
         {"quadrant": "Grow", "quadrant_rule": "first_year", "plane_quadrant": "Grow",
          "quadrant_cell": "Large wallet · High share"}),
        ("growing", quadrant_account(100_000, 90_000, 24, arr_growth_365d=0.3),
         {"quadrant": "Grow", "quadrant_rule": "high_growth"}),
        ("growing_less", quadrant_account(100_000, 90_000, 24, arr_growth_365d=0.2999), {"quadrant": "Protect"}),
        # still_grow refines Protect only: a small wallet stays Manage
        ("small_growing", quadrant_account(10_000, 9_000, 2, arr_growth_365d=1.0), {"quadrant": "Manage"}),
        # the overlay, over Grow and Protect; the first reason that holds is named
        ("grow_low_csat", quadrant_account(200_000, 20_000, 24, csat_avg=2.99),
         {"quadrant": "Re-evaluate", "quadrant_rule": "low_csat", "plane_quadrant": "Grow"}),
        ("grow_csat_3", quadrant_account(200_000, 20_000, 24, csat_avg=3), {"quadrant": "Grow"}),
        ("two_reasons", quadrant_account(200_000, 20_000, 24, nps_latest=3, csat_avg=1),
         {"quadrant_rule": "low_nps"}),
        ("nps_6", quadrant_account(60_000, 54_000, 30, nps_latest=6), {"quadrant": "Re-evaluate"}),
        ("nps_7", quadrant_account(60_000, 54_000, 30, nps_latest=7), {"quadrant": "Protect"}),
        ("pay_more_use_less", quadrant_account(60_000, 54_000, 30, usage_trend=0.79, arr_change_90d=1, **protect),
         {"quadrant": "Re-evaluate", "quadrant_rule": "paying_more_using_less"}),
        ("use_less_flat_arr", quadrant_account(60_000, 54_000, 30, usage_trend=0.5, arr_change_90d=0),
         {"quadrant": "Protect"}),
        ("trend_08", quadrant_account(60_000, 54_000, 30, usage_trend=0.8, arr_change_90d=1),
         {"quadrant": "Protect"}),
        ("first_year_detractor", quadrant_account(100_000, 90_000, 3, nps_latest=2),
         {"quadrant": "Re-evaluate", "quadrant_rule": "low_nps", "plane_quadrant": "Grow"}),
        # Manage is not overlaid: Re-evaluate's way out is Manage
        ("manage_detractor", quadrant_account(10_000, 5_000, 24, nps_latest=2),
         {"quadrant": "Manage", "quadrant_rule": "small_wallet_low_share"}),
        # no axis value: Unclassified whatever else holds
        ("missing_wallet_detractor", quadrant_account(None, 5_000, 24, nps_latest=2),
         {"quadrant": "Unclassified"}),
        # ARR over a wallet potential of 0: more than the estimate, a share beyond any threshold on
        # the smallest wallet (as a wallet of 1 gives): Manage; no finite share to store
        ("zero_wallet", quadrant_account(0, 5_000, 24),
         {"quadrant": "Manage", "quadrant_rule": "small_wallet_high_share",
          "quadrant_cell": "Small wallet · High share", "share_of_wallet": None, "wallet_size": 0}),
        ("wallet_of_1", quadrant_account(1, 5_000, 24),
         {"quadrant": "Manage", "quadrant_rule": "small_wallet_high_share", "share_of_wallet": 5_000}),
        # ARR 0 over a wallet of 0: nothing of it reached, as ARR 0 over a wallet of 1 (share 0)
        ("zero_wallet_no_arr", quadrant_account(0, 0, 24),
         {"quadrant": "Manage", "quadrant_rule": "small_wallet_low_share",
          "quadrant_cell": "Small wallet · Low share"}),
        ("nothing", {}, {"quadrant": "Unclassified", "quadrant_rule": "missing_input"}),
    ]  # fmt: skip
    out = run_cases(warehouse_url, cases)
    for account_id, row in out.items():
        if row["quadrant"] == "Re-evaluate":
            # first time in Re-evaluate (no earlier as-of date)
            assert (row["reevaluate_since"], row["reevaluate_days"]) == (date(2024, 6, 30), 0), account_id
            assert row["recommended_quadrant"] == "Re-evaluate"
        else:
            assert (row["reevaluate_since"], row["reevaluate_days"]) == (None, None), account_id
            assert row["recommended_quadrant"] == row["quadrant"]


def test_engagement_model_rules(warehouse_url):
    grow = {"tenure_months": 3, "wallet_share": 0.1, "wallet_potential_arr": 500_000}
    protect = {"tenure_months": 24, "wallet_share": 0.9, "wallet_potential_arr": 500_000, "nps_latest": 10}
    manage = {"tenure_months": 24, "wallet_share": 0.9, "wallet_potential_arr": 10_000}
    reevaluate = {"nps_latest": 2, "tenure_months": 24, "wallet_share": 0.1, "wallet_potential_arr": 500_000}
    cases: list[Case] = [
        ("ent", {"arr": 150_000, **manage}, {"value_tier": "Enterprise", "engagement_model": "high-touch",
                                             "engagement_rule": "enterprise"}),
        ("ent_override", {"arr": 1_000, "segment_override": "Enterprise", **reevaluate},
         {"engagement_model": "high-touch", "engagement_rule": "enterprise"}),
        ("mm_grow", {"arr": 50_000, **grow}, {"quadrant": "Grow", "engagement_model": "high-touch",
                                               "engagement_rule": "mid_market_growing_or_protected"}),
        ("mm_protect", {"arr": 50_000, **protect}, {"quadrant": "Protect", "engagement_model": "high-touch",
                                                     "engagement_rule": "mid_market_growing_or_protected"}),
        ("mm_manage", {"arr": 50_000, **manage}, {"quadrant": "Manage", "engagement_model": "pooled",
                                                   "engagement_rule": "mid_market"}),
        ("mm_reeval", {"arr": 50_000, **reevaluate}, {"quadrant": "Re-evaluate", "engagement_model": "pooled",
                                                       "engagement_rule": "mid_market"}),
        ("mm_override", {"arr": 500_000, "segment_override": "Mid-Market", **manage},
         {"engagement_model": "pooled", "engagement_rule": "mid_market"}),
        # an SMB in Grow (a wallet of 25k+ it does not spend with us yet) is pooled, whatever its size
        ("smb_grow_small", {"arr": 5_000, "employee_count": 10, **grow},
         {"engagement_model": "pooled", "engagement_rule": "smb_to_grow"}),
        ("smb_grow_5001", {"arr": 5_000, "employee_count": 5001, **grow},
         {"engagement_model": "pooled", "engagement_rule": "smb_to_grow"}),
        ("smb_grow_no_size", {"arr": 5_000, **grow}, {"engagement_model": "pooled", "engagement_rule": "smb_to_grow"}),
        ("smb_protect_big", {"arr": 5_000, "employee_count": 9000, **protect},
         {"engagement_model": "tech-touch", "engagement_rule": "default"}),
        ("smb_manage", {"arr": 5_000, **manage}, {"engagement_model": "tech-touch", "engagement_rule": "default"}),
        ("smb_reeval", {"arr": 5_000, **reevaluate}, {"engagement_model": "tech-touch", "engagement_rule": "default"}),
        # no ARR and a wallet of 0: no share, so Unclassified; Grow or not cannot be told
        ("no_arr", {"wallet_potential_arr": 0, "employee_count": 10},
         {"value_tier": "Unknown", "quadrant": "Unclassified", "engagement_model": "Unknown",
          "engagement_rule": "missing_input"}),
        # quadrant Unclassified (no wallet potential): an SMB or Mid-Market account's engagement model
        # depends on whether it is in Grow, so it is Unknown too; Enterprise is high-touch either way
        ("smb_no_wallet", {"arr": 5_000, "employee_count": 9000, "tenure_months": 3},
         {"quadrant": "Unclassified", "engagement_model": "Unknown", "engagement_rule": "missing_input"}),
        ("ent_no_wallet", {"account_known": True, "arr": 150_000, "tenure_months": 3},
         {"quadrant": "Unclassified", "engagement_model": "high-touch", "engagement_rule": "enterprise"}),
        ("mm_no_wallet", {"arr": 50_000, "employee_count": 10, "tenure_months": 3},
         {"quadrant": "Unclassified", "engagement_model": "Unknown", "engagement_rule": "missing_input"}),
    ]  # fmt: skip
    out = run_cases(warehouse_url, cases)
    # missing is a fact about the inputs, also where the value could still be decided
    explanation = json.loads(out["ent_no_wallet"]["explanation"])["engagement_model"]
    assert explanation["missing"] == ["accounts.wallet_potential_arr"]


# Scores 100 on every component: health 100, "Healthy"; Power users; Promoter.
STAR = {
    "usage_days": 90,
    "seat_utilization": 0.8,
    "avg_features_used": 20,
    "usage_trend": 1.2,
    "nps_latest": 10,
    "csat_avg": 5,
    "arr_growth_365d": 0.3,
    "referenceable": True,
}


def test_case_study_needs_all_four_conditions(warehouse_url):
    cases: list[Case] = [
        ("all", STAR, {"adoption_segment": "Power users", "nps_category": "Promoter", "health_band": "Healthy",
                       "status_segment": "Promoter · Healthy", "case_study_candidate": True}),
        ("not_power", {**STAR, "avg_features_used": 14}, {"adoption_segment": "Growing",
                                                           "case_study_candidate": False}),
        ("passive", {**STAR, "nps_latest": 8}, {"nps_category": "Passive", "health_band": "Healthy",
                                                 "case_study_candidate": False}),
        # csat 1, trend 0.7, growth -0.3 score 0: health 0.3*100 + 0.25*100 = 55
        ("not_healthy", {**STAR, "csat_avg": 1, "usage_trend": 0.7, "arr_growth_365d": -0.3},
         {"adoption_segment": "Power users", "health_band": "Needs attention", "case_study_candidate": False}),
        ("not_referenceable", {**STAR, "referenceable": False}, {"case_study_candidate": False}),
        ("referenceable_unknown", {**STAR, "referenceable": None}, {"case_study_candidate": False}),
    ]  # fmt: skip
    out = run_cases(warehouse_url, cases)
    assert out["all"]["health_score"] == pytest.approx(100)
    assert out["not_healthy"]["health_score"] == pytest.approx(55)


def test_health_score_weights_renormalisation_and_coverage(warehouse_url):
    cases: list[Case] = [
        # 0.3*60 + 0.15*60 + 0.25*80 + 0.15*75 + 0.15*50 = 18 + 9 + 20 + 11.25 + 7.5
        ("all", {"seat_utilization": 0.46, "usage_trend": 1.0, "nps_latest": 8, "csat_avg": 4, "arr_growth_365d": 0},
         {"health_band": "Needs attention"}),
        # NPS and CSAT missing: usage 100 (0.85 clipped), trend 0 (0.5 clipped), contract 75 over weight 0.6:
        # (0.3*100 + 0.15*0 + 0.15*75) / 0.6 = 41.25 / 0.6
        ("renorm", {"seat_utilization": 0.85, "usage_trend": 0.5, "arr_growth_365d": 0.15},
         {"health_band": "Needs attention"}),
        # usage missing: (0.15*100 + 0.25*100 + 0.15*100 + 0.15*100) / 0.7
        ("no_usage", {"usage_trend": 2, "nps_latest": 10, "csat_avg": 5, "arr_growth_365d": 5},
         {"health_band": "Healthy"}),
        # usage + trend missing: 0.55 of the weight < 0.6
        ("low_cov", {"nps_latest": 10, "csat_avg": 5, "arr_growth_365d": 5}, {"health_band": "Unknown"}),
        ("nps_only", {"nps_latest": 10}, {"health_band": "Unknown"}),
        ("nothing", {}, {"health_band": "Unknown", "status_segment": "No response · Unknown"}),
        # every component below its zero point: 0, not negative
        ("floor", {"seat_utilization": -5, "usage_trend": 0, "nps_latest": -3, "csat_avg": 0,
                   "arr_growth_365d": -1}, {"health_band": "At risk"}),
        # every component far above its full point: 100, not more
        ("ceiling", {"seat_utilization": 1e6, "usage_trend": 50, "nps_latest": 1e9, "csat_avg": 99,
                     "arr_growth_365d": 1e12}, {"health_band": "Healthy"}),
    ]  # fmt: skip
    out, parts = fx.evaluate(warehouse_url, [fx.feature_row(a, **values) for a, values, _ in cases])
    assert {a: {k: out[a][k] for k in expected} for a, _, expected in cases} == {a: e for a, _, e in cases}
    scores = {a: out[a]["health_score"] for a, _, _ in cases}
    assert scores == {
        "all": pytest.approx(65.75),
        "renorm": pytest.approx(68.75),
        "no_usage": pytest.approx(100),
        "low_cov": None,
        "nps_only": None,
        "nothing": None,
        "floor": 0,
        "ceiling": 100,
    }
    # the per-component rows: inputs, clipped scores, weights
    assert len(parts) == len(cases) * 5
    assert {c: parts[("all", c)]["score"] for c in ("usage", "adoption_trend", "nps", "csat", "contract_trend")} == {
        "usage": pytest.approx(60),
        "adoption_trend": pytest.approx(60),
        "nps": pytest.approx(80),
        "csat": pytest.approx(75),
        "contract_trend": pytest.approx(50),
    }
    assert {c: parts[("renorm", c)]["score"] for c in ("usage", "adoption_trend", "nps", "csat", "contract_trend")} == {
        "usage": 100,
        "adoption_trend": 0,
        "nps": None,
        "csat": None,
        "contract_trend": pytest.approx(75),
    }
    assert parts[("renorm", "usage")]["input_value"] == 0.85
    assert parts[("renorm", "nps")]["input_value"] is None
    assert {parts[("floor", c)]["score"] for c in ("usage", "adoption_trend", "nps", "csat", "contract_trend")} == {0}
    assert {parts[("ceiling", c)]["score"] for c in ("usage", "adoption_trend", "nps", "csat", "contract_trend")} == {
        100
    }
    weights = {c: parts[("nothing", c)]["weight"] for c in ("usage", "adoption_trend", "nps", "csat", "contract_trend")}
    assert weights == {"usage": 0.30, "adoption_trend": 0.15, "nps": 0.25, "csat": 0.15, "contract_trend": 0.15}


def test_health_band_boundaries(warehouse_url):
    # One component with weight 1 scoring the feature as-is (0 -> 0, 100 -> 100), so the
    # health score equals the input exactly and the shipped health bands can be probed.
    shipped = load_rules()
    probe = Health(
        components={"probe": HealthComponent(feature="avg_licensed_seats", weight=1, zero_at=0, full_at=100)},
        min_coverage=shipped.health.min_coverage,
    )
    rules = shipped.model_copy(update={"health": probe})
    cases: list[Case] = [
        ("h0", {"avg_licensed_seats": 0}, {"health_band": "At risk"}),
        ("h_3999", {"avg_licensed_seats": 39.99}, {"health_band": "At risk"}),
        ("h40", {"avg_licensed_seats": 40}, {"health_band": "Needs attention"}),
        ("h_6999", {"avg_licensed_seats": 69.99}, {"health_band": "Needs attention"}),
        ("h70", {"avg_licensed_seats": 70}, {"health_band": "Healthy", "health_score": 70}),
        ("h100", {"avg_licensed_seats": 100}, {"health_band": "Healthy"}),
        ("h_none", {}, {"health_band": "Unknown", "health_score": None}),
    ]
    run_cases(warehouse_url, cases, rules=rules)
