"""The cohort report's tables and chart against the hand-built contracts of tests/cohort_fixtures.py.

Expected values are worked out by hand from the fixture: the 2024 yearly cohort is ten accounts
(MIDSTART, RENEW, DOWN, REACT in January; FLAT, VERS in February; OVERLAP in March; LATELOAD in
April; PILOT in May; LASTDAY in November), nine of them acquired by May.
"""

from __future__ import annotations

import re
import subprocess
from collections import namedtuple
from datetime import date

import pytest

import cohort_fixtures as fx
from browser import chromium_flags, chromium_or_skip
from postsales import cohorts, warehouse
from postsales.reports.cohort_report import movement_bars, write_report


def load_fixture(url: str) -> None:
    eng = warehouse.engine(url)
    tables = warehouse.ensure_schema(eng)
    with eng.begin() as conn:
        warehouse.insert_frame(conn, tables.staging["contracts"], fx.frame(fx.CONTRACTS))


def sections(page: str) -> dict[str, str]:
    """The report's <h2> sections by title."""
    parts = re.split(r"<h2>(.*?)</h2>", page)
    return dict(zip(parts[1::2], parts[2::2], strict=True))


def heatmaps(section: str) -> dict[str, str]:
    """The <h3> heatmaps of a section by title: legend and table."""
    parts = re.split(r"<h3>(.*?)</h3>", section)
    return dict(zip(parts[1::2], parts[2::2], strict=True))


def table_rows(fragment: str) -> list[list[str]]:
    return [
        [re.sub(r"<[^>]+>", "", cell) for cell in re.findall(r"<t[hd][^>]*>(.*?)</t[hd]>", row)]
        for row in re.findall(r"<tr>(.*?)</tr>", fragment)
    ]


def sizes(fragment: str) -> dict[str, str]:
    """cohort label -> size column, for the body rows of a heatmap table."""
    return {row[0]: row[1] for row in table_rows(fragment)[2:]}


def legend(fragment: str) -> dict[str, str]:
    """Legend label -> swatch colour."""
    found = re.findall(r'<span class=swatch style="background:([^"]+)">([^<]+)</span>', fragment)
    return {label: colour for colour, label in found}


@pytest.mark.parametrize("snapshot, yearly_size", [(fx.SNAPSHOT, "10"), (fx.EARLY_SNAPSHOT, "9")])
def test_yearly_cohort_size_is_every_account_acquired_in_the_year(warehouse_url, snapshot, yearly_size):
    load_fixture(warehouse_url)
    cohorts.compute_snapshot(snapshot, warehouse_url=warehouse_url)
    page = write_report(snapshot, warehouse_url=warehouse_url).read_text()
    yearly = heatmaps(sections(page)["Cohort retention (yearly cohorts)"])
    assert set(yearly) == {"Logo retention", "NRR"}
    for title, fragment in yearly.items():
        # Labelled by year, sized by the whole year (the January base is 4 accounts).
        assert sizes(fragment) == {"2024": yearly_size}, title
        head = table_rows(fragment)[0]
        assert head == ["cohort", "size", "months since 1 January of the acquisition year"], title
    monthly = heatmaps(sections(page)["Cohort retention (monthly cohorts)"])
    expected_monthly = {"2024-01": "4", "2024-02": "2", "2024-03": "1", "2024-04": "1", "2024-05": "1"}
    if snapshot == fx.SNAPSHOT:
        expected_monthly["2024-11"] = "1"
    for title, fragment in monthly.items():
        assert sizes(fragment) == expected_monthly, title
        assert table_rows(fragment)[0] == ["cohort", "size", "months since acquisition"], title
        horizon = 11 if snapshot == fx.SNAPSHOT else 4
        assert table_rows(fragment)[1] == [str(k) for k in range(horizon + 1)], title


def test_every_heatmap_has_a_colour_legend(duckdb_url):
    load_fixture(duckdb_url)
    cohorts.compute_snapshot(fx.SNAPSHOT, warehouse_url=duckdb_url)
    page = write_report(fx.SNAPSHOT).read_text()
    # heat_color by hand: hue = 120 × ratio, lightness = 88 − 30 × ratio; NRR's ratio is value / 1.5.
    logo = {"0%": "hsl(0, 65%, 88%)", "25%": "hsl(30, 65%, 80%)", "50%": "hsl(60, 65%, 73%)",
            "75%": "hsl(90, 65%, 66%)", "100%": "hsl(120, 65%, 58%)"}  # fmt: skip
    nrr = {"0%": "hsl(0, 65%, 88%)", "50%": "hsl(40, 65%, 78%)", "100%": "hsl(80, 65%, 68%)",
           "125%": "hsl(100, 65%, 63%)", "≥150%": "hsl(120, 65%, 58%)"}  # fmt: skip
    expected = {"Logo retention": logo, "Gross revenue retention (GRR)": logo, "Net revenue retention (NRR)": nrr}
    assert {t: legend(f) for t, f in heatmaps(sections(page)["Cohort retention (monthly cohorts)"]).items()} == expected
    yearly = heatmaps(sections(page)["Cohort retention (yearly cohorts)"])
    assert {t: legend(f) for t, f in yearly.items()} == {"Logo retention": logo, "NRR": nrr}
    # A cell takes its legend's colours: the January cohort at k = 0 is 100 % logo, 100 % NRR.
    january = re.search(r"<tr><th>2024-01</th><td class=n>4</td><td style=\"background:([^\"]+)\">100%", page)
    assert january is not None and january.group(1) == logo["100%"]


Bridge = namedtuple("Bridge", "month mrr customers new_mrr expansion_mrr contraction_mrr churned_mrr "
                              "reactivation_mrr net_new_mrr")  # fmt: skip


def test_mrr_movement_chart_has_a_money_scale():
    rows = [Bridge(month, *values) for month, values in sorted(fx.DECEMBER_BRIDGE.items())]
    svg = movement_bars(rows)
    ticks = {label: float(y) for y, label in re.findall(r'<text class=tick x="[\d.]+" y="([\d.]+)"[^>]*>([^<]+)<', svg)}
    # Largest month up: January, 6,000 new; largest down: March's 1,000 churned (and April's 1,000
    # contraction). 7,000 over about five intervals: steps of 2,000 from 0 to 6,000.
    assert list(ticks) == ["0", "2,000", "4,000", "6,000"]
    # 200 px for 7,000: the zero line at 20 + 200 × 6/7 = 191.4, 2,000 = 57.1 px.
    zero = re.search(r'<line class=zero x1="75" x2="[\d.]+" y1="([\d.]+)"', svg)
    assert zero is not None and float(zero.group(1)) == pytest.approx(191.4, abs=0.05)
    for label, value in (("0", 0), ("2,000", 2000), ("4,000", 4000), ("6,000", 6000)):
        assert ticks[label] - 3 == pytest.approx(191.43 - value * 200 / 7000, abs=0.06), label
    # The January bar's top sits on the 6,000 tick.
    january = re.search(r'<rect x="80" y="([\d.]+)"[^>]*><title>2024-01 new_mrr: 6,000</title>', svg)
    assert january is not None and float(january.group(1)) == pytest.approx(ticks["6,000"] - 3, abs=0.06)
    assert "MRR change per month" in svg


def test_report_legends_and_scale_render_in_chromium(duckdb_url, tmp_path):
    load_fixture(duckdb_url)
    cohorts.compute_snapshot(fx.SNAPSHOT, warehouse_url=duckdb_url)
    path = write_report(fx.SNAPSHOT)
    browser = chromium_or_skip()
    flags = chromium_flags(tmp_path / "chromium")
    dom = subprocess.run(
        [browser, *flags, "--dump-dom", path.as_uri()], capture_output=True, text=True, timeout=120, check=True
    ).stdout
    assert dom.count("colour scale:") == 5 and "colour scale, logo:" in dom  # five heatmaps; the segment tables
    assert "months since acquisition" in dom and "months since 1 January of the acquisition year" in dom
    assert re.search(r"<tr><th>2024</th><td class=\"n\">10</td>", dom)
    assert ">6,000</text>" in dom and "MRR change per month" in dom
    assert date(2024, 12, 1).strftime("%B %Y") in dom
