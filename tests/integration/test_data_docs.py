"""Great Expectations Data Docs built by real extracts: readable offline in Chromium with the network
cut off, static files once per data directory, a stable latest page, retention of old runs."""

from __future__ import annotations

import re
import subprocess
from collections import Counter
from html.parser import HTMLParser
from pathlib import Path

import great_expectations
import pytest
import yaml

import tiny
from browser import chromium_flags, chromium_or_skip, png_pixels
from postsales.config import ConfigError, DataDocs, ExpectationsConfig, load_expectations, load_yaml
from postsales.extract import extract_entity
from postsales.sources import Interval
from postsales_dev.summary import summary_text

DAY1 = Interval(tiny.DAY1, tiny.DAY2)
GX_STATIC = Path(great_expectations.__file__).parent / "render" / "view" / "static"
# Anything a page would fetch over the network: scripts, styles, images, CSS url(...). Links a
# reader may click (<a href>) are not fetched.
REMOTE = re.compile(
    r"""<(?:script|img)\b[^>]*\bsrc\s*=\s*["']?(?:https?:)?//[^"'\s>]+"""
    r"""|<link\b[^>]*\bhref\s*=\s*["']?(?:https?:)?//[^"'\s>]+|url\(\s*["']?(?:https?:)?//[^"')\s]+""",
    re.IGNORECASE,
)


def extract(entity: str, run_id: str, expectations=None) -> Path:
    summary = extract_entity(entity, interval=DAY1, run_id=run_id, expectations=expectations)
    assert summary.data_docs is not None
    return Path(summary.data_docs)


def offline_flags(profile: Path) -> list[str]:
    """Headless Chromium with the network cut off: no host name resolves, no proxy answers; scripts
    get 10 s of virtual time to run before the DOM or the screenshot is taken."""
    return [*chromium_flags(profile), "--host-resolver-rules=MAP * ~NOTFOUND", "--proxy-server=socks5://127.0.0.1:9",
            "--virtual-time-budget=10000"]  # fmt: skip


def offline_dom(browser: str, profile: Path, page: Path) -> str:
    """The page's DOM after its scripts ran, offline."""
    return subprocess.run(
        [browser, *offline_flags(profile), "--dump-dom", page.as_uri()],
        capture_output=True, text=True, timeout=120, check=True,
    ).stdout  # fmt: skip


def test_index_page_renders_its_validation_results_offline(duckdb_url, tiny_source, tmp_path):
    index = extract("accounts", "manual__2024-03-01")
    pages = sorted(index.parent.rglob("*.html"))
    assert len(pages) == 3  # the index, the suite, the validation result
    for page in pages:
        assert REMOTE.findall(page.read_text()) == [], page
        assert "vegaEmbed" not in page.read_text()  # vega is not vendored: no page may need it
    browser = chromium_or_skip()
    dom = offline_dom(browser, tmp_path / "chromium", index)
    # bootstrap-table (vendored) turned the JSON into rows: the run's validation is listed and failed
    # (tiny's day 1 has four bad account rows), with the Font Awesome icon and a link to the suite.
    results = re.search(r"<table[^>]*ge-index-page-validation-results-table.*?</table>", dom, re.DOTALL)
    assert results is not None
    rows = re.findall(r"<tr[^>]*data-index=\"(\d+)\"[^>]*>(.*?)</tr>", results.group(0), re.DOTALL)
    assert [number for number, _ in rows] == ["0"]
    assert "fas fa-times text-danger ge-failed-icon" in rows[0][1]
    assert 'href="expectations/accounts_contract.html"' in rows[0][1]
    assert "Showing 1 to 1 of 1 rows" in dom
    validation = next(p for p in pages if "validations" in p.parts)
    dom = offline_dom(browser, tmp_path / "chromium", validation)
    # The uniqueness check reads the duplicates column (sql_gate.mark_duplicates): "... values must be null".
    assert "account_id__duplicate" in dom and "values must be null" in dom and "Unsuccessful Expectations" in dom
    # And it is visible: Bootstrap's styles drew the title bar (.alert-secondary, #e2e3e5) and the
    # failed icon in .text-danger red (#dc3545). Offline without them the page is unstyled text.
    screenshot = tmp_path / "index.png"
    subprocess.run(
        [browser, *offline_flags(tmp_path / "chromium"), "--window-size=1300,500", f"--screenshot={screenshot}",
         index.as_uri()],
        capture_output=True, timeout=120, check=True,
    )  # fmt: skip
    colours = Counter(png_pixels(screenshot))
    assert colours[(226, 227, 229)] > 10_000
    assert sum(n for (r, g, b), n in colours.items() if abs(r - 220) + abs(g - 53) + abs(b - 69) < 40) > 10


def tree_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def test_static_files_are_stored_once_per_data_directory(duckdb_url, tiny_source, tmp_path):
    root = tmp_path / "data" / "data_docs"
    sites = [("r1", "accounts"), ("r1", "contracts"), ("r2", "accounts")]
    for run, entity in sites:
        extract(entity, run)
    assert sorted(p.relative_to(root).as_posix() for p in root.rglob("static")) == ["static"]
    static = root / "static"
    # GX's packaged static files, byte for byte, and the vendored CSS/JS beside them.
    gx_files = {p.relative_to(GX_STATIC).as_posix() for p in GX_STATIC.rglob("*") if p.is_file()}
    assert gx_files <= {p.relative_to(static).as_posix() for p in static.rglob("*") if p.is_file()}
    assert (static / "vendor" / "jquery-3.7.1.min.js").is_file()
    assert tree_bytes(GX_STATIC) > 3_000_000  # what every site used to copy
    for run, entity in sites:
        assert tree_bytes(root / run / entity) < 400_000, (run, entity)


def latest_target(root: Path, entity: str) -> Path:
    page = (root / "latest" / entity / "index.html").read_text()
    url = re.search(r'http-equiv="refresh" content="0; url=([^"]+)"', page).group(1)
    return (root / "latest" / entity / url).resolve()


def test_latest_page_and_retention(duckdb_url, tiny_source, tmp_path):
    root = tmp_path / "data" / "data_docs"
    keep_one = load_expectations().model_copy(update={"data_docs": DataDocs(keep_runs=1)})
    extract_entity("accounts", interval=DAY1, run_id="load", build_data_docs=False)  # contracts reference them
    extract("contracts", "r1", keep_one)
    for run in ("r1", "r2"):
        extract("accounts", run, keep_one)
        assert latest_target(root, "accounts") == (root / run / "accounts" / "index.html").resolve()
    assert sorted(p.parent.name for p in root.glob("r*/accounts")) == ["r2"]
    assert sorted(p.parent.name for p in root.glob("r*/contracts")) == ["r1"]  # kept per entity
    extract("contracts", "r3", keep_one)
    assert not (root / "r1").exists()  # its last entity's site went: the run folder goes too
    assert sorted(p.name for p in root.iterdir()) == [".lock", "index.html", "latest", "r2", "r3", "static"]
    assert latest_target(root, "contracts") == (root / "r3" / "contracts" / "index.html").resolve()
    index = (root / "index.html").read_text()
    listed = re.findall(r'<a href="([^"]+)">', index)
    assert listed == [
        "latest/accounts/index.html", "r2/accounts/index.html",
        "latest/contracts/index.html", "r3/contracts/index.html",
    ]  # fmt: skip
    assert all((root / link).is_file() for link in listed)
    assert f"  every kept run: {root / 'index.html'}; newest per table: {root / 'latest'}/<table>/index.html" in (
        summary_text().splitlines()
    )


def test_keep_runs_is_validated(tmp_path):
    data = yaml.safe_load((Path(__file__).resolve().parents[2] / "include/rules/expectations.yaml").read_text())
    assert load_expectations().data_docs.keep_runs == data["data_docs"]["keep_runs"] == 30
    data["data_docs"]["keep_runs"] = 0
    path = tmp_path / "expectations.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(
        ConfigError, match=r"expectations.yaml: field 'data_docs.keep_runs': .*greater than or equal to 1"
    ):
        load_yaml(path, ExpectationsConfig)


# CRM values a data engineer opens in Data Docs: each would run script if written into a page as is.
HOSTILE = {
    "lifecycle_stage": "<script>alert('lifecycle_stage')</script>",
    "segment_override": '"><img src=x onerror="alert(\'segment_override\')">',
    "survey_type": "<svg onload=alert('survey_type')>",
}


class PageMarkup(HTMLParser):
    """Script elements and event-handler attributes that would run a payload, and the text a reader sees."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.live: list[str] = []
        self.text: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        # GX's own pages have onclick handlers: a live payload is one that would call alert().
        self.live += [
            f"<{tag} {name}={value!r}>" for name, value in attrs if name.startswith("on") and "alert(" in (value or "")
        ]
        self._in_script = self._in_script or tag == "script"

    def handle_endtag(self, tag: str) -> None:
        self._in_script = self._in_script and tag != "script"

    def handle_data(self, data: str) -> None:
        (self.live if self._in_script and "alert(" in data else self.text).append(data)


def test_data_values_in_data_docs_are_text_never_markup(duckdb_url, tiny_source):
    accounts = [
        {**row, "lifecycle_stage": HOSTILE["lifecycle_stage"]} if row["account_id"] == "A4" else row
        for row in tiny.ACCOUNTS
    ]
    accounts.append(tiny._account("A6", segment_override=HOSTILE["segment_override"]))
    tiny.write_csv(tiny_source / "accounts.csv", tiny.ACCOUNT_COLUMNS, accounts)
    surveys = [*tiny.SURVEYS, {**tiny.SURVEYS[0], "survey_type": HOSTILE["survey_type"]}]
    tiny.write_csv(tiny_source / "survey_responses.csv", tiny.SURVEY_COLUMNS, surveys)
    pages = []
    for entity in ("accounts", "survey_responses"):
        pages += sorted(extract(entity, "hostile").parent.rglob("*.html"))
    shown = []
    for page in pages:
        markup = PageMarkup()
        markup.feed(page.read_text(encoding="utf-8"))
        assert markup.live == [], page
        shown.append("".join(markup.text))
    # Each value is on a validation page, as the text it is.
    for column, value in HOSTILE.items():
        assert any(value in text for text in shown), column
