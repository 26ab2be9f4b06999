"""`make summary`'s quarantine reasons: the top three per table, and what they leave out."""

from __future__ import annotations

import sqlalchemy as sa

import tiny
from postsales import warehouse
from postsales.extract import extract_entity
from postsales.monitoring import all_reasons_query
from postsales.sources import Interval
from postsales_dev.summary import summary_text


def test_summary_says_how_many_reasons_the_top_three_leave_out(warehouse_url, tiny_source):
    for entity in ("accounts", "contracts", "survey_responses", "usage_daily"):
        extract_entity(entity, interval=Interval(tiny.DAY1, tiny.DAY2), run_id="r", build_data_docs=False)
    lines = summary_text().splitlines()
    start = lines.index("top quarantine reasons (ops.quarantine):")
    block = lines[start + 1 : start + 12]
    # tests/tiny.py, day 1. Contracts: four bad rows, one reason each (C2 "n/a" ARR, C3 unknown
    # account, C4 end before start, C5 negative ARR): three shown by name, one left out.
    # Accounts (A5's two copies, a blank id, an unknown stage), responses and usage: under four reasons.
    assert block[:4] == [
        "  accounts: account_id must be unique (2)",
        "  accounts: account_id is required (1)",
        "  accounts: lifecycle_stage must be one of ['Implementation', 'Hypercare', 'Adoption', 'Expansion', "
        "'Renewal'] (1)",
        "  contracts: account_id must exist in accounts.account_id (1)",
    ]
    assert block[4:7] == [
        "  contracts: arr must be a valid number (1)",
        "  contracts: arr must be in [0, 1e+12] (1)",
        "  contracts: … and 1 more reason (1 row)",
    ]
    assert sum("more reason" in line for line in block) == 1
    assert f"  every reason: {all_reasons_query()}" in lines
    # The query it points to lists every reason, the one left out included.
    with warehouse.engine(warehouse_url).connect() as conn:
        every = conn.execute(sa.text(all_reasons_query())).all()
    contracts = sorted(row.failed_expectations for row in every if row.source_table == "contracts")
    assert len(contracts) == 4 and contracts[-1] == '["end_date must be >= start_date"]'
