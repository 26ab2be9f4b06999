"""A CRM account table like the demo CRM's, for the sql adapter's tests."""

from __future__ import annotations

import sqlalchemy as sa


def crm_table(metadata: sa.MetaData, schema: str | None = None) -> sa.Table:
    return sa.Table(
        "crm_account",
        metadata,
        sa.Column("Id", sa.Text),
        sa.Column("Name", sa.Text),
        sa.Column("Value_Tier__c", sa.Text),
        sa.Column("Quadrant__c", sa.Text),
        sa.Column("Segment_Lifecycle_Stage__c", sa.Text),
        sa.Column("Health_Score__c", sa.Float),
        sa.Column("Engagement_Model__c", sa.Text),
        sa.Column("Case_Study_Candidate__c", sa.Integer),
        sa.Column("Segment_Updated_At__c", sa.Text),
        sa.Column("Manual_Segment_Lock__c", sa.Integer, nullable=False, server_default="0"),
        schema=schema,
    )


def crm_rows(url: str) -> dict[str, dict]:
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        rows = conn.execute(sa.text('select * from crm_account order by "Id"')).mappings().all()
    engine.dispose()
    return {row["Id"]: dict(row) for row in rows}


def seed_crm(url: str, rows: list[dict]) -> None:
    engine = sa.create_engine(url)
    table = crm_table(sa.MetaData())
    with engine.begin() as conn:
        # Every row with every column: an executemany compiles the columns of the first row only.
        blank = {column.name: None for column in table.c} | {"Manual_Segment_Lock__c": 0}
        conn.execute(table.insert(), [blank | r for r in rows])
    engine.dispose()


def tiny_warehouse_and_crm(crm_dir) -> str:
    """Load the tiny source (full refresh) and seed a SQLite CRM with its accounts, F001 locked.

    Returns the CRM's URL; the caller points POSTSALES_CRM_SYNC_URL at it.
    """
    import tiny
    from postsales.extract import extract_entity
    from postsales.sources import Interval

    for entity in ("accounts", "contracts", "survey_responses", "usage_daily"):
        extract_entity(entity, interval=Interval(tiny.DAY1, tiny.DAY3, full_refresh=True), run_id="r",
                       build_data_docs=False)  # fmt: skip
    url = f"sqlite:///{crm_dir / 'crm.sqlite'}"
    engine = sa.create_engine(url)
    crm_table(sa.MetaData()).create(engine)
    engine.dispose()
    seed_crm(url, [{"Id": a, "Manual_Segment_Lock__c": int(a == "F001")} for a in [*tiny.FILLERS, "A1", "A2", "A3"]])
    return url
