"""The ``spark+connect://`` SQLAlchemy dialect (postsales.spark.dialect) on a real Spark: the
project's own read calls and the four big Core statements of the segmentation and cohort stages
return the rows they return on the DuckDB warehouse the Spark one was copied from.

The DuckDB warehouse is filled by the pipeline on the tiny data (test_sql_files.load) and copied
into Spark as test_spark_sql_files does (spark_warehouse.copy_to_spark).
"""

from __future__ import annotations

import json
import time
from collections import Counter
from datetime import date, datetime
from decimal import Decimal

import pandas as pd
import pytest
import sqlalchemy as sa
from test_sql_files import PARAMS, load, normalise

import tiny
from postsales import cohorts, tables, warehouse
from postsales.segment import engine
from postsales.segment.rules import load_rules
from postsales.spark.dialect import register
from spark_warehouse import copy_to_spark

# The first test starts the shared Spark server (10-30 s) and fills and copies a warehouse (~100 s alone,
# several times that on a busy machine): above the suite's 600 s per test.
pytestmark = [pytest.mark.spark, pytest.mark.slow, pytest.mark.timeout(1800)]

AS_OF = PARAMS["as_of_date"]
COMPUTED_AT = datetime(2024, 3, 2, 6, 0)


# The first three accounts lose inputs, the third its account row too, so that data gaps and "missing" are not empty.
GAPS = """
update mart.account_features set
    employee_count = case when picked.position = 1 then null else employee_count end,
    industry = null, nps_latest = null, usage_days = null,
    account_known = picked.position < 3
from (
    select account_id as picked_id, row_number() over (order by account_id) as position
    from mart.account_features where as_of_date = :as_of_date
) as picked
where as_of_date = :as_of_date and account_id = picked.picked_id and picked.position <= 3
"""


@pytest.fixture(scope="module")
def both(spark, spark_url, tmp_path_factory):
    """(DuckDB engine, Spark engine): the DuckDB warehouse the pipeline filled, and its copy on Spark."""
    directory = tmp_path_factory.mktemp("spark_dialect")
    duck = f"duckdb:///{directory / 'w.duckdb'}"
    with pytest.MonkeyPatch.context() as env:
        env.setenv("POSTSALES_DATA_DIR", str(directory / "data"))
        env.setenv("POSTSALES_SOURCE_DIR", str(tiny.build(directory / "source")))
        env.setenv("POSTSALES_WAREHOUSE_URL", duck)
        start = time.monotonic()
        load(duck)
        print(f"DuckDB warehouse filled: {time.monotonic() - start:.1f} s")
        with warehouse.engine(duck).begin() as conn:  # the tiny data has no data gaps: make a few
            conn.execute(sa.text(GAPS), {"as_of_date": AS_OF})
        start = time.monotonic()
        copy_to_spark(spark, duck, directory)
        print(f"copied into Spark: {time.monotonic() - start:.1f} s")
        yield warehouse.engine(duck), warehouse.engine(spark_url)
    warehouse.dispose_all()


def plain(value):
    """A value as both warehouses can be compared: query_frame on DuckDB gives pandas Timestamps
    (datetime64 columns) and NaN for nulls, elsewhere Python values."""
    if isinstance(value, pd.Timestamp):
        value = value.date() if value == value.normalize() else value.to_pydatetime()
    elif value is pd.NA or value is pd.NaT:
        value = None
    return normalise(value)


def bag(rows) -> Counter:
    return Counter(tuple(plain(v) for v in row) for row in rows)


def timed(label: str, call):
    start = time.monotonic()
    out = call()
    print(f"{label}: {time.monotonic() - start:.2f} s")
    return out


def test_warehouse_query_returns_duckdbs_rows(both):
    duck, spark = both
    with duck.connect() as d, spark.connect() as s:
        for stage, name, params in [
            ("reports", "segmentation_accounts", {"as_of_date": AS_OF}),
            ("cohorts", "mrr_movements", {"snapshot_month": PARAMS["snapshot_month"]}),
        ]:
            want = warehouse.query(d, stage, name, **params)
            got = timed(f"query {stage}/{name}", lambda: warehouse.query(s, stage, name, **params))  # noqa: B023
            assert want, f"{stage}/{name}: no rows on the tiny data"
            assert list(got[0]._fields) == list(want[0]._fields)
            assert bag(got) == bag(want), f"{stage}/{name}"


def test_warehouse_query_frame_returns_duckdbs_values(both):
    duck, spark = both
    params = {"as_of_date": AS_OF, "months": PARAMS["months"], "usage_days": PARAMS["usage_days"]}
    with duck.connect() as d, spark.connect() as s:
        want = warehouse.query_frame(d, "forecast", "account_trajectories", **params)
        got = timed("query_frame", lambda: warehouse.query_frame(s, "forecast", "account_trajectories", **params))
    assert len(want) > 0 and list(got.columns) == list(want.columns)
    rows = lambda frame: frame.astype(object).itertuples(index=False)  # noqa: E731
    assert bag(rows(got)) == bag(rows(want))


def core_statements(dialect: str) -> dict[str, tuple[sa.Select, dict]]:
    rules = load_rules()
    month = {"snapshot_month": PARAMS["snapshot_month"], "next_month": PARAMS["next_month"]}
    return {
        "cohorts.compile_account_segments": (cohorts.compile_account_segments(cohorts.load_settings(), rules), month),
        "engine.compile_health_components": (engine.compile_health_components(rules), {"as_of_date": AS_OF}),
        "engine.compile_data_gaps": (engine.compile_data_gaps(rules), {"as_of_date": AS_OF}),
        "engine.compile_segments": (
            engine.compile_segments(rules, dialect),
            {"as_of_date": AS_OF, "computed_at": COMPUTED_AT},
        ),
    }


@pytest.mark.parametrize("name", list(core_statements("duckdb")))
def test_core_statement_returns_duckdbs_rows(both, name):
    duck, spark = both
    statement, params = core_statements("duckdb")[name]
    with duck.connect() as d:
        result = d.execute(statement, params)
        columns, want = list(result.keys()), [tuple(r) for r in result]
    statement, params = core_statements("spark")[name]
    with spark.connect() as s:
        result = timed(name, lambda: s.execute(statement, params))
        assert list(result.keys()) == columns
        got = [tuple(r) for r in result]
    assert want, f"{name}: no rows on the tiny data"
    if "explanation" not in columns:
        assert bag(got) == bag(want)
        return
    at = columns.index("explanation")
    without = lambda rows: bag(row[:at] + row[at + 1 :] for row in rows)  # noqa: E731
    assert without(got) == without(want)
    key = [columns.index("as_of_date"), columns.index("account_id")]
    explained = lambda rows: {tuple(row[i] for i in key): row[at] for row in rows}  # noqa: E731
    want_text, got_text = explained(want), explained(got)
    assert got_text.keys() == want_text.keys()
    for account, text in want_text.items():
        # Parsed: the same keys in the same order, nested objects and arrays as such, equal values
        assert list(json.loads(got_text[account]).items()) == list(json.loads(text).items()), account
    parts = [part for text in got_text.values() for part in json.loads(text).values() if isinstance(part, dict)]
    missing = [part.get("missing") for part in parts]
    assert any(missing) and [] in missing  # gap arrays, empty and not, nested as arrays (not text)
    # And as text: Spark's to_json writes what DuckDB's json_object does (key order, numbers, nulls)
    same_text = sum(got_text[account] == text for account, text in want_text.items())
    print(f"explanation: {same_text}/{len(want_text)} texts identical")
    assert same_text == len(want_text)


def test_has_table_and_columns_through_the_catalog(both):
    _, spark = both
    inspector = sa.inspect(spark)
    assert inspector.has_table("account_segments", schema="mart")
    assert not inspector.has_table("no_such_table", schema="mart")
    assert not inspector.has_table("account_segments", schema="no_such_schema")
    assert "account_segments" in inspector.get_table_names(schema="mart")
    assert "account_segments_current" not in inspector.get_table_names(schema="mart")
    assert "account_segments_current" in inspector.get_view_names(schema="mart")
    home = tables.table("mart.account_segments")
    columns = {c["name"]: c["type"] for c in inspector.get_columns("account_segments", schema="mart")}
    assert set(columns) == {c.name for c in home.columns}
    assert isinstance(columns["as_of_date"], sa.Date) and isinstance(columns["arr"], type(home.c.arr.type))


def test_an_expanding_in(both):
    duck, spark = both
    segments = tables.table("mart.account_segments")
    select = (
        sa.select(segments.c.account_id, segments.c.quadrant)
        .where(segments.c.as_of_date == AS_OF, segments.c.account_id.in_(sa.bindparam("ids", expanding=True)))
        .order_by(segments.c.account_id)
    )
    with duck.connect() as d, spark.connect() as s:
        ids = d.scalars(sa.select(segments.c.account_id).where(segments.c.as_of_date == AS_OF)).all()
        asked = [*ids[:3], "it's not an account"]
        want = d.execute(select, {"ids": asked}).all()
        got = s.execute(select, {"ids": asked}).all()
        one = s.execute(select, {"ids": [want[1].account_id]}).all()
    assert len(want) == 3
    assert [tuple(r) for r in got] == [tuple(r) for r in want]
    assert [tuple(r) for r in one] == [tuple(want[1])]


VALUES = {
    "d": (date(2024, 2, 29), "date"),
    "ts": (datetime(2024, 2, 29, 23, 59, 58, 123456), "timestamp"),
    "dec": (Decimal("1234.567890"), "decimal(10,6)"),
    "s": ("O'Brien; drop table x --", "string"),
    "i": (12, "int"),
    "f": (0.25, "double"),
    "b": (True, "boolean"),
    "n": (None, "void"),
}


def test_parameters_keep_their_types(both):
    _, spark = both
    names = list(VALUES)
    sql = "select " + ", ".join(f":{n} as {n}, typeof(:{n}) as {n}_type" for n in names)
    with spark.connect() as s:
        row = s.execute(sa.text(sql), {n: value for n, (value, _) in VALUES.items()}).one()
    for n, (value, spark_type) in VALUES.items():
        assert row._mapping[f"{n}_type"] == spark_type, n
        got = row._mapping[n]
        assert got == value and type(got) is type(value), (n, got)


def test_a_none_parameter_compares_as_null(both):
    _, spark = both
    with spark.connect() as s:
        assert s.execute(sa.text("select cast(:v as date) is null"), {"v": None}).scalar_one() is True
        assert s.execute(sa.text("select :v + interval '1' day"), {"v": date(2024, 2, 28)}).scalar_one() == date(
            2024, 2, 29
        )


def test_json_keeps_nulls_and_writes_large_and_small_doubles_in_exponent_form(spark_url):
    """What engine.json_object documents: the dialect's sessions keep null fields; a double of
    1e7 or more, or under 1e-3, is written 1.2345678E7 where DuckDB writes 12345678.0 (the same
    number parsed)."""
    register()
    spark, duck = sa.create_engine(spark_url), sa.create_engine("duckdb:///:memory:")
    sql = "select cast({}('big', cast(:big as double), 'small', cast(:small as double), 'none', null) as text)"
    params = {"big": 12345678.0, "small": 0.00001}
    try:
        with spark.connect() as s, duck.connect() as d:
            got = s.execute(sa.text(sql.format("json_build_object")), params).scalar_one()
            want = d.execute(sa.text(sql.format("json_object")), params).scalar_one()
    finally:
        spark.dispose()
    assert got == '{"big":1.2345678E7,"small":1.0E-5,"none":null}'
    assert want == '{"big":12345678.0,"small":0.00001,"none":null}'
    assert json.loads(got) == json.loads(want)
