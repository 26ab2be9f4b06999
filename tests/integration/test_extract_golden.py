"""The extract stage reproduces its frozen outputs row for row, on DuckDB and PostgreSQL.

tests/golden/extract/ holds a corpus of real CSV and Parquet files (the demo, tests/tiny.py's source,
a bad-input corpus, typed Parquet) and what today's extract made of it: raw.*, staging.*,
ops.quarantine with its reasons, ops.extract_runs and the returned summaries, after each phase of
full-refresh and daily runs; and the exact message of each whole-batch failure. A change of any
staged value, reason or count fails here with the first differing rows per table. If the change is
intended, regenerate with tests/golden/extract/freeze.py and review the diff (its README).
"""

from __future__ import annotations

import pytest

from golden.extract import harness


@pytest.mark.parametrize("scenario", harness.SCENARIOS, ids=lambda scenario: scenario.name)
def test_extract_reproduces_the_frozen_tables(warehouse_url, scenario, tmp_path):
    backend = harness.backend_of(warehouse_url)
    dumps = harness.run_scenario(scenario, warehouse_url, tmp_path)
    assert [phase for phase, _ in scenario.phases] == [phase for phase, _ in dumps]
    report = []
    for phase, found in dumps:
        expected = harness.read_dump(harness.expected_dir(backend, scenario.name, phase))
        assert expected, f"nothing frozen for {backend} {scenario.name}/{phase}: run freeze.py"
        report += [f"[{scenario.name}/{phase}] {problem}" for problem in harness.diff_dumps(expected, found)]
        assert harness.unbalanced_batches(found) == [], f"{phase}: rows read != rows loaded + rows quarantined"
    if report:
        heading = f"{backend}: the extract no longer reproduces the frozen outputs (tests/golden/extract/README.md)"
        pytest.fail("\n".join([heading, *report]), pytrace=False)


@pytest.mark.parametrize("case", harness.FAILURES, ids=lambda case: case.name)
def test_whole_batch_failures_keep_their_frozen_messages(warehouse_url, case, tmp_path):
    frozen = harness.read_failures(harness.failures_path(harness.backend_of(warehouse_url)))
    found = harness.run_failure(case, warehouse_url, tmp_path)
    assert found == frozen[case.name]
    assert found["error"] is not None and found["warehouse_unchanged"] is True


def test_duplicates_found_a_slice_of_the_keys_at_a_time_are_the_same(duckdb_url, tmp_path, monkeypatch):
    """A batch above KEYS_PER_GROUPING keys (80M usage rows in production) is searched for duplicates
    in slices of its keys: forced here on the bad-input corpus, its duplicate keys and every other
    reason come out as frozen."""
    from postsales.validate import sql_gate

    monkeypatch.setattr(sql_gate, "KEYS_PER_GROUPING", 2)
    scenario = next(s for s in harness.SCENARIOS if s.name == "bad")
    for phase, found in harness.run_scenario(scenario, duckdb_url, tmp_path):
        expected = harness.read_dump(harness.expected_dir("duckdb", scenario.name, phase))
        assert harness.diff_dumps(expected, found) == [], phase
        reasons = [reason for row in found["ops.quarantine"] for reason in row["failed_expectations"]]
        assert any(reason.endswith("must be unique") for reason in reasons), phase
