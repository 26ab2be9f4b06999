"""The segmentation report per as-of date: the Grow / Protect / Re-evaluate / Manage 2x2 as a
CS leader reads it. Self-contained HTML (inline SVG, no scripts, fonts or files to fetch).

Sections: the 2x2 scatter, counts and ARR per quadrant and approach, the 80:20 focus check,
movers since the previous snapshot and the last CRM revision, tier-migration candidates, the
thresholds' sensitivity and every account with its explanation. Written to
``<data dir>/reports/segmentation_<YYYY-MM-DD>.html``. Definitions: docs/metrics.md.
"""

from __future__ import annotations

import html
import json
import logging
import math
from datetime import date
from pathlib import Path
from typing import Any

from postsales import paths, warehouse
from postsales.reports.html import Section, money, number, page, pct, table, write_page
from postsales.segment.rules import SegmentationRules, load_rules
from postsales.segment.sensitivity import Sensitivity, quadrant_sensitivity, stored_differences

log = logging.getLogger(__name__)

# The customer-success capacity an account of each engagement model takes, in named-CSM
# (high-touch) accounts: a pooled account shares a pool's CSMs, about a quarter of a named
# account's time; tech-touch is automation, no CSM time (docs/metrics.md, "Focus check").
CAPACITY_WEIGHTS = {"high-touch": 1.0, "pooled": 0.25, "tech-touch": 0.0}
# The article's 80:20: Grow should get about 80 % of the CS team's focus.
GROW_FOCUS_TARGET = 0.8


def capacity_weights() -> dict[str, float]:
    """The weights as quadrant_summary.sql binds them (:high_touch_weight ...)."""
    return {f"{model.replace('-', '_')}_weight": weight for model, weight in CAPACITY_WEIGHTS.items()}


QUADRANT_ORDER = ("Grow", "Protect", "Re-evaluate", "Manage", "Unclassified")
COLORS = {
    "Grow": "#2b8a3e", "Protect": "#1c7ed6", "Re-evaluate": "#e8590c", "Manage": "#868e96", "Unclassified": "#862e9c",
}  # fmt: skip
REGION_FILLS = {"Grow": "#ebfbee", "Protect": "#e7f5ff", "Re-evaluate": "#fff4e6", "Manage": "#f1f3f5"}
# The plane's cells as (row, column): row 0 the large wallets (top), column 0 the low shares (left).
CELL_PLACES = {
    "large_wallet_low_share": (0, 0),
    "large_wallet_high_share": (0, 1),
    "small_wallet_low_share": (1, 0),
    "small_wallet_high_share": (1, 1),
}
FLAGS = {
    "smb_to_mm_6_9m": "SMB → Mid-Market in 6–9 months",
    "mm_to_ent_12_15m": "Mid-Market → Enterprise in 12–15 months",
    "ent_decline_risk": "Enterprise at risk of decline",
}


def _quadrant_key(name: str) -> tuple[int, str]:
    return (QUADRANT_ORDER.index(name) if name in QUADRANT_ORDER else len(QUADRANT_ORDER), name)


# --- the 2x2 scatter -------------------------------------------------------------------------

WIDTH, HEIGHT = 780, 480
LEFT, RIGHT, TOP, BOTTOM = 90, 20, 40, 60


def _log_ticks(low: float, high: float) -> list[float]:
    """1, 2 and 5 × 10ⁿ between ``low`` and ``high``."""
    ticks = []
    for exponent in range(math.floor(math.log10(low)), math.ceil(math.log10(high)) + 1):
        ticks += [m * 10**exponent for m in (1, 2, 5) if low <= m * 10**exponent <= high]
    return ticks


def _regions(
    rules: SegmentationRules, tx: float, ty: float, right: float, bottom: float
) -> tuple[list[str], list[str]]:
    """(cell rectangles, region labels) from segmentation.yaml ``quadrant.cells``: each cell filled
    with its quadrant's colour; one label for a quadrant on one cell or two side by side, else one
    label per cell."""
    xs, ys = (LEFT, tx, right), (TOP, ty, bottom)
    rects, labels = [], []
    places: dict[str, list[tuple[int, int]]] = {}
    for name, (row, col) in CELL_PLACES.items():
        quadrant = rules.quadrant.cells[name]
        places.setdefault(quadrant, []).append((row, col))
        rects.append(
            f'<rect class="region" data-cell="{name}" data-quadrant="{html.escape(quadrant)}" x="{xs[col]:.1f}" '
            f'y="{ys[row]:.1f}" width="{xs[col + 1] - xs[col]:.1f}" height="{ys[row + 1] - ys[row]:.1f}" '
            f'fill="{REGION_FILLS.get(quadrant, "#ffffff")}"/>'
        )
    for quadrant, cells in places.items():
        adjacent = len(cells) == 2 and (cells[0][0] == cells[1][0] or cells[0][1] == cells[1][1])
        for group in [cells] if adjacent else [[cell] for cell in cells]:
            rows, cols = {r for r, _ in group}, {c for _, c in group}
            x0, x1 = xs[min(cols)], xs[max(cols) + 1]
            x, anchor = {
                frozenset({0}): (x0 + 10, "start"), frozenset({1}): (x1 - 10, "end")
            }.get(frozenset(cols), ((x0 + x1) / 2, "middle"))  # fmt: skip
            y = ys[2] - 12 if rows == {1} else ys[min(rows)] + 22
            labels.append(
                f'<text class=region-label x="{x:.1f}" y="{y:.1f}" font-size="20" font-weight="bold" '
                f'fill="{COLORS.get(quadrant, "#495057")}" text-anchor="{anchor}">{html.escape(quadrant)}</text>'
            )
    return rects, labels


def scatter(accounts: list[Any], rules: SegmentationRules) -> str:
    """Share of wallet (x, linear) × wallet size (y, log), one point per placed account."""
    share_threshold = rules.quadrant.share_of_wallet.threshold
    size_threshold = rules.quadrant.wallet_size.threshold
    placed = [a for a in accounts if a.share_of_wallet is not None and a.wallet_size is not None and a.wallet_size > 0]
    unplaced = sum(1 for a in accounts if a.quadrant_cell is None)
    # On a cell without a point to draw: a wallet potential of 0 (docs/metrics.md, "Quadrant", item 4).
    undrawn = len(accounts) - len(placed) - unplaced
    if not placed:
        return f"<p>No account can be placed on the 2x2 ({unplaced} without both axis values).</p>"
    x_max = max(1.0, share_threshold * 1.25)
    x_max = math.ceil(min(1.5, max([x_max, *(float(a.share_of_wallet) for a in placed)])) * 10) / 10
    sizes = [float(a.wallet_size) for a in placed]
    y_low = 10 ** math.floor(math.log10(min([*sizes, size_threshold])))
    y_high = 10 ** math.ceil(math.log10(max([*sizes, size_threshold * 1.01])))
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def x(share: float) -> float:
        return LEFT + plot_w * min(share, x_max) / x_max

    def y(size: float) -> float:
        return TOP + plot_h * (1 - (math.log10(size) - math.log10(y_low)) / (math.log10(y_high) - math.log10(y_low)))

    tx, ty = x(share_threshold), y(size_threshold)
    bottom, right = TOP + plot_h, LEFT + plot_w
    parts, labels = _regions(rules, tx, ty, right, bottom)
    for tick in _log_ticks(y_low, y_high):
        parts.append(
            f'<line x1="{LEFT - 5}" x2="{right}" y1="{y(tick):.1f}" y2="{y(tick):.1f}" stroke="#e3e3e3"/>'
            f'<text class=ytick x="{LEFT - 8}" y="{y(tick) + 3:.1f}" font-size="10" text-anchor="end">'
            f"{money(tick)}</text>"
        )
    for step in range(round(x_max * 10) + 1):
        share = step / 10
        if step % 2 == 0 or x_max <= 1.0:
            parts.append(
                f'<text class=xtick x="{x(share):.1f}" y="{bottom + 16}" font-size="10" text-anchor="middle">'
                f"{pct(share)}</text>"
            )
        parts.append(f'<line x1="{x(share):.1f}" x2="{x(share):.1f}" y1="{bottom}" y2="{bottom + 4}" stroke="#333"/>')
    parts += [
        f'<line x1="{LEFT}" x2="{LEFT}" y1="{TOP}" y2="{bottom}" stroke="#333"/>',
        f'<line x1="{LEFT}" x2="{right}" y1="{bottom}" y2="{bottom}" stroke="#333"/>',
        # The thresholds, labelled with their values.
        f'<line class=threshold x1="{tx:.1f}" x2="{tx:.1f}" y1="{TOP}" y2="{bottom}" stroke="#c92a2a" '
        'stroke-width="1.5" stroke-dasharray="6 4"/>',
        f'<line class=threshold x1="{LEFT}" x2="{right}" y1="{ty:.1f}" y2="{ty:.1f}" stroke="#c92a2a" '
        'stroke-width="1.5" stroke-dasharray="6 4"/>',
        f'<text x="{tx + 4:.1f}" y="{TOP - 6}" font-size="11" fill="#c92a2a">share {pct(share_threshold)}</text>',
        f'<text x="{right - 4}" y="{ty - 5:.1f}" font-size="11" fill="#c92a2a" text-anchor="end">'
        f"wallet {money(size_threshold)}</text>",
        *labels,
        f'<text x="{LEFT + 10}" y="{TOP + 40}" font-size="11" fill="{COLORS["Re-evaluate"]}">'
        "Re-evaluate: ringed points, over Grow and Protect</text>",
        # Axis labels.
        f'<text x="{(LEFT + right) / 2:.1f}" y="{HEIGHT - 14}" font-size="12" text-anchor="middle">'
        "share of wallet (ARR ÷ wallet potential)</text>",
        f'<text x="16" y="{TOP + plot_h / 2:.1f}" font-size="12" text-anchor="middle" '
        f'transform="rotate(-90 16 {TOP + plot_h / 2:.1f})">wallet size (wallet potential ARR, log scale)</text>',
    ]
    for account in sorted(placed, key=lambda a: a.quadrant == "Re-evaluate"):
        cx, cy = x(float(account.share_of_wallet)), y(float(account.wallet_size))
        color = COLORS.get(account.quadrant, "#000")
        title = html.escape(
            f"{account.name or account.account_id} ({account.account_id}): {account.quadrant}, share "
            f"{pct(account.share_of_wallet)}, wallet {money(account.wallet_size)}, ARR {money(account.arr)}"
        )
        if account.quadrant == "Re-evaluate":
            shape = f'fill="none" stroke="{color}" stroke-width="2" r="5"'
        else:
            shape = f'fill="{color}" fill-opacity="0.75" r="3.5"'
        parts.append(f'<circle class=point cx="{cx:.1f}" cy="{cy:.1f}" {shape}><title>{title}</title></circle>')
    over = sum(1 for a in placed if float(a.share_of_wallet) > x_max)
    drawn = [q for q in ("Grow", "Protect", "Manage") if q in rules.quadrant.cells.values()]
    drawn += ["Unclassified"] if any(a.quadrant == "Unclassified" for a in placed) else []
    legend = " ".join(f'<span class=key style="background:{COLORS[q]}"></span>{q}' for q in drawn) + (
        f' <span class=key style="border:2px solid {COLORS["Re-evaluate"]};border-radius:50%;background:none">'
        "</span>Re-evaluate (ring)"
        " · dashed red: the thresholds (segmentation.yaml <code>quadrant:</code>)"
    )
    keys = []
    if "Protect" in rules.quadrant.cells.values() and rules.quadrant.still_grow:
        names = ", ".join(c.name for c in rules.quadrant.still_grow)
        keys.append(
            "A Grow point in a Protect cell: a <code>still_grow</code> condition holds "
            f"({html.escape(names)}: in its first year or still growing fast), so it is Grow."
        )
    if "Unclassified" in drawn:
        keys.append(
            "An Unclassified point on a cell: a <code>still_grow</code> condition or Re-evaluate reason could "
            "not be decided for a missing input (named in its explanation)."
        )
    legend += "".join(f"<br>{key}" for key in keys)
    notes = [f"{len(placed)} accounts placed."]
    if undrawn:
        notes.append(
            f"{undrawn} account{'s' if undrawn != 1 else ''} with a wallet potential of 0 "
            f"{'are' if undrawn != 1 else 'is'} on a cell but not drawn (no point on a log scale; see the table)."
        )
    if unplaced:
        notes.append(
            f"{unplaced} Unclassified account{'s' if unplaced != 1 else ''} cannot be placed: no share of wallet or "
            "no wallet size (see the per-account table's explanations)."
        )
    if over:
        notes.append(f"{over} accounts above {pct(x_max)} share are drawn on the right edge.")
    return (
        f'<svg class=quadrant-plane width="{WIDTH}" height="{HEIGHT}" role="img" '
        f'aria-label="Accounts by share of wallet and wallet size">{"".join(parts)}</svg>'
        f"<p class=legend>{legend}</p><p class=note id=unplaced>{' '.join(notes)}</p>"
    )


# --- tables ----------------------------------------------------------------------------------


def engagement_section(summary: list[Any], by_engagement: list[Any]) -> str:
    models = sorted({r.engagement_model for r in by_engagement})
    cells = {(r.quadrant, r.engagement_model): r for r in by_engagement}
    quadrants = sorted({r.quadrant for r in by_engagement}, key=_quadrant_key)
    per_quadrant = table(
        ["quadrant", "accounts", "part of accounts", "ARR", "part of ARR", "wallet", "unrealised wallet",
         "mean share of wallet", "recommended to move"],
        ((r.quadrant, r.account_count, pct(r.part_of_accounts), money(r.arr), pct(r.part_of_arr), money(r.wallet),
          money(r.unrealized_wallet), pct(r.avg_share_of_wallet), r.recommended_to_move) for r in summary),
        empty="No segments for this date.",
    )  # fmt: skip
    approach = table(
        ["quadrant", *(f"{m}: accounts" for m in models), *(f"{m}: ARR" for m in models)],
        (
            (
                q,
                *(cells[(q, m)].account_count if (q, m) in cells else 0 for m in models),
                *(money(cells[(q, m)].arr) if (q, m) in cells else "0" for m in models),
            )
            for q in quadrants
        ),
        empty="No segments for this date.",
    )
    return f"{per_quadrant}<h3>Per approach (engagement model)</h3>{approach}"


def focus_section(focus: list[Any]) -> str:
    if not focus:
        return "<p>No segments for this date.</p>"
    weights = ", ".join(f"{m} {w:g}" for m, w in CAPACITY_WEIGHTS.items())
    rows = table(
        ["quadrant", "accounts", "ARR", "unrealised wallet", "part of unrealised wallet", "high-touch", "pooled",
         "tech-touch", "other (Unknown)", "capacity", "share of capacity"],
        ((r.quadrant, r.account_count, money(r.arr), money(r.unrealized_wallet), pct(r.part_of_unrealized_wallet),
          r.high_touch_accounts, r.pooled_accounts, r.tech_touch_accounts, r.other_accounts, number(r.capacity, 2),
          pct(r.capacity_share)) for r in focus),
    )  # fmt: skip
    grow = next((r for r in focus if r.quadrant == "Grow"), None)
    share = float(grow.capacity_share) if grow is not None and grow.capacity_share is not None else 0.0
    if not any(r.capacity for r in focus):
        verdict = (
            '<p class=flag id=focus-verdict style="color:#c92a2a;font-weight:bold">No customer-success capacity '
            "is assigned: no account is high-touch or pooled, so there is no focus to check.</p>"
        )
    elif share < GROW_FOCUS_TARGET:
        verdict = (
            f'<p class=flag id=focus-verdict style="color:#c92a2a;font-weight:bold">Below target: Grow gets '
            f"{pct(share)} of the customer-success capacity, the target is {pct(GROW_FOCUS_TARGET)}. Focus does "
            "not follow the 2x2.</p>"
        )
    else:
        verdict = (
            f"<p id=focus-verdict><b>On target:</b> Grow gets {pct(share)} of the customer-success capacity "
            f"(target {pct(GROW_FOCUS_TARGET)}).</p>"
        )
    return (
        f"{verdict}<p class=note>Customer-success capacity: each account weighs its engagement model's share of a "
        f"named CSM ({weights}; other models, Unknown among them, 0); a quadrant's share of capacity is its weight "
        f"over all accounts' weight. The article gives Grow about {pct(GROW_FOCUS_TARGET)} of CS focus "
        f'(docs/metrics.md, "Focus check").</p>{rows}'
    )


def migration_table(cells: list[Any], compared_to: date | None, what: str) -> str:
    if compared_to is None:
        return f"<p>No {what}: nothing to compare with.</p>"
    count = {(r.from_quadrant, r.to_quadrant): r.account_count for r in cells}
    old = sorted({r.from_quadrant for r in cells}, key=_quadrant_key)
    new = sorted({r.to_quadrant for r in cells}, key=_quadrant_key)
    moved = sum(n for (a, b), n in count.items() if a != b and a != "(new)" and b != "(gone)")
    return f"<h3>Since the {what} ({compared_to:%Y-%m-%d}): {moved} accounts changed quadrant</h3>" + table(
        [f"{compared_to:%Y-%m-%d} ↓ / now →", *new],
        ((o, *(count.get((o, n), 0) for n in new)) for o in old),
    )


def candidates_section(accounts: list[Any]) -> str:
    if all(a.smb_to_mm_6_9m is None for a in accounts):
        return "<p>No forecast for this date yet (mart.account_forecasts).</p>"
    parts = []
    for flag, title in FLAGS.items():
        flagged = [a for a in accounts if getattr(a, flag)]
        parts.append(f"<h3>{title} (<code>{flag}</code>): {len(flagged)} accounts</h3>")
        rows = (
            (a.account_id, a.name or "–", a.quadrant, a.engagement_model, money(a.arr),
             number(a.months_to_next_tier, 1), a.projected_tier_9m or "–", a.projected_tier_15m or "–")
            for a in flagged
        )  # fmt: skip
        headers = ["account", "name", "quadrant", "engagement", "ARR", "months to next tier", "tier +9m", "tier +15m"]
        parts.append(table(headers, rows, empty="No account flagged."))
    return "".join(parts)


def sensitivity_section(rows: list[Sensitivity], stored: dict[str, int], rules_version: str) -> str:
    """The thresholds' ±10 % sensitivity (also in the annual review's report); ``stored``: per rules
    version, the accounts whose stored quadrant differs from what ``rules_version`` gives today."""
    if not rows:
        return "<p>No segments for this date.</p>"
    labels = {"share_of_wallet": "share of wallet", "wallet_size": "wallet size"}

    def value(axis: str, threshold: float) -> str:
        return f"{threshold:g}" if axis == "share_of_wallet" else money(threshold)

    body = table(
        ["threshold", "move", "now", "moved to", "accounts changing quadrant", "from → to"],
        (
            (
                labels.get(r.axis, r.axis),
                r.direction,
                value(r.axis, r.threshold),
                value(r.axis, r.new_threshold),
                r.accounts_changing,
                "; ".join(f"{a} → {b}: {n}" for (a, b), n in sorted(r.moves.items(), key=lambda i: -i[1])) or "none",
            )
            for r in rows
        ),
    )
    differing = "".join(
        f"<p>{n} accounts' stored quadrant differs from today's rules ({html.escape(rules_version)}): "
        f"segmented under rules {html.escape(version)}; the moves above are counted from today's rules.</p>"
        for version, n in stored.items()
    )
    return (
        f"<p class=note>Each threshold of rules {html.escape(rules_version)} moved on its own, the other rules "
        "unchanged: every account is reclassified from its stored features with the same refinements (first "
        "year or high growth keeps a Protect-cell account in Grow; the Re-evaluate overlay) and compared with "
        'its quadrant under the unmoved thresholds (docs/metrics.md, "Threshold sensitivity").</p>' + differing + body
    )


def _explanation(account: Any) -> str:
    try:
        parts = json.loads(account.explanation)
    except (TypeError, ValueError):
        return str(account.explanation)
    quadrant = parts.get("quadrant", {})
    engagement = parts.get("engagement_model", {})
    inputs = ", ".join(f"{k} {v}" for k, v in (quadrant.get("inputs") or {}).items())
    missing = quadrant.get("missing") or []
    text = f"{quadrant.get('rule')}: {inputs}" + (f"; missing {', '.join(missing)}" if missing else "")
    return f"{text}; engagement {engagement.get('rule')}"


def accounts_section(accounts: list[Any]) -> str:
    return table(
        ["account", "name", "quadrant", "on the plane", "cell", "recommended", "share of wallet", "wallet", "ARR",
         "value tier", "engagement", "explanation (rule: inputs)"],
        ((a.account_id, a.name or "–", a.quadrant, a.plane_quadrant or "–", a.quadrant_cell or "–",
          a.recommended_quadrant, pct(a.share_of_wallet), money(a.wallet_size), money(a.arr), a.value_tier,
          a.engagement_model, _explanation(a)) for a in accounts),
        empty="No segments for this date.",
    )  # fmt: skip


# --- the page --------------------------------------------------------------------------------


def report_path(as_of: date) -> Path:
    return paths.data_dir() / "reports" / f"segmentation_{as_of:%Y-%m-%d}.html"


def write_report(as_of: date, *, warehouse_url: str | None = None, rules: SegmentationRules | None = None) -> Path:
    """Render the as-of date's segmentation report from the warehouse and write it; returns the path."""
    rules = rules or load_rules()
    eng = warehouse.engine(warehouse_url)
    warehouse.ensure_schema(eng)  # the tables other stages fill: empty ones when those never ran
    with eng.connect() as conn:
        accounts = warehouse.query(conn, "reports", "segmentation_accounts", as_of_date=as_of)
        summary = warehouse.query(conn, "reports", "quadrant_summary", as_of_date=as_of, **capacity_weights())
        by_engagement = warehouse.query(conn, "reports", "quadrant_engagement", as_of_date=as_of)
        dates = warehouse.query(conn, "reports", "segmentation_compared_dates", as_of_date=as_of)[0]
        since = {}
        for key in ("previous_snapshot", "last_revision"):
            compared_to = getattr(dates, key)
            if compared_to is not None:
                compared_to = date.fromisoformat(str(compared_to)[:10])
                since[key] = (
                    compared_to,
                    warehouse.query(conn, "reports", "quadrant_migration", as_of_date=as_of, compared_to=compared_to),
                )
            else:
                since[key] = (None, [])
        sensitivity = quadrant_sensitivity(conn, as_of, rules) if accounts else []
        stored = stored_differences(conn, as_of, rules) if accounts else {}
    movers = migration_table(since["previous_snapshot"][1], since["previous_snapshot"][0], "previous snapshot")
    movers += migration_table(since["last_revision"][1], since["last_revision"][0], "last CRM revision")
    sections = [
        Section("The 2x2: share of wallet × wallet size", scatter(accounts, rules)),
        Section("Accounts and ARR per quadrant", engagement_section(summary, by_engagement)),
        Section("Focus check (80:20)", focus_section(summary)),
        Section("Movers", movers),
        Section("Tier-migration candidates", candidates_section(accounts)),
        Section("Threshold sensitivity (±10 %)", sensitivity_section(sensitivity, stored, rules.version)),
        Section("Accounts", accounts_section(accounts)),
    ]
    counts = {r.quadrant: r.account_count for r in summary}
    kpis = "".join(
        f"<div class=kpi>{html.escape(q)}<b>{counts[q]}</b>accounts</div>" for q in sorted(counts, key=_quadrant_key)
    )
    path = write_page(
        report_path(as_of),
        page(
            f"Segmentation report {as_of:%Y-%m-%d}",
            f"Segmentation — the 2x2 as of {as_of:%d %B %Y}",
            f"<div id=headline>{kpis}</div><p class=note>Rules {html.escape(rules.version)}.</p>",
            sections,
        ),
    )
    log.info("segmentation report for %s: %s", as_of, path)
    return path
