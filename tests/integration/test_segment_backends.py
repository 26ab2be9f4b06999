"""DuckDB and PostgreSQL give the same features, segments and health components."""

from __future__ import annotations

import random
from datetime import date, datetime, timedelta

import pytest

import segment_fixtures as fx
from postsales import warehouse
from postsales.segment.engine import compute_segments

DATES = [date(2024, 3, 31), date(2024, 6, 30), date(2024, 9, 30)]
INDUSTRIES = ["Software", "Media", "Healthcare", "Retail", "Education", "Mining", "software", None]


def random_staging(seed: int = 20241130, accounts: int = 40) -> dict[str, list[dict]]:
    """A seeded, varied staging set: versions, overlapping contracts, surveys, sparse usage."""
    rng = random.Random(seed)
    start = date(2022, 6, 1)

    def day(lo: int, hi: int) -> date:
        return start + timedelta(days=rng.randint(lo, hi))

    def moment(lo: int, hi: int) -> datetime:
        return datetime.combine(day(lo, hi), datetime.min.time()) + timedelta(minutes=rng.randint(0, 1439))

    out: dict[str, list[dict]] = {"accounts": [], "contracts": [], "surveys": [], "usage": []}
    for index in range(accounts):
        account_id = f"X{index:02d}"
        created = moment(0, 700)
        for _ in range(rng.randint(1, 3)):
            out["accounts"].append(
                fx.account(
                    account_id,
                    created_at=created,
                    updated_at=created + timedelta(days=rng.randint(0, 500), minutes=rng.randint(0, 1000)),
                    industry=rng.choice(INDUSTRIES),
                    employee_count=rng.choice([None, rng.randint(1, 12_000)]),
                    annual_revenue=rng.choice([None, float(rng.randint(1, 2_000)) * 1e6]),
                    wallet_potential_arr=rng.choice([None, 0.0, float(rng.randint(1, 300)) * 1_000]),
                    go_live_date=rng.choice([None, day(0, 900)]),
                    referenceable=rng.choice([None, True, False]),
                    segment_override=rng.choice([None, None, None, "Enterprise", "SMB"]),
                )
            )
        for number in range(rng.randint(1, 3)):
            contract_start = day(0, 850)
            end = rng.choice([None, contract_start + timedelta(days=rng.choice([89, 364, 729]))])
            out["contracts"].append(
                fx.contract(f"{account_id}-{number}", account_id, contract_start, end, rng.randint(0, 1_500) * 100)
            )
        for _ in range(rng.randint(0, 6)):
            kind = rng.choice(["nps", "csat"])
            score = rng.randint(0, 10) if kind == "nps" else rng.randint(1, 5)
            out["surveys"].append({**fx.nps(account_id, moment(300, 880), score), "survey_type": kind})
        seats = rng.randint(1, 60)
        for usage_day in sorted({day(500, 880) for _ in range(rng.randint(0, 50))}):
            active = rng.randint(0, seats)
            out["usage"].append(
                fx.usage(account_id, usage_day, active, seats, active * rng.randint(0, 40), rng.randint(0, 25))
            )
    return out


def _load_and_compute(url: str) -> dict:
    fx.load_scenario(url)
    data = random_staging()
    fx.load_staging(
        url, accounts=data["accounts"], contracts=data["contracts"], surveys=data["surveys"], usage_rows=data["usage"]
    )
    result = {}
    for as_of in DATES:
        compute_segments(as_of, warehouse_url=url)
        result[as_of] = {
            "features": fx.features(url, as_of),
            "segments": fx.comparable_segments(fx.segments(url, as_of)),
            "components": {f"{a}/{c}": row for (a, c), row in fx.health_components(url, as_of).items()},
            "data_gaps": sorted(f"{a}/{f}/{d}" for a, f, d in fx.data_gaps(url, as_of)),
        }
    return result


@pytest.mark.postgres
def test_duckdb_and_postgres_agree(tmp_path, pg_database):
    duck = f"duckdb:///{tmp_path / 'agree.duckdb'}"
    fx.reset_postgres(pg_database)
    try:
        results = {url: _load_and_compute(url) for url in (duck, pg_database)}
    finally:
        warehouse.dispose_all()
    left, right = results[duck], results[pg_database]
    for as_of in DATES:
        assert len(left[as_of]["segments"]) > 10, "the random set should give plenty of customers"
        # Everything, explanation JSON included, within a relative 1e-9 on floats.
        differences = fx.close(left[as_of], right[as_of], str(as_of))
        assert not differences, "\n".join(differences[:30])
    quadrants = {row["quadrant"] for day in left.values() for row in day["segments"].values()}
    assert quadrants == {"Grow", "Protect", "Re-evaluate", "Manage", "Unclassified"}, "every quadrant, Unclassified"
    assert any(day["data_gaps"] for day in left.values())
