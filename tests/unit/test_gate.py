"""The Great Expectations gate on small frames: types, blanks, extras, thresholds."""

from __future__ import annotations

import json
from datetime import datetime

import pandas as pd
import pytest

from gate_frames import run_gate
from postsales.config import Thresholds, load_expectations
from postsales.errors import DataContractError
from postsales.sources import Refusal

RULES = load_expectations()
NOW = datetime(2024, 3, 2)


def accounts(**columns) -> pd.DataFrame:
    base = {
        "account_id": ["A1", "A2", "A3"],
        "name": ["a", "b", "c"],
        "industry": ["Software"] * 3,
        "employee_count": ["10", "20", "30"],
        "annual_revenue": ["1", "2", "3"],
        "country": ["US"] * 3,
        "created_at": ["2024-01-01T00:00:00"] * 3,
        "updated_at": ["2024-03-01T00:00:00"] * 3,
        "wallet_potential_arr": ["100", "200", "300"],
        "go_live_date": ["2024-02-01"] * 3,
        "lifecycle_stage": ["Adoption"] * 3,
        "referenceable": ["true", "false", "yes"],
        "segment_override": [None] * 3,
    }
    base.update(columns)
    return pd.DataFrame(base, dtype="object")


LOOSE = Thresholds(max_failed_fraction=1.0)


def gate(frame, thresholds=LOOSE):
    return run_gate("accounts", frame, RULES.entities["accounts"], thresholds, not_after=NOW)


def test_all_good_rows_load_typed():
    result = gate(accounts())
    assert (result.rows_read, result.rows_valid, result.rows_quarantined) == (3, 3, 0)
    assert result.valid["employee_count"].tolist() == [10.0, 20.0, 30.0]
    assert result.valid["referenceable"].tolist() == [True, False, True]


def test_impossible_date_and_bad_boolean_are_quarantined():
    result = gate(
        accounts(go_live_date=["2024-02-30", "2024-02-01", "2024-02-01"], referenceable=["true", "maybe", "1"])
    )
    quarantine = result.quarantine
    failed = dict(zip(quarantine["record_key"], quarantine["failed_expectations"].map(json.loads), strict=True))
    assert failed == {"A1": ["go_live_date must be a valid date"], "A2": ["referenceable must be a valid boolean"]}


def test_blank_strings_count_as_missing():
    result = gate(accounts(name=["  ", "b", "c"]))
    assert result.quarantine["record_key"].tolist() == ["A1"]
    assert json.loads(result.quarantine["failed_expectations"][0]) == ["name is required"]


def test_integer_with_fraction_is_not_an_integer():
    result = gate(accounts(employee_count=["10.5", "20.0", "30"]))
    assert result.quarantine["record_key"].tolist() == ["A1"]
    assert result.valid["employee_count"].tolist() == [20.0, 30.0]


def test_extra_columns_are_kept_as_json():
    result = gate(accounts(owner=["x", "y", None]))
    assert [json.loads(v) for v in result.valid["_extra"]] == [{"owner": "x"}, {"owner": "y"}, {"owner": None}]


def test_a_row_the_source_refused_is_quarantined_with_the_refusals_reason():
    """A source that builds a column itself names, per row, why it could not (``_refusal``): the
    row fails that reason's check, after the rules' own; a row without one passes."""
    refusals = {
        "no_owner": Refusal("name", "name: the record has no owner in the CRM; give it one"),
        "two_owners": Refusal("name", "name: the record has two owners in the CRM; keep one"),
    }
    frame = accounts(name=["a", None, "c"], _refusal=[None, "no_owner", "two_owners"])
    result = run_gate("accounts", frame, RULES.entities["accounts"], LOOSE, not_after=NOW, refusals=refusals)
    quarantine = result.quarantine
    assert quarantine["record_key"].tolist() == ["A2", "A3"]
    assert [json.loads(v) for v in quarantine["failed_expectations"]] == [
        ["name is required", "name: the record has no owner in the CRM; give it one"],
        ["name: the record has two owners in the CRM; keep one"],
    ]
    assert [json.loads(v) for v in quarantine["offending_values"]] == [{"name": None}, {"name": "c"}]
    assert "_refusal" not in json.loads(quarantine["raw_row"][0])  # not a source column
    assert result.valid["account_id"].tolist() == ["A1"] and result.valid["_extra"].tolist() == [None]


def test_threshold_needs_both_share_and_count():
    # 1 bad row of 3 is 33 %, but fewer than min_failed_rows: quarantined, not failed.
    one_bad = accounts(employee_count=["-1", "20", "30"])
    assert gate(one_bad, Thresholds(max_failed_fraction=0.05, min_failed_rows=2)).rows_quarantined == 1
    with pytest.raises(DataContractError, match=r"1 of 3 rows \(33.3%\) failed validation"):
        gate(one_bad, Thresholds(max_failed_fraction=0.05, min_failed_rows=1))
    assert gate(one_bad, Thresholds(max_failed_fraction=0.34, min_failed_rows=1)).rows_quarantined == 1


def test_missing_column_message_lists_the_source_columns_only():
    frame = accounts().drop(columns=["industry", "referenceable", "segment_override"]).assign(_source="crm:accounts")
    with pytest.raises(DataContractError) as info:
        gate(frame)
    found = [c for c in accounts().columns if c not in ("industry", "referenceable", "segment_override")]
    assert f"required column(s) ['industry', 'referenceable', 'segment_override'] missing; found {found}." in str(
        info.value
    )


def surveys(types: list[str], scores: list[str]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "account_id": ["A1"] * len(types),
            "responded_at": [f"2024-03-01T{hour:02d}:00:00" for hour in range(len(types))],
            "survey_type": types,
            "score": scores,
        },
        dtype="object",
    )


def survey_failures(rules, frame) -> dict[str, list[str]]:
    result = run_gate("survey_responses", frame, rules, LOOSE, not_after=NOW, known={"accounts.account_id": {"A1"}})
    return dict(
        zip(result.quarantine["record_key"], result.quarantine["failed_expectations"].map(json.loads), strict=True)
    )


def test_a_range_applies_where_the_other_column_has_its_value():
    frame = surveys(["nps", "nps", "nps", "csat", "csat", "csat"], ["11", "10", "0", "0", "5", "6"])
    assert survey_failures(RULES.entities["survey_responses"], frame) == {
        "A1|2024-03-01T00:00:00|nps": ["score must be in [0, 10] when survey_type is nps"],
        "A1|2024-03-01T03:00:00|csat": ["score must be in [1, 5] when survey_type is csat"],
        "A1|2024-03-01T05:00:00|csat": ["score must be in [1, 5] when survey_type is csat"],
    }


def test_a_rules_value_is_compared_as_data_never_run_as_code(tmp_path):
    """Even a value that got past the rules file's validation is data: nothing runs, and the ranges hold."""
    from test_config import HOSTILE_VALUE

    marker = tmp_path / "ran"
    hostile = HOSTILE_VALUE.format(marker=marker)
    rules = RULES.entities["survey_responses"]
    score = rules.columns["score"]
    # model_copy skips validation: the rules as a file that slipped past load_yaml would give them.
    ranges = {"survey_type": {hostile: (0.0, 10.0), **score.ranges_when["survey_type"]}}
    unchecked = rules.model_copy(
        update={"columns": {**rules.columns, "score": score.model_copy(update={"ranges_when": ranges})}}
    )
    failures = survey_failures(unchecked, surveys(["nps", "nps", "csat"], ["11", "10", "4"]))
    assert not marker.exists()
    assert failures == {"A1|2024-03-01T00:00:00|nps": ["score must be in [0, 10] when survey_type is nps"]}


def test_an_error_great_expectations_caught_is_never_a_pass():
    from postsales.validate.sql_gate import _raised

    # GX reports a caught exception as one dict, or as one per metric it could not compute.
    assert _raised({"raised_exception": True, "exception_message": "boom"}) == "boom"
    per_metric = {"MetricConfigurationID(table.column_types)": {"raised_exception": True, "exception_message": "no"}}
    assert _raised(per_metric) == "no"
    assert _raised({"raised_exception": False, "exception_message": None}) is None
    assert _raised(None) is None
