"""Deterministic synthetic post-sales SaaS data in the "file source" contract.

Run from the repository root::

    PYTHONPATH=plugins:devtools python -m postsales_dev.demo --accounts 1000 --seed 42 --out data/demo

or call :func:`generate` directly.  The same arguments always produce
byte-identical CSV files: every random draw comes from
``numpy.random.default_rng`` seeded with ``[seed, stream]`` (one independent
stream per concern) and nothing reads the wall clock.

Everything is vectorised with numpy.  Usage is generated one day at a time
from per-account state arrays and written straight to its Parquet file, so
memory stays flat even for 100,000 accounts (~40M usage rows).

See ``docs/demo-data.md`` for the file layout, the CRM column mapping, the
deliberately bad rows and the modelling assumptions.

Heavy libraries are imported inside the functions (like the rest of the
package) so importing this module stays cheap.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import sys
from contextlib import closing
from datetime import date, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Iterator

    import numpy as np
    import pandas as pd

__all__ = [
    "ACCOUNT_COLUMNS",
    "BAD_ROW_KINDS",
    "CONTRACT_COLUMNS",
    "COUNTRIES",
    "CRM_TABLES",
    "DEFAULT_AS_OF",
    "HISTORY_DAYS",
    "INDUSTRIES",
    "LIFECYCLE_STAGES",
    "PLANS",
    "PRICING_CHANGE_DATE",
    "SEGMENTS",
    "SURVEY_COLUMNS",
    "USAGE_COLUMNS",
    "demo_status",
    "generate",
    "main",
]

DEFAULT_AS_OF = date(2026, 10, 31)
# What a directory was generated with, written last: a directory without it was not written by
# this generator, or its generation did not finish.
MANIFEST_FILE = "_demo.json"
HISTORY_DAYS = 1096  # three years up to and including as_of
PRICING_CHANGE_DATE = date(2025, 1, 1)

LIFECYCLE_STAGES = ("Implementation", "Hypercare", "Adoption", "Expansion", "Renewal")
SEGMENTS = ("SMB", "Mid-Market", "Enterprise")
# Plan codes index this tuple.  "Growth 2025" replaces "Growth" for contracts
# starting on or after PRICING_CHANGE_DATE (list price +10 % for new logos,
# +8 % on renewal onto the new plan, slightly higher churn).
PLANS = ("Pilot", "Starter", "Growth", "Growth 2025", "Business", "Enterprise")
_PILOT, _STARTER, _GROWTH, _GROWTH_2025, _BUSINESS, _ENTERPRISE = range(6)
_PLAN_BANDS = (12_000.0, 50_000.0, 150_000.0)  # Starter | Growth | Business | Ent.

BAD_ROW_KINDS = {
    "null_account_id": "accounts",
    "duplicate_account_id": "accounts",
    "unknown_lifecycle_stage": "accounts",
    "non_numeric_arr": "contracts",
    "negative_arr": "contracts",
    "end_before_start": "contracts",
    "unknown_account_id": "contracts",
    "score_out_of_range": "survey_responses",
    "future_usage_date": "usage_daily",
}

ACCOUNT_COLUMNS = (
    "account_id",
    "name",
    "industry",
    "employee_count",
    "annual_revenue",
    "country",
    "created_at",
    "updated_at",
    "wallet_potential_arr",
    "go_live_date",
    "lifecycle_stage",
    "referenceable",
    "segment_override",
)
CONTRACT_COLUMNS = ("contract_id", "account_id", "start_date", "end_date", "arr", "plan", "updated_at")
SURVEY_COLUMNS = ("account_id", "responded_at", "survey_type", "score")
USAGE_COLUMNS = ("account_id", "usage_date", "active_users", "licensed_seats", "events", "features_used")

# Contract kinds (internal only).
_MAIN, _ADDON, _PILOT_KIND, _MONTHLY = range(4)

_EPOCH = date(1970, 1, 1)
_SECONDS_PER_DAY = 86_400
_OPEN_END = 10**7  # internal "no end date" sentinel (epoch day ~ year 29000)
_KEY = 10**8  # account index * _KEY + epoch day, for sorted look-ups
_SEAT_PRICE = 600.0
_MAX_FEATURES = 40

# Random streams: one per concern so that changing one part of the model
# does not reshuffle the others.
(_S_ACCOUNTS, _S_CONTRACTS, _S_PROFILE, _S_SURVEYS, _S_USAGE, _S_BAD, _S_CRM) = range(1, 8)

# Lognormal starting ARR: P(<25k) = 0.70, P(<100k) = 0.95.
_ARR_MU = 9.478
_ARR_SIGMA = 1.237

_INDUSTRIES = (
    ("Software", 0.18, 250_000, ("Labs", "Software", "Systems", "Cloud", "Digital")),
    ("Financial Services", 0.13, 400_000, ("Capital", "Financial", "Bank", "Insurance", "Wealth")),
    ("Healthcare", 0.11, 150_000, ("Health", "Medical", "Care", "Clinics", "Pharma")),
    ("Retail", 0.10, 200_000, ("Retail", "Stores", "Goods", "Outfitters", "Brands")),
    ("Manufacturing", 0.11, 250_000, ("Manufacturing", "Industries", "Components", "Works", "Materials")),
    ("Education", 0.07, 100_000, ("Academy", "Learning", "University", "Schools", "Institute")),
    ("Media", 0.07, 200_000, ("Media", "Studios", "Publishing", "Press", "Network")),
    ("Logistics", 0.08, 220_000, ("Logistics", "Freight", "Transport", "Shipping", "Express")),
    ("Public Sector", 0.05, 120_000, ("County", "City Council", "Agency", "Authority", "Commission")),
    ("Professional Services", 0.10, 180_000, ("Consulting", "Advisory", "Associates", "Legal", "Partners")),
)

_COUNTRIES = (
    ("US", 0.38, (" Inc", " LLC", " Corp", "")),
    ("GB", 0.10, (" Ltd", " plc", "")),
    ("DE", 0.08, (" GmbH", " AG")),
    ("FR", 0.06, (" SAS", " SA")),
    ("CA", 0.05, (" Inc", " Ltd", "")),
    ("AU", 0.04, (" Pty Ltd", "")),
    ("NL", 0.04, (" B.V.", " N.V.")),
    ("IN", 0.04, (" Pvt Ltd", " Ltd")),
    ("SE", 0.03, (" AB",)),
    ("BR", 0.03, (" Ltda", " S.A.")),
    ("JP", 0.03, (" K.K.", " Co., Ltd.")),
    ("ES", 0.03, (" S.L.", " S.A.")),
    ("SG", 0.02, (" Pte Ltd",)),
    ("IT", 0.02, (" S.r.l.", " S.p.A.")),
    ("IE", 0.02, (" Ltd", " DAC")),
    ("CH", 0.02, (" AG", " GmbH", " SA")),
    ("DK", 0.01, (" A/S",)),
)

INDUSTRIES = tuple(x[0] for x in _INDUSTRIES)
COUNTRIES = tuple(x[0] for x in _COUNTRIES)
CRM_TABLES = ("crm_account", "crm_contract", "crm_survey_response")

_NAME_PREFIXES = (
    "Acme", "Apex", "Arbor", "Atlas", "Aurora", "Beacon", "Birch", "Blue Harbor",
    "Bright", "Brookfield", "Cascade", "Cedar", "Clearwater", "Cobalt", "Copper",
    "Crescent", "Crestline", "Delta", "Ember", "Evergreen", "Falcon", "Fjord",
    "Frontier", "Golden Gate", "Granite", "Harbor", "Helix", "Highland", "Horizon",
    "Ironwood", "Juniper", "Keystone", "Lakeside", "Lighthouse", "Lumen", "Maple",
    "Meridian", "Nimbus", "North Star", "Northwind", "Oakmont", "Orbit", "Pacific",
    "Peak", "Pinecrest", "Pinnacle", "Prairie", "Quantum", "Redwood", "Ridgeway",
    "Riverside", "Sage", "Sierra", "Silverline", "Slate", "Solstice", "Spruce",
    "Stonebridge", "Summit", "Sunrise", "Terra", "Tidewater", "Trident", "Union",
    "Vantage", "Vertex", "Willow", "Zenith", "Alder", "Bluebird", "Canyon",
    "Driftwood", "Everest", "Foxglove", "Glacier", "Hawthorn", "Indigo", "Jasper",
    "Kestrel", "Larch", "Monarch", "Nova", "Onyx", "Osprey", "Quarry", "Raven",
    "Sequoia", "Tamarack", "Upland", "Valley", "Westbrook", "Yellowstone",
)  # fmt: skip


# --------------------------------------------------------------------------
# small helpers
# --------------------------------------------------------------------------


def _rng(seed: int, stream: int) -> np.random.Generator:
    import numpy as np

    return np.random.default_rng([seed, stream])


def _epoch_day(d: date) -> int:
    return (d - _EPOCH).days


def _add_months(days: np.ndarray, months: np.ndarray | int) -> np.ndarray:
    """Add calendar months to epoch days, clamping to the end of the month."""
    import numpy as np

    d = np.asarray(days, dtype=np.int64).astype("datetime64[D]")
    m = d.astype("datetime64[M]")
    dom = (d - m.astype("datetime64[D]")).astype(np.int64)
    k = np.broadcast_to(np.asarray(months, dtype=np.int64), d.shape)
    nm = m + k.astype("timedelta64[M]")
    first = nm.astype("datetime64[D]")
    dim = ((nm + np.timedelta64(1, "M")).astype("datetime64[D]") - first).astype(np.int64)
    return (first + np.minimum(dom, dim - 1)).astype(np.int64)


def _month_start(days: np.ndarray, months_ahead: int) -> np.ndarray:
    import numpy as np

    d = np.asarray(days, dtype=np.int64).astype("datetime64[D]")
    m = d.astype("datetime64[M]") + np.timedelta64(months_ahead, "M")
    return m.astype("datetime64[D]").astype(np.int64)


def _date_str(days: np.ndarray, null: np.ndarray | None = None) -> np.ndarray:
    import numpy as np

    out = np.asarray(days, dtype=np.int64).astype("datetime64[D]").astype(str)
    out = out.astype(object)
    if null is not None:
        out[null] = ""
    return out


def _ts_str(seconds: np.ndarray) -> np.ndarray:
    import numpy as np

    return (np.asarray(seconds, dtype=np.int64).astype("datetime64[s]").astype(str)).astype(object)


def _money_str(values: np.ndarray) -> np.ndarray:
    import numpy as np

    return np.char.mod("%.2f", np.round(np.asarray(values, dtype=float), 2)).astype(object)


def _plan_code(arr: np.ndarray, start: np.ndarray, change_day: int) -> np.ndarray:
    import numpy as np

    band = np.searchsorted(np.asarray(_PLAN_BANDS), arr, side="right")
    code = np.array([_STARTER, _GROWTH, _BUSINESS, _ENTERPRISE])[band]
    return np.where((code == _GROWTH) & (start >= change_day), _GROWTH_2025, code)


def _churn_probability(h: np.ndarray, plan: np.ndarray, arr: np.ndarray) -> np.ndarray:
    """Probability of not renewing at an annual renewal, decreasing in health."""
    import numpy as np

    size = np.where(arr < 25_000, 1.15, np.where(arr < 100_000, 0.9, 0.6))
    p = (0.025 + 0.6 * (1.0 - h) ** 2) * size + 0.03 * (plan == _GROWTH_2025)
    return np.clip(p, 0.005, 0.9)


def _seats(arr: np.ndarray) -> np.ndarray:
    import numpy as np

    return np.maximum(1, np.rint(np.asarray(arr) / _SEAT_PRICE)).astype(np.int64)


def _interleave(n_good: int, n_bad: int, rng: np.random.Generator) -> np.ndarray:
    """Deterministic row order putting n_bad rows at random places among n_good.

    The result indexes the concatenation good + bad; good rows keep their order.
    """
    import numpy as np

    key = np.concatenate([2 * np.arange(n_good) + 1, 2 * rng.integers(0, n_good + 1, n_bad)])
    return np.argsort(key, kind="stable")


# --------------------------------------------------------------------------
# accounts (static attributes)
# --------------------------------------------------------------------------


def _company_names(rng: np.random.Generator, industry: np.ndarray, country: np.ndarray) -> np.ndarray:
    import numpy as np

    n = industry.shape[0]
    prefix = np.asarray(_NAME_PREFIXES, dtype=object)[rng.integers(0, len(_NAME_PREFIXES), n)]
    core_pick = rng.integers(0, 5, n)
    suffix_pick = rng.random(n)
    cores = np.empty(n, dtype=object)
    for i, (_, _, _, words) in enumerate(_INDUSTRIES):
        m = industry == i
        cores[m] = np.asarray(words, dtype=object)[core_pick[m]]
    suffix = np.empty(n, dtype=object)
    for i, (_, _, options) in enumerate(_COUNTRIES):
        m = country == i
        opts = np.asarray(options, dtype=object)
        suffix[m] = opts[(suffix_pick[m] * len(opts)).astype(np.int64)]
    public = industry == [x[0] for x in _INDUSTRIES].index("Public Sector")
    suffix[public] = ""
    return prefix + " " + cores + suffix


def _make_accounts(rng: np.random.Generator, n: int, hist_start: int, as_of_day: int) -> dict[str, Any]:
    import numpy as np

    # Acquisition day: density rising linearly over the window (the last
    # year sees ~1.5x the first year's new logos).  Inverse CDF sampling.
    b = 0.6
    u = rng.random(n)
    t = (np.sqrt(1.0 + 2.0 * b * u * (1.0 + b / 2.0)) - 1.0) / b
    acq = hist_start + np.minimum((t * HISTORY_DAYS).astype(np.int64), HISTORY_DAYS - 1)
    next_first = _month_start(acq, 1)
    snap = (rng.random(n) < 0.45) & (next_first <= as_of_day)
    acq = np.sort(np.where(snap, next_first, acq))  # ids follow acquisition order

    arr = np.exp(rng.normal(_ARR_MU, _ARR_SIGMA, n))
    n_large = n // 250 if n >= 250 else int(n >= 50)
    large = np.zeros(n, dtype=bool)
    if n_large:
        large_idx = rng.choice(n, n_large, replace=False)
        large[large_idx] = True
        arr[large_idx] = np.exp(rng.uniform(np.log(4e5), np.log(2.5e6), n_large))
    arr = np.maximum(1_200.0, np.round(arr / 100.0) * 100.0)

    health = np.clip(rng.beta(4.0, 2.0, n), 0.02, 0.98)
    ind_w = np.array([x[1] for x in _INDUSTRIES])
    industry = rng.choice(len(_INDUSTRIES), n, p=ind_w / ind_w.sum())
    c_w = np.array([x[1] for x in _COUNTRIES])
    country = rng.choice(len(_COUNTRIES), n, p=c_w / c_w.sum())

    log_emp = np.log(120.0) + 1.15 * (np.log(arr) - np.log(13_000.0))
    employees = np.clip(np.rint(np.exp(log_emp + rng.normal(0.0, 0.7, n))), 5, 200_000).astype(np.int64)
    rev_per_emp = np.array([x[2] for x in _INDUSTRIES], dtype=float)[industry]
    revenue = np.round(employees * rev_per_emp * np.exp(rng.normal(0.0, 0.4, n)), -3).astype(np.int64)
    revenue = np.maximum(revenue, 100_000)
    revenue_missing = rng.random(n) < 0.02

    monthly = (arr < 25_000) & ~large & (rng.random(n) < 0.07)
    pilot = ~monthly & (rng.random(n) < 0.015)
    # Fast growers: healthy, not yet Enterprise; biased to accounts that can
    # cross a tier boundary (SMB near 25k, Mid-Market above 40k).
    near_boundary = ((arr >= 12_000) & (arr < 25_000)) | ((arr >= 40_000) & (arr < 100_000))
    fast = ~monthly & (health > 0.6) & (arr < 100_000) & (rng.random(n) < np.where(near_boundary, 0.10, 0.02))
    fast_rate = np.where(fast, rng.uniform(0.05, 0.10, n), 0.0)
    fast_terms = np.where(fast, 1 + (rng.random(n) < 0.4), 0)
    health = np.where(fast, np.maximum(health, 0.75), health)
    # Per-account usage intensity: events per active user per day.
    intensity = np.clip(np.exp(rng.normal(np.log(28.0), 0.35, n)), 10.0, 60.0)
    names = _company_names(rng, industry, country)

    return {
        "n": n,
        "acq": acq,
        "arr": arr,
        "health": health,
        "industry": industry,
        "country": country,
        "employees": employees,
        "revenue": revenue,
        "revenue_missing": revenue_missing,
        "monthly": monthly,
        "pilot": pilot,
        "fast_rate": fast_rate,
        "fast_terms": fast_terms,
        "intensity": intensity,
        "names": names,
    }


# --------------------------------------------------------------------------
# contracts (vectorised renewal simulation)
# --------------------------------------------------------------------------


class _Emitter:
    """Collects contract records emitted by the simulation."""

    _FIELDS = ("acc", "start", "end", "arr", "plan", "kind", "health", "seats")

    def __init__(self) -> None:
        self.parts: dict[str, list[np.ndarray]] = {f: [] for f in self._FIELDS}

    def emit(self, mask: np.ndarray | None = None, **cols: Any) -> None:
        import numpy as np

        size = np.shape(cols["acc"])[0]
        for f in self._FIELDS:
            v = np.broadcast_to(np.asarray(cols[f]), (size,))
            self.parts[f].append(v if mask is None else v[mask])

    def arrays(self) -> dict[str, np.ndarray]:
        import numpy as np

        return {f: np.concatenate(v) for f, v in self.parts.items()}


def _simulate_contracts(
    rng: np.random.Generator, a: dict[str, Any], as_of_day: int, change_day: int
) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]:
    """Simulate contract histories.

    Returns (contracts, churn_acc, churn_day).  Churn events include decisions
    for renewals after as_of (they never show in the data but make usage fall
    in the run-up, as it does for real churners).
    """
    import numpy as np

    em = _Emitter()
    churn_acc: list[np.ndarray] = []
    churn_day: list[np.ndarray] = []
    acq, arr0, h0 = a["acq"], a["arr"], a["health"]

    # -- monthly evergreen contracts (empty end_date unless cancelled) --------
    m_idx = np.flatnonzero(a["monthly"])
    s = acq[m_idx]
    base = arr0[m_idx]
    plan = _plan_code(base, s, change_day)
    base = np.round(np.where(plan == _GROWTH_2025, base * 1.10, base), 2)
    p_year = _churn_probability(h0[m_idx], plan, base)
    q = np.clip((1.0 - (1.0 - p_year) ** (1.0 / 12.0)) * 1.6, 1e-4, 0.5)
    months = rng.geometric(q)
    stop = _add_months(s, months)  # first day without service
    end = np.where(stop - 1 >= as_of_day, _OPEN_END, stop - 1)
    churn_acc.append(m_idx)
    churn_day.append(stop - 1)
    em.emit(acc=m_idx, start=s, end=end, arr=base, plan=plan, kind=_MONTHLY, health=h0[m_idx], seats=_seats(base))

    # -- free pilots (zero ARR, three months), 75 % convert ------------------
    p_idx = np.flatnonzero(a["pilot"])
    ps = acq[p_idx]
    p_next = _add_months(ps, 3)
    convert = rng.random(p_idx.shape[0]) < 0.75
    em.emit(
        acc=p_idx,
        start=ps,
        end=p_next - 1,
        arr=0.0,
        plan=_PILOT,
        kind=_PILOT_KIND,
        health=h0[p_idx],
        seats=np.clip(_seats(arr0[p_idx]), 3, 25),
    )
    churn_acc.append(p_idx[~convert])
    churn_day.append(p_next[~convert] - 1)
    conv = convert & (p_next <= as_of_day)

    # -- annual contract chains ---------------------------------------------
    annual = ~a["monthly"] & ~a["pilot"]
    acc = np.concatenate([np.flatnonzero(annual), p_idx[conv]])
    s = np.concatenate([acq[annual], p_next[conv]])
    order = np.argsort(acc, kind="stable")
    acc, s = acc[order], s[order]
    base = arr0[acc]
    plan = _plan_code(base, s, change_day)
    base = np.round(np.where(plan == _GROWTH_2025, base * 1.10, base), 2)
    h = h0[acc]
    rate = a["fast_rate"][acc]
    fast_left = a["fast_terms"][acc].astype(np.int64)
    reactivated = np.zeros(acc.shape[0], dtype=bool)

    while acc.shape[0]:
        k = acc.shape[0]
        e = _add_months(s, 12) - 1  # inclusive end of the annual term
        plan = _plan_code(base, s, change_day)
        em.emit(acc=acc, start=s, end=e, arr=base, plan=plan, kind=_MAIN, health=h, seats=_seats(base))
        total = base.copy()
        fast = rate > 0
        # Fast growers: quarterly co-termed add-ons tracking compound growth.
        for q_no in (1, 2, 3):
            a_start = _add_months(s, 3 * q_no)
            inc = np.round(base * ((1 + rate) ** (3 * q_no) - (1 + rate) ** (3 * q_no - 3)), 2)
            ok = fast & (a_start <= np.minimum(e, as_of_day))
            em.emit(ok, acc=acc, start=a_start, end=e, arr=inc, plan=plan, kind=_ADDON, health=h, seats=_seats(inc))
            total = np.where(ok, total + inc, total)
        # Ordinary mid-term expansion: one co-termed add-on, likelier if healthy.
        a_start = s + rng.integers(60, 300, k)
        inc = np.round(base * rng.uniform(0.10, 0.45, k), 2)
        ok = ~fast & (rng.random(k) < 0.03 + 0.12 * h) & (a_start <= np.minimum(e, as_of_day))
        em.emit(ok, acc=acc, start=a_start, end=e, arr=inc, plan=plan, kind=_ADDON, health=h, seats=_seats(inc))
        total = np.where(ok, total + inc, total)

        # Renewal decision (drawn for every chain, including terms that end
        # after as_of, so future churners already decline before as_of).
        churn = (rng.random(k) < _churn_probability(h, plan, total)) & ~fast
        ended = e >= as_of_day
        churn_acc.append(acc[churn])
        churn_day.append(e[churn])

        # Reactivation after a 2-8 month gap (once per account).
        gap = rng.integers(60, 244, k)
        react = churn & ~ended & ~reactivated & (rng.random(k) < 0.2) & (e + 1 + gap <= as_of_day)
        # Renewal ARR change: healthy accounts expand, unhealthy contract,
        # some Enterprise accounts shrink whatever their health.
        g = 0.40 * (h - 0.5) + rng.normal(0.0, 0.05, k)
        ent_down = (total >= 100_000) & (rng.random(k) < 0.25)
        g = np.where(ent_down, -rng.uniform(0.10, 0.35, k), g)
        g = np.clip(g, -0.5, 0.6)
        new_base = np.where(fast, base * (1 + rate) ** 12, total * (1 + g))
        new_s = e + 1
        new_plan = _plan_code(new_base, new_s, change_day)
        new_base = np.where((plan == _GROWTH) & (new_plan == _GROWTH_2025), new_base * 1.08, new_base)
        fast_left = fast_left - fast
        new_rate = np.where(fast_left > 0, rate, 0.0)
        new_h = np.clip(h + rng.normal(0.0, 0.07, k), 0.02, 0.98)
        # Reactivated accounts come back smaller, with a fresh (mediocre) health.
        react_base = total * rng.uniform(0.5, 0.9, k)
        react_h = rng.uniform(0.35, 0.75, k)

        new_base = np.where(react, react_base, new_base)
        new_s = np.where(react, e + 1 + gap, new_s)
        new_h = np.where(react, react_h, new_h)
        new_rate = np.where(react, 0.0, new_rate)
        keep = (~churn & ~ended) | react
        acc = acc[keep]
        s = new_s[keep]
        base = np.maximum(np.round(new_base[keep], 2), 600.0)
        h = new_h[keep]
        rate = new_rate[keep]
        fast_left = fast_left[keep]
        reactivated = (reactivated | react)[keep]

    c = em.arrays()
    c["acc"] = c["acc"].astype(np.int64)
    c["start"] = c["start"].astype(np.int64)
    c["end"] = c["end"].astype(np.int64)
    c["arr"] = np.round(c["arr"].astype(float), 2)
    c["plan"] = c["plan"].astype(np.int64)
    c["kind"] = c["kind"].astype(np.int64)
    c["seats"] = c["seats"].astype(np.int64)
    order = np.lexsort((c["kind"], c["acc"], c["start"]))
    c = {f: v[order] for f, v in c.items()}

    ca = np.concatenate(churn_acc).astype(np.int64)
    cd = np.concatenate(churn_day).astype(np.int64)
    order = np.lexsort((cd, ca))
    return c, ca[order], cd[order]


class _Timeline:
    """Vectorised per-(account, day) look-ups over the simulated contracts."""

    def __init__(self, c: dict[str, np.ndarray], churn_acc: np.ndarray, churn_day: np.ndarray) -> None:
        import numpy as np

        # Main, pilot and monthly contracts never overlap within an account
        # and together cover exactly the days with service.
        m = c["kind"] != _ADDON
        order = np.lexsort((c["start"][m], c["acc"][m]))
        self.acc = c["acc"][m][order]
        self.start = c["start"][m][order]
        self.end = c["end"][m][order]
        self.health = c["health"][m][order]
        self.keys = self.acc * _KEY + self.start
        self.churn_acc = churn_acc
        self.churn_day = churn_day
        self.churn_keys = churn_acc * _KEY + churn_day

    def state(self, acc: np.ndarray, day: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(active, term health) for each (account, day)."""
        import numpy as np

        pos = np.searchsorted(self.keys, acc * _KEY + day, side="right") - 1
        safe = np.maximum(pos, 0)
        active = (pos >= 0) & (self.acc[safe] == acc) & (self.end[safe] >= day)
        return active, self.health[safe]

    def decline(self, acc: np.ndarray, day: np.ndarray) -> np.ndarray:
        """Multiplier in [0.3, 1] falling over the 90 days before a churn."""
        import numpy as np

        pos = np.searchsorted(self.churn_keys, acc * _KEY + day, side="left")
        safe = np.minimum(pos, max(self.churn_keys.shape[0] - 1, 0))
        if self.churn_keys.shape[0] == 0:
            return np.ones(acc.shape[0])
        hit = (pos < self.churn_keys.shape[0]) & (self.churn_acc[safe] == acc)
        days_left = np.where(hit, self.churn_day[safe] - day, 10_000)
        return 0.3 + 0.7 * np.clip(days_left / 90.0, 0.0, 1.0)


# --------------------------------------------------------------------------
# account profile derived from the contract history
# --------------------------------------------------------------------------


def _account_profile(
    rng: np.random.Generator, a: dict[str, Any], c: dict[str, np.ndarray], tl: _Timeline, as_of_day: int
) -> dict[str, np.ndarray]:
    import numpy as np

    n = a["n"]
    first_start = np.full(n, _OPEN_END, dtype=np.int64)
    np.minimum.at(first_start, c["acc"], c["start"])
    last_end = np.full(n, -1, dtype=np.int64)
    np.maximum.at(last_end, c["acc"], c["end"])
    ref_day = np.minimum(as_of_day, last_end)  # as_of, or last day of service
    active_now = last_end >= as_of_day

    paid = (c["kind"] == _MAIN) | (c["kind"] == _MONTHLY)
    first_paid = np.zeros(n)
    seen = np.zeros(n, dtype=bool)
    # contracts are sorted by start: the first paid row per account wins
    pa_acc, pa_arr = c["acc"][paid], c["arr"][paid]
    _, first_pos = np.unique(pa_acc, return_index=True)
    first_paid[pa_acc[first_pos]] = pa_arr[first_pos]
    seen[pa_acc[first_pos]] = True

    cov = (c["start"] <= ref_day[c["acc"]]) & (c["end"] >= ref_day[c["acc"]])
    cur_arr = np.bincount(c["acc"][cov], weights=c["arr"][cov], minlength=n)
    has_addon = np.bincount(c["acc"][cov & (c["kind"] == _ADDON)], minlength=n).astype(bool)
    annual_end = np.full(n, _OPEN_END, dtype=np.int64)
    mc = cov & (c["kind"] == _MAIN)
    annual_end[c["acc"][mc]] = c["end"][mc]
    peak = np.zeros(n)
    np.maximum.at(peak, c["acc"], c["arr"])
    _, term_h = tl.state(np.arange(n, dtype=np.int64), ref_day)

    created_day = first_start - rng.integers(7, 181, n)
    created = created_day * _SECONDS_PER_DAY + rng.integers(8 * 3600, 19 * 3600, n)
    as_of_end = as_of_day * _SECONDS_PER_DAY + _SECONDS_PER_DAY - 1
    frac = rng.beta(2.0, 0.6, n)
    updated = created + np.floor(frac * (as_of_end - created)).astype(np.int64)

    go_live = first_start + rng.integers(30, 121, n)
    live = go_live <= as_of_day

    stage = np.full(n, "Adoption", dtype=object)
    grown = seen & (first_paid > 0) & (cur_arr >= 1.2 * first_paid)
    stage[grown | has_addon] = "Expansion"
    stage[annual_end - ref_day < 90] = "Renewal"
    stage[ref_day - go_live < 90] = "Hypercare"
    stage[go_live > ref_day] = "Implementation"
    stage[rng.random(n) < 0.10] = ""

    # Wallet potential: a multiple of what they spend (or spent).
    basis = np.where(cur_arr > 0, cur_arr, np.where(peak > 0, peak, a["arr"]))
    mult = 1.3 + rng.lognormal(0.0, 0.6, n)
    long_tenured = active_now & (as_of_day - first_start >= 730)
    near = long_tenured & (rng.random(n) < 0.17)
    below = ~near & (rng.random(n) < 0.04)
    mult = np.where(near, rng.uniform(1.0, 1.25, n), mult)
    mult = np.where(below, rng.uniform(0.6, 0.95, n), mult)
    wallet = np.maximum(np.round(basis * mult, -2), 1_000.0)

    p_ref = np.where(active_now & live, 0.02 + 0.6 * term_h**3, 0.01)
    referenceable = rng.random(n) < p_ref
    override = np.full(n, "", dtype=object)
    has_override = rng.random(n) < 0.02
    override[has_override] = np.asarray(SEGMENTS, dtype=object)[rng.integers(0, 3, n)[has_override]]
    return {
        "first_start": first_start,
        "go_live": go_live,
        "live": live,
        "created": created,
        "updated": updated,
        "stage": stage,
        "wallet": wallet,
        "referenceable": referenceable,
        "override": override,
        "cur_arr": cur_arr,
    }


# --------------------------------------------------------------------------
# surveys
# --------------------------------------------------------------------------


def _make_surveys(
    rng: np.random.Generator,
    n: int,
    prof: dict[str, np.ndarray],
    tl: _Timeline,
    c: dict[str, np.ndarray],
    as_of_day: int,
) -> dict[str, np.ndarray]:
    import numpy as np

    first = prof["first_start"]
    last_end = np.full(n, -1, dtype=np.int64)
    np.maximum.at(last_end, c["acc"], c["end"])
    last = np.minimum(last_end, as_of_day)
    span = np.maximum(last - first + 1, 1)

    # NPS: quarterly, phase per account, +-10 days jitter.
    n_q = span // 91 + 1
    acc_q = np.repeat(np.arange(n, dtype=np.int64), n_q)
    k = np.arange(acc_q.shape[0]) - np.repeat(np.cumsum(n_q) - n_q, n_q)
    phase = rng.integers(20, 91, n)
    day_q = first[acc_q] + phase[acc_q] + 91 * k + rng.integers(-10, 11, k.shape[0])
    resp_u = rng.random(k.shape[0])
    noise_q = rng.normal(0.0, 1.4, k.shape[0])
    # CSAT: after support interactions, ~one every six months of service.
    n_c = rng.poisson(span / 180.0)
    acc_c = np.repeat(np.arange(n, dtype=np.int64), n_c)
    day_c = first[acc_c] + np.floor(rng.random(acc_c.shape[0]) * span[acc_c]).astype(np.int64)
    noise_c = rng.normal(0.0, 0.7, acc_c.shape[0])

    active_q, h_q = tl.state(acc_q, day_q)
    h_q = h_q * tl.decline(acc_q, day_q)
    keep_q = active_q & (day_q <= as_of_day) & (resp_u < 0.45 + 0.35 * h_q)
    nps = np.clip(np.rint(2.5 + 8.0 * h_q + noise_q), 0, 10).astype(np.int64)

    active_c, h_c = tl.state(acc_c, day_c)
    h_c = h_c * tl.decline(acc_c, day_c)
    keep_c = active_c & (day_c <= as_of_day)
    csat = np.clip(np.rint(1.2 + 4.0 * h_c + noise_c), 1, 5).astype(np.int64)

    acc = np.concatenate([acc_q[keep_q], acc_c[keep_c]])
    day = np.concatenate([day_q[keep_q], day_c[keep_c]])
    stype = np.concatenate([np.zeros(keep_q.sum(), np.int64), np.ones(keep_c.sum(), np.int64)])
    score = np.concatenate([nps[keep_q], csat[keep_c]])
    secs = day * _SECONDS_PER_DAY + rng.integers(7 * 3600, 21 * 3600, acc.shape[0])
    order = np.lexsort((stype, acc, secs))
    acc, secs, stype, score = acc[order], secs[order], stype[order], score[order]
    # The (account_id, responded_at, survey_type) key must be unique.
    dup = np.zeros(acc.shape[0], dtype=bool)
    if acc.shape[0] > 1:
        dup[1:] = (acc[1:] == acc[:-1]) & (secs[1:] == secs[:-1]) & (stype[1:] == stype[:-1])
    keep = ~dup
    return {"acc": acc[keep], "secs": secs[keep], "type": stype[keep], "score": score[keep]}


# --------------------------------------------------------------------------
# usage (one Parquet file per day, generated day by day)
# --------------------------------------------------------------------------


def _usage_schema() -> Any:
    import pyarrow as pa

    return pa.schema(
        [
            ("account_id", pa.string()),
            ("usage_date", pa.date32()),
            ("active_users", pa.int64()),
            ("licensed_seats", pa.int64()),
            ("events", pa.int64()),
            ("features_used", pa.int64()),
        ]
    )


def _write_usage(
    rng: np.random.Generator,
    usage_dir: Path,
    ids: list[str],
    a: dict[str, Any],
    c: dict[str, np.ndarray],
    tl: _Timeline,
    prof: dict[str, np.ndarray],
    first_day: int,
    as_of_day: int,
    future_rows: dict[str, np.ndarray],
) -> int:
    """Write usage_daily/YYYY-MM-DD.parquet for every day from ``first_day``; return row count."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    n = a["n"]
    schema = _usage_schema()
    id_array = pa.array(ids, type=pa.string())

    # Events: +1 active contract / +seats at start, reverse the day after end.
    ends = c["end"] < _OPEN_END
    ev_day = np.concatenate([c["start"], c["end"][ends] + 1])
    ev_acc = np.concatenate([c["acc"], c["acc"][ends]])
    ev_cnt = np.concatenate([np.ones(c["acc"].shape[0], np.int64), -np.ones(ends.sum(), np.int64)])
    ev_seats = np.concatenate([c["seats"], -c["seats"][ends]])
    order = np.argsort(ev_day, kind="stable")
    ev_day, ev_acc, ev_cnt, ev_seats = (ev_day[order], ev_acc[order], ev_cnt[order], ev_seats[order])
    m = c["kind"] != _ADDON
    order = np.argsort(c["start"][m], kind="stable")
    hs_day, hs_acc, hs_val = (c["start"][m][order], c["acc"][m][order], c["health"][m][order])
    days = np.arange(first_day, as_of_day + 2, dtype=np.int64)
    ev_ptr = np.searchsorted(ev_day, days, side="left")
    hs_ptr = np.searchsorted(hs_day, days, side="left")
    # Events before the window (none today, but keep the state right).
    active_cnt = np.zeros(n, np.int64)
    seats = np.zeros(n, np.int64)
    health = np.zeros(n)
    pre = ev_ptr[0]
    np.add.at(active_cnt, ev_acc[:pre], ev_cnt[:pre])
    np.add.at(seats, ev_acc[:pre], ev_seats[:pre])
    health[hs_acc[: hs_ptr[0]]] = hs_val[: hs_ptr[0]]

    first = prof["first_start"].astype(float)
    ramp_len = np.maximum(prof["go_live"] - prof["first_start"], 1).astype(float)
    intensity = a["intensity"]
    log50 = np.log(50.0)
    total = 0
    for i, d in enumerate(days[:-1]):
        lo, hi = ev_ptr[i], ev_ptr[i + 1]
        if hi > lo:
            np.add.at(active_cnt, ev_acc[lo:hi], ev_cnt[lo:hi])
            np.add.at(seats, ev_acc[lo:hi], ev_seats[lo:hi])
        lo, hi = hs_ptr[i], hs_ptr[i + 1]
        if hi > lo:
            health[hs_acc[lo:hi]] = hs_val[lo:hi]
        idx = np.flatnonzero(active_cnt > 0)
        k = idx.shape[0]
        day = _EPOCH + timedelta(days=int(d))
        weekday = day.weekday()
        day_factor = 0.3 if weekday >= 5 else 1.0
        if (day.month == 12 and day.day >= 24) or (day.month == 1 and day.day == 1):
            day_factor *= 0.55
        h = health[idx]
        ramp = np.clip(0.25 + 0.75 * (d - first[idx]) / ramp_len[idx], 0.25, 1.0)
        dec = tl.decline(idx, np.full(k, d, dtype=np.int64))
        st = seats[idx]
        p = (0.2 + 0.75 * h) * ramp * dec * day_factor
        p = np.clip(p * rng.lognormal(0.0, 0.1, k), 0.0, 0.98)
        users = rng.binomial(st, p)
        events = np.rint(users * intensity[idx] * rng.lognormal(0.0, 0.25, k))
        breadth = 0.5 + 0.5 * np.minimum(1.0, np.log1p(users) / log50)
        pf = np.clip((0.05 + 0.55 * h) * ramp * dec * breadth, 0.0, 0.95)
        feats = rng.binomial(_MAX_FEATURES, pf)
        feats = np.where(users > 0, np.maximum(feats, 1), 0)
        cols = [
            id_array.take(pa.array(idx)),
            pa.array(np.full(k, d, dtype=np.int32)).cast(pa.date32()),
            pa.array(users.astype(np.int64)),
            pa.array(st.astype(np.int64)),
            pa.array(events.astype(np.int64)),
            pa.array(feats.astype(np.int64)),
        ]
        table = pa.Table.from_arrays(cols, schema=schema)
        if d == as_of_day and future_rows["acc"].shape[0]:
            fr = future_rows
            extra = pa.Table.from_arrays(
                [
                    pa.array([ids[j] for j in fr["acc"]], type=pa.string()),
                    pa.array(fr["day"].astype(np.int32)).cast(pa.date32()),
                    pa.array(fr["users"].astype(np.int64)),
                    pa.array(fr["seats"].astype(np.int64)),
                    pa.array(fr["events"].astype(np.int64)),
                    pa.array(fr["features"].astype(np.int64)),
                ],
                schema=schema,
            )
            table = pa.concat_tables([table, extra])
        pq.write_table(table, usage_dir / f"{day.isoformat()}.parquet")
        total += table.num_rows
    return total


# --------------------------------------------------------------------------
# bad rows
# --------------------------------------------------------------------------


def _n_bad(rows: int, rate: float) -> int:
    return max(1, round(rows * rate)) if rows else 0


def _accounts_frame(a: dict[str, Any], prof: dict[str, np.ndarray], ids: list[str]) -> pd.DataFrame:
    import numpy as np
    import pandas as pd

    industries = np.asarray([x[0] for x in _INDUSTRIES], dtype=object)
    countries = np.asarray([x[0] for x in _COUNTRIES], dtype=object)
    revenue = a["revenue"].astype(str).astype(object)
    revenue[a["revenue_missing"]] = ""
    return pd.DataFrame(
        {
            "account_id": np.asarray(ids, dtype=object),
            "name": a["names"],
            "industry": industries[a["industry"]],
            "employee_count": a["employees"].astype(str).astype(object),
            "annual_revenue": revenue,
            "country": countries[a["country"]],
            "created_at": _ts_str(prof["created"]),
            "updated_at": _ts_str(prof["updated"]),
            "wallet_potential_arr": _money_str(prof["wallet"]),
            "go_live_date": _date_str(prof["go_live"], ~prof["live"]),
            "lifecycle_stage": prof["stage"],
            "referenceable": np.where(prof["referenceable"], "true", "false").astype(object),
            "segment_override": prof["override"],
        },
        columns=list(ACCOUNT_COLUMNS),
    )


def _contracts_frame(c: dict[str, np.ndarray], ids: list[str]) -> pd.DataFrame:
    import numpy as np
    import pandas as pd

    k = c["acc"].shape[0]
    width = max(7, len(str(k * 2)))
    cids = np.asarray([f"CON-{i:0{width}d}" for i in range(1, k + 1)], dtype=object)
    open_end = c["end"] >= _OPEN_END
    return pd.DataFrame(
        {
            "contract_id": cids,
            "account_id": np.asarray(ids, dtype=object)[c["acc"]],
            "start_date": _date_str(c["start"]),
            "end_date": _date_str(np.where(open_end, 0, c["end"]), open_end),
            "arr": _money_str(c["arr"]),
            "plan": np.asarray(PLANS, dtype=object)[c["plan"]],
            "updated_at": _ts_str(c["updated"]),
        },
        columns=list(CONTRACT_COLUMNS),
    )


def _contract_updated_at(rng: np.random.Generator, c: dict[str, np.ndarray], as_of_day: int) -> np.ndarray:
    """Signed 0-21 days before start; ~30 % touched again when they ended."""
    import numpy as np

    k = c["acc"].shape[0]
    signed = c["start"] - rng.integers(0, 22, k)
    closed = (c["end"] < as_of_day) & (rng.random(k) < 0.3)
    day = np.where(closed, c["end"] + 1, signed)
    day = np.minimum(day, as_of_day)
    secs = day * _SECONDS_PER_DAY + rng.integers(7 * 3600, 22 * 3600, k)
    return np.minimum(secs, as_of_day * _SECONDS_PER_DAY + _SECONDS_PER_DAY - 1)


# --------------------------------------------------------------------------
# writers
# --------------------------------------------------------------------------


def _write_csv(df: pd.DataFrame, path: Path) -> None:
    df.to_csv(path, index=False, lineterminator="\n", encoding="utf-8")


def _sql_value(kind: str, value: str) -> Any:
    if value == "":
        return None
    if kind == "text":
        return value
    if kind == "bool":
        return {"true": 1, "false": 0}.get(value, value)
    try:
        return int(value) if kind == "int" else float(value)
    except ValueError:
        return value  # stored as TEXT, like a dirty CRM field


def _sql_rows(df: pd.DataFrame, kinds: tuple[tuple[str, str], ...], chunk: int = 50_000) -> Iterator[tuple]:
    """Yield CRM rows converted from the CSV strings, a chunk at a time."""
    for lo in range(0, len(df), chunk):
        part = df.iloc[lo : lo + chunk]
        cols = [[_sql_value(kind, v) for v in part[col].tolist()] for col, kind in kinds]
        yield from zip(*cols, strict=True)


_CRM_ACCOUNT_COLUMNS = (
    ("account_id", "text"),
    ("name", "text"),
    ("industry", "text"),
    ("employee_count", "int"),
    ("annual_revenue", "real"),
    ("country", "text"),
    ("created_at", "text"),
    ("updated_at", "text"),
    ("wallet_potential_arr", "real"),
    ("go_live_date", "text"),
    ("lifecycle_stage", "text"),
    ("referenceable", "bool"),
    ("segment_override", "text"),
)
_CRM_CONTRACT_COLUMNS = (
    ("contract_id", "text"),
    ("account_id", "text"),
    ("start_date", "text"),
    ("end_date", "text"),
    ("arr", "real"),
    ("plan", "text"),
    ("updated_at", "text"),
)
_CRM_SURVEY_COLUMNS = (("account_id", "text"), ("responded_at", "text"), ("survey_type", "text"), ("score", "int"))
_EMPTY_TAGS = (None,) * 7  # Value_Tier__c .. Segment_Updated_At__c


_CRM_DDL = """
CREATE TABLE crm_account (
    Id TEXT,
    Name TEXT,
    Industry TEXT,
    NumberOfEmployees INTEGER,
    AnnualRevenue REAL,
    BillingCountry TEXT,
    CreatedDate TEXT,
    LastModifiedDate TEXT,
    Wallet_Potential_ARR__c REAL,
    Go_Live_Date__c TEXT,
    Lifecycle_Stage__c TEXT,
    Referenceable__c INTEGER,
    Segment_Override__c TEXT,
    Value_Tier__c TEXT,
    Quadrant__c TEXT,
    Segment_Lifecycle_Stage__c TEXT,
    Health_Score__c REAL,
    Engagement_Model__c TEXT,
    Case_Study_Candidate__c INTEGER,
    Segment_Updated_At__c TEXT,
    Manual_Segment_Lock__c INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX ix_crm_account_id ON crm_account (Id);
CREATE TABLE crm_contract (
    Id TEXT,
    AccountId TEXT,
    StartDate TEXT,
    EndDate TEXT,
    ARR__c REAL,
    Plan__c TEXT,
    LastModifiedDate TEXT
);
CREATE INDEX ix_crm_contract_account ON crm_contract (AccountId);
CREATE TABLE crm_survey_response (
    AccountId TEXT,
    RespondedAt TEXT,
    SurveyType TEXT,
    Score INTEGER
);
CREATE INDEX ix_crm_survey_account ON crm_survey_response (AccountId);
"""


def _write_crm(
    path: Path, accounts: pd.DataFrame, contracts: pd.DataFrame, surveys: pd.DataFrame, lock: np.ndarray
) -> None:
    if path.exists():
        path.unlink()
    acc_rows = (
        (*row, *_EMPTY_TAGS, int(locked))
        for row, locked in zip(_sql_rows(accounts, _CRM_ACCOUNT_COLUMNS), lock.tolist(), strict=True)
    )
    with closing(sqlite3.connect(path)) as db:
        db.executescript(_CRM_DDL)
        db.executemany(f"INSERT INTO crm_account VALUES ({','.join('?' * 21)})", acc_rows)
        db.executemany(
            f"INSERT INTO crm_contract VALUES ({','.join('?' * 7)})", _sql_rows(contracts, _CRM_CONTRACT_COLUMNS)
        )
        db.executemany("INSERT INTO crm_survey_response VALUES (?,?,?,?)", _sql_rows(surveys, _CRM_SURVEY_COLUMNS))
        db.commit()


# --------------------------------------------------------------------------
# public entry points
# --------------------------------------------------------------------------


def generate(
    out_dir: Path, accounts: int, seed: int, as_of: date = DEFAULT_AS_OF, usage_days: int | None = None
) -> dict:
    """Write the demo file source (and demo CRM) into ``out_dir``.

    ``usage_days`` writes daily usage only for the last that many days up to ``as_of``
    (contracts and surveys keep the full history): the benchmarks' "365 days of usage"
    at scale.  Returns summary counts.  Same arguments -> byte-identical CSV files.
    """
    import numpy as np
    import pandas as pd

    if accounts < 1:
        raise ValueError("accounts must be >= 1")
    if seed < 0:
        raise ValueError("seed must be >= 0")
    if usage_days is not None and not 1 <= usage_days <= HISTORY_DAYS:
        raise ValueError(f"usage_days must be between 1 and {HISTORY_DAYS}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / MANIFEST_FILE).unlink(missing_ok=True)
    usage_dir = out / "usage_daily"
    usage_dir.mkdir(exist_ok=True)
    for stale in usage_dir.glob("????-??-??.parquet"):
        stale.unlink()

    as_of_day = _epoch_day(as_of)
    hist_start = as_of_day - HISTORY_DAYS + 1
    usage_start = hist_start if usage_days is None else as_of_day - usage_days + 1
    change_day = _epoch_day(PRICING_CHANGE_DATE)
    n = int(accounts)
    width = max(6, len(str(n * 2)))
    ids = [f"ACC-{i:0{width}d}" for i in range(1, n + 1)]

    a = _make_accounts(_rng(seed, _S_ACCOUNTS), n, hist_start, as_of_day)
    c, churn_acc, churn_day = _simulate_contracts(_rng(seed, _S_CONTRACTS), a, as_of_day, change_day)
    tl = _Timeline(c, churn_acc, churn_day)
    prof_rng = _rng(seed, _S_PROFILE)
    prof = _account_profile(prof_rng, a, c, tl, as_of_day)
    c["updated"] = _contract_updated_at(prof_rng, c, as_of_day)
    s = _make_surveys(_rng(seed, _S_SURVEYS), n, prof, tl, c, as_of_day)

    bad_rng = _rng(seed, _S_BAD)
    manifest: list[dict[str, Any]] = []

    # ---- accounts + bad rows ----------------------------------------------
    acc_df = _accounts_frame(a, prof, ids)
    k_acc = _n_bad(n, 0.0035)
    picks = bad_rng.permutation(max(n, 3 * k_acc)) % n  # n < 3 still gets every kind
    stage_bad = np.sort(picks[:k_acc])
    dup_src = np.sort(picks[k_acc : 2 * k_acc])
    null_src = np.sort(picks[2 * k_acc : 3 * k_acc])
    stage_col = acc_df["lifecycle_stage"].to_numpy(dtype=object).copy()
    stage_col[stage_bad] = "Onboarding"
    acc_df["lifecycle_stage"] = stage_col
    for j in stage_bad.tolist():
        manifest.append({"table": "accounts", "key": {"account_id": ids[j]}, "problem": "unknown_lifecycle_stage"})
    new_names = _company_names(
        bad_rng, a["industry"][np.concatenate([dup_src, null_src])], a["country"][np.concatenate([dup_src, null_src])]
    )
    dup_rows = acc_df.iloc[dup_src].copy()
    old = dup_rows["name"].to_numpy(dtype=object)
    fresh = new_names[: dup_src.shape[0]]
    dup_rows["name"] = np.where(fresh == old, fresh + " Holdings", fresh)
    null_rows = acc_df.iloc[null_src].copy()
    null_rows["account_id"] = ""
    null_rows["name"] = new_names[dup_src.shape[0] :]
    for _, r in dup_rows.iterrows():
        manifest.append(
            {
                "table": "accounts",
                "key": {"account_id": r["account_id"], "name": r["name"]},
                "problem": "duplicate_account_id",
            }
        )
    for _, r in null_rows.iterrows():
        manifest.append(
            {"table": "accounts", "key": {"account_id": None, "name": r["name"]}, "problem": "null_account_id"}
        )
    bad_acc = pd.concat([dup_rows, null_rows], ignore_index=True)
    order = _interleave(n, len(bad_acc), bad_rng)
    acc_all = pd.concat([acc_df, bad_acc], ignore_index=True).iloc[order]
    acc_all = acc_all.reset_index(drop=True)
    lock_rng = _rng(seed, _S_CRM)
    lock = lock_rng.random(len(acc_all)) < 0.01
    if n >= 100 and not lock.any():
        lock[lock_rng.integers(0, len(acc_all))] = True

    # ---- contracts + bad rows ---------------------------------------------
    con_df = _contracts_frame(c, ids)
    kc = c["acc"].shape[0]
    k_con = _n_bad(kc, 0.0025)
    paid_idx = np.flatnonzero(c["arr"] > 0)
    if not paid_idx.size:  # e.g. a single account still on a free pilot
        paid_idx = np.arange(kc)
    src = bad_rng.choice(paid_idx, 4 * k_con, replace=paid_idx.shape[0] < 4 * k_con)
    bad_con = con_df.iloc[src].copy().reset_index(drop=True)
    width_c = len(con_df["contract_id"].iat[0]) - 4 if kc else 7
    bad_con["contract_id"] = [f"CON-{kc + i:0{width_c}d}" for i in range(1, len(bad_con) + 1)]
    problems = np.repeat(["non_numeric_arr", "negative_arr", "end_before_start", "unknown_account_id"], k_con)
    arr_col = bad_con["arr"].to_numpy(dtype=object)
    end_col = bad_con["end_date"].to_numpy(dtype=object)
    acc_col = bad_con["account_id"].to_numpy(dtype=object)
    start_days = c["start"][src]
    shift = bad_rng.integers(1, 61, len(bad_con))
    for i, prob in enumerate(problems.tolist()):
        if prob == "non_numeric_arr":
            arr_col[i] = "n/a"
        elif prob == "negative_arr":
            arr_col[i] = f"{-max(float(arr_col[i]), 100.0):.2f}"
        elif prob == "end_before_start":
            end_col[i] = (_EPOCH + timedelta(days=int(start_days[i] - shift[i]))).isoformat()
        else:
            acc_col[i] = f"ACC-{n + 1 + i:0{width}d}"
    bad_con["arr"] = arr_col
    bad_con["end_date"] = end_col
    bad_con["account_id"] = acc_col
    for cid, prob in zip(bad_con["contract_id"].tolist(), problems.tolist(), strict=True):
        manifest.append({"table": "contracts", "key": {"contract_id": cid}, "problem": prob})
    order = _interleave(kc, len(bad_con), bad_rng)
    con_all = pd.concat([con_df, bad_con], ignore_index=True).iloc[order]
    con_all = con_all.reset_index(drop=True)

    # ---- surveys + bad rows -----------------------------------------------
    ns = s["acc"].shape[0]
    sur_df = pd.DataFrame(
        {
            "account_id": np.asarray(ids, dtype=object)[s["acc"]],
            "responded_at": _ts_str(s["secs"]),
            "survey_type": np.where(s["type"] == 0, "nps", "csat").astype(object),
            "score": s["score"].astype(str).astype(object),
        },
        columns=list(SURVEY_COLUMNS),
    )
    nps_idx = np.flatnonzero(s["type"] == 0)
    bad_sur = sur_df.iloc[:0].copy()
    if nps_idx.shape[0]:
        k_sur = _n_bad(ns, 0.01)
        src = bad_rng.choice(nps_idx, k_sur, replace=nps_idx.shape[0] < k_sur)
        as_of_end = as_of_day * _SECONDS_PER_DAY + _SECONDS_PER_DAY - 1
        # A second, later response the same week (so the key stays unique).
        secs = s["secs"][src] + bad_rng.integers(3600, 3 * _SECONDS_PER_DAY, k_sur)
        secs = np.where(secs > as_of_end, s["secs"][src] - 3600 * 5 - 17, secs)
        bad_sur = sur_df.iloc[src].copy().reset_index(drop=True)
        bad_sur["responded_at"] = _ts_str(secs)
        bad_sur["score"] = np.where(np.arange(k_sur) % 2 == 0, "11", "-1").astype(object)
        bad_sur = bad_sur.drop_duplicates(["account_id", "responded_at", "survey_type"])
        existing = set(zip(sur_df["account_id"], sur_df["responded_at"], sur_df["survey_type"], strict=True))
        clash = [
            key in existing
            for key in zip(bad_sur["account_id"], bad_sur["responded_at"], bad_sur["survey_type"], strict=True)
        ]
        bad_sur = bad_sur[~np.asarray(clash, dtype=bool)].reset_index(drop=True)
        for _, r in bad_sur.iterrows():
            manifest.append(
                {
                    "table": "survey_responses",
                    "key": {
                        "account_id": r["account_id"],
                        "responded_at": r["responded_at"],
                        "survey_type": r["survey_type"],
                    },
                    "problem": "score_out_of_range",
                }
            )
    order = _interleave(ns, len(bad_sur), bad_rng)
    sur_all = pd.concat([sur_df, bad_sur], ignore_index=True).iloc[order]
    sur_all = sur_all.reset_index(drop=True)

    # ---- usage bad rows (future-dated, in the as_of file) ------------------
    k_use = max(1, n // 1000)
    active_now, _ = tl.state(np.arange(n, dtype=np.int64), np.full(n, as_of_day))
    pool = np.flatnonzero(active_now) if active_now.any() else np.arange(n)
    f_acc = np.sort(bad_rng.choice(pool, k_use, replace=pool.shape[0] < k_use))
    f_acc = np.unique(f_acc)
    # Ten years past as_of: in the future whenever the demo is loaded, yet deterministic.
    f_day = as_of_day + 3650 + bad_rng.integers(1, 31, f_acc.shape[0])
    f_seats = np.maximum(1, _seats(prof["cur_arr"][f_acc]))
    f_users = np.minimum(f_seats, bad_rng.integers(1, 20, f_acc.shape[0]))
    future_rows = {
        "acc": f_acc,
        "day": f_day,
        "seats": f_seats,
        "users": f_users,
        "events": f_users * bad_rng.integers(10, 60, f_acc.shape[0]),
        "features": bad_rng.integers(1, 15, f_acc.shape[0]),
    }
    for j, d in zip(f_acc.tolist(), f_day.tolist(), strict=True):
        manifest.append(
            {
                "table": "usage_daily",
                "key": {"account_id": ids[j], "usage_date": (_EPOCH + timedelta(days=d)).isoformat()},
                "problem": "future_usage_date",
            }
        )

    # ---- write everything -------------------------------------------------
    _write_csv(acc_all, out / "accounts.csv")
    _write_csv(con_all, out / "contracts.csv")
    _write_csv(sur_all, out / "survey_responses.csv")
    (out / "_bad_rows.json").write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    _write_crm(out / "crm.sqlite", acc_all, con_all, sur_all, lock)
    usage_rows = _write_usage(_rng(seed, _S_USAGE), usage_dir, ids, a, c, tl, prof, usage_start, as_of_day, future_rows)

    parameters = _parameters(n, seed, as_of, usage_days)
    (out / MANIFEST_FILE).write_text(json.dumps(parameters, indent=2) + "\n", encoding="utf-8")

    by_problem: dict[str, int] = {}
    for entry in manifest:
        by_problem[entry["problem"]] = by_problem.get(entry["problem"], 0) + 1
    return {
        "out_dir": str(out),
        "as_of": as_of.isoformat(),
        "seed": seed,
        "accounts": len(acc_all),
        "distinct_accounts": n,
        "contracts": len(con_all),
        "survey_responses": len(sur_all),
        "usage_rows": usage_rows,
        "usage_files": as_of_day - usage_start + 1,
        "bad_rows": len(manifest),
        "bad_rows_by_problem": dict(sorted(by_problem.items())),
    }


def _parameters(accounts: int, seed: int, as_of: date, usage_days: int | None) -> dict[str, Any]:
    return {"accounts": int(accounts), "seed": int(seed), "as_of": as_of.isoformat(), "usage_days": usage_days}


def _describe(parameters: dict[str, Any]) -> str:
    usage = f", usage for the last {parameters['usage_days']} days" if parameters.get("usage_days") else ""
    return f"{parameters['accounts']} accounts, seed {parameters['seed']}, as of {parameters['as_of']}{usage}"


def demo_status(
    out_dir: Path, accounts: int, seed: int, as_of: date = DEFAULT_AS_OF, usage_days: int | None = None
) -> tuple[str, str]:
    """Whether ``out_dir`` holds the demo for these parameters: (status, what it holds).

    ``current``: generated with them; ``missing``: no source files; ``different``: written by
    this generator with other parameters (or before it recorded them, or interrupted), so
    regenerate; ``foreign``: source files the generator did not write (e.g. a real export
    in ``POSTSALES_SOURCE_DIR``), which must never be overwritten.
    """
    out = Path(out_dir)
    wanted = _parameters(accounts, seed, as_of, usage_days)
    manifest = out / MANIFEST_FILE
    if manifest.exists():
        found = json.loads(manifest.read_text(encoding="utf-8"))
        if found == wanted:
            return "current", _describe(found)
        return "different", f"generated with {_describe(found)}, not {_describe(wanted)}"
    if not (out / "accounts.csv").exists():
        return "missing", f"no demo yet; {_describe(wanted)} requested"
    if (out / "_bad_rows.json").exists():
        return "different", f"generated without {MANIFEST_FILE} (size and seed unknown), not {_describe(wanted)}"
    return "foreign", f"source files the demo generator did not write (no {MANIFEST_FILE}): left as they are"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m postsales_dev.demo", description="Write deterministic synthetic post-sales demo data."
    )
    parser.add_argument("--accounts", type=int, default=1000, help="number of accounts")
    parser.add_argument("--seed", type=int, default=42, help="random seed (>= 0)")
    parser.add_argument("--out", type=Path, default=Path("data/demo"), help="output directory")
    parser.add_argument(
        "--as-of",
        type=date.fromisoformat,
        default=DEFAULT_AS_OF,
        help="last day of history, YYYY-MM-DD (default %(default)s)",
    )
    parser.add_argument(
        "--usage-days", type=int, default=None, help="write usage only for the last N days (default: all history)"
    )
    args = parser.parse_args(argv)
    summary = generate(args.out, args.accounts, args.seed, args.as_of, args.usage_days)
    json.dump(summary, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
