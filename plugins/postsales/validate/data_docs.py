"""Great Expectations Data Docs that open offline, share one static folder and are kept for a while.

Layout under ``<data dir>/data_docs/``::

    static/                  GX's static files and the vendored CSS/JS (data_docs_static/), once
    <run id>/<entity>/       one GX site per extract run and entity (batch-NNN/ inside: later
                             groups of files of a full refresh)
    latest/<entity>/index.html   opens the entity's most recently written site
    index.html               every kept site, newest first

GX writes each site with its own copy of its static files (~4 MB) and pages that load
Bootstrap, jQuery, bootstrap-table and Font Awesome from CDNs, so offline the index page is
blank. ``publish`` runs right after GX has written a site: it removes the site's static copy,
points the pages at the shared folder and the CDN URLs at the vendored copies, updates the
latest page and the index (each replaced atomically), and deletes the entity's oldest sites
beyond ``data_docs.keep_runs`` (include/rules/expectations.yaml). Publishing holds a file lock
on the folder, so extract tasks running side by side do not interleave.
"""

from __future__ import annotations

import contextlib
import fcntl
import html
import logging
import os
import re
import shutil
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

from postsales import paths

log = logging.getLogger(__name__)

VENDORED = Path(__file__).resolve().parent / "data_docs_static"
STATIC = "static"
LATEST = "latest"
INDEX = "index.html"
# Names under data_docs/ that are not run folders.
RESERVED = {STATIC, LATEST, INDEX, ".lock"}
VERSION_FILE = ".version"

# Every URL GX 1.24's templates load, and the vendored file (under static/vendor/) that replaces
# it; None drops the tag: vega draws profiling charts, which our row-level expectations never have.
CDN_ASSETS: dict[str, str | None] = {
    "https://code.jquery.com/jquery-3.7.1.min.js": "jquery-3.7.1.min.js",
    "https://cdnjs.cloudflare.com/ajax/libs/popper.js/1.12.9/umd/popper.min.js": "popper-1.12.9.min.js",
    "https://stackpath.bootstrapcdn.com/bootstrap/4.3.1/js/bootstrap.min.js": "bootstrap-4.3.1.min.js",
    "https://maxcdn.bootstrapcdn.com/bootstrap/4.3.1/css/bootstrap.min.css": "bootstrap-4.3.1.min.css",
    "https://unpkg.com/bootstrap-table@1.19.1/dist/bootstrap-table.min.js": "bootstrap-table-1.19.1.min.js",
    "https://unpkg.com/bootstrap-table@1.19.1/dist/bootstrap-table.min.css": "bootstrap-table-1.19.1.min.css",
    "https://unpkg.com/bootstrap-table@1.19.1/dist/extensions/filter-control/bootstrap-table-filter-control.min.js": (
        "bootstrap-table-filter-control-1.19.1.min.js"
    ),
    "https://unpkg.com/bootstrap-table@1.19.0/dist/extensions/filter-control/bootstrap-table-filter-control.min.css": (
        "bootstrap-table-filter-control-1.19.1.min.css"
    ),
    "https://unpkg.com/bootstrap-table@1.19.0/dist/extensions/filter-control/bootstrap-table-filter-control.css": (
        "bootstrap-table-filter-control-1.19.1.min.css"
    ),
    "https://cdnjs.cloudflare.com/ajax/libs/bootstrap-datepicker/1.9.0/js/bootstrap-datepicker.min.js": (
        "bootstrap-datepicker-1.9.0.min.js"
    ),
    "https://cdnjs.cloudflare.com/ajax/libs/bootstrap-datepicker/1.9.0/css/bootstrap-datepicker.min.css": (
        "bootstrap-datepicker-1.9.0.min.css"
    ),
    "https://cdn.jsdelivr.net/npm/@forevolve/bootstrap-dark@1.1.0/dist/css/bootstrap-prefers-dark.css": (
        "bootstrap-prefers-dark-1.1.0.min.css"
    ),
    "https://cdnjs.cloudflare.com/ajax/libs/font-awesome/6.6.0/css/all.min.css": "fontawesome-6.6.0/css/all.min.css",
    "https://cdn.jsdelivr.net/npm/vega@5": None,
    "https://cdn.jsdelivr.net/npm/vega-lite@5": None,
    "https://cdn.jsdelivr.net/npm/vega-embed@6": None,
}
# GX's logos on its web-asset bucket -> its packaged images (there is no dark logo in the package).
GX_ASSETS = "https://great-expectations-web-assets.s3.us-east-2.amazonaws.com/"
GX_IMAGES = {"logo-long.png": "images/logo-long.png", "full_logo_dark.png": "images/logo-long.png"}

_TAG = re.compile(r"<(script|link|img)\b[^>]*>(\s*</script>)?", re.IGNORECASE)
_URL_ATTRIBUTE = re.compile(r"""\b(src|href)\s*=\s*(["'])(.*?)\2""", re.IGNORECASE | re.DOTALL)
_SRI = re.compile(r"""\s+(integrity|crossorigin)(\s*=\s*(["']).*?\3)?""", re.IGNORECASE)
_GX_ASSET = re.compile(re.escape(GX_ASSETS) + r"([A-Za-z0-9_.-]+)(\?[^\"')\s]*)?")
# A page's relative reference to its own site's static folder: ./static/, ../../static/ ...
_SITE_STATIC = re.compile(r"""(?<=["'(])(?:\./|(?:\.\./)+)static/""")


def docs_root() -> Path:
    return paths.data_dir() / "data_docs"


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text)


def site_dir(run_id: str, entity: str, batch: int = 1) -> Path:
    """Where GX writes the site of one run, entity and group of files (the first group at the top)."""
    run = _safe(run_id)
    if run in RESERVED or run.startswith("."):
        run = f"run_{run}"
    site = docs_root() / run / entity
    return site if batch == 1 else site / f"batch-{batch:03d}"


@contextlib.contextmanager
def _locked(root: Path) -> Iterator[None]:
    root.mkdir(parents=True, exist_ok=True)
    with open(root / ".lock", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def publish(site: Path, entity: str, keep_runs: int) -> Path:
    """Make a site GX has just written offline-ready and shared-static; update latest, index, retention.

    Returns the site's index page.
    """
    entity_dir = site if site.name == entity else site.parent
    root = entity_dir.parent.parent
    with _locked(root):
        static = ensure_static(root)
        shutil.rmtree(site / STATIC, ignore_errors=True)
        for page in site.rglob("*.html"):
            if STATIC not in page.relative_to(site).parts:
                _rewrite(page, static)
        if site == entity_dir:
            _replace(root / LATEST / entity / INDEX, _redirect_page(entity, entity_dir / INDEX, root))
        removed = prune(root, entity, keep_runs, current=entity_dir)
        _replace(root / INDEX, _index_page(root))
    if removed:
        log.info("Data Docs for %s: removed %d run folder(s) beyond keep_runs=%d", entity, len(removed), keep_runs)
    return site / INDEX


def _static_version() -> str:
    import great_expectations

    vendored = sorted(f"{p.relative_to(VENDORED)}:{p.stat().st_size}" for p in VENDORED.rglob("*") if p.is_file())
    return f"great_expectations {great_expectations.__version__}\n" + "\n".join(vendored) + "\n"


def ensure_static(root: Path) -> Path:
    """``root/static``: GX's static files and ours under ``vendor/``, written when missing or outdated."""
    import great_expectations

    static = root / STATIC
    version = _static_version()
    marker = static / VERSION_FILE
    if marker.is_file() and marker.read_text(encoding="utf-8") == version:
        return static
    building = root / f".static-{uuid.uuid4().hex[:8]}"
    shutil.copytree(Path(great_expectations.__file__).parent / "render" / "view" / "static", building)
    shutil.copytree(VENDORED, building / "vendor")
    (building / VERSION_FILE).write_text(version, encoding="utf-8")
    if static.exists():
        old = root / f".static-old-{uuid.uuid4().hex[:8]}"
        static.rename(old)
        building.rename(static)
        shutil.rmtree(old, ignore_errors=True)
    else:
        building.rename(static)
    return static


def offline_html(text: str, static_prefix: str) -> str:
    """A GX page with its CDN and web-asset URLs pointed at the shared static folder.

    ``static_prefix`` is the relative URL of that folder from the page, e.g. ``../../static``.
    """

    def tag(match: re.Match) -> str:
        whole = match.group(0)
        found = _URL_ATTRIBUTE.search(whole)
        if found is None or found.group(3) not in CDN_ASSETS:
            return whole
        local = CDN_ASSETS[found.group(3)]
        if local is None:
            return ""
        url = f"{static_prefix}/vendor/{local}"
        rewritten = whole[: found.start(3)] + url + whole[found.end(3) :]
        # Subresource integrity and CORS mode are for the CDN copy; on file:// they block the script.
        return _SRI.sub("", rewritten)

    text = _TAG.sub(tag, text)
    text = _GX_ASSET.sub(
        lambda m: f"{static_prefix}/{GX_IMAGES[m.group(1)]}" if m.group(1) in GX_IMAGES else m.group(0), text
    )
    return _SITE_STATIC.sub(f"{static_prefix}/", text)


_REMOTE = re.compile(
    r"""<(?:script|img)\b[^>]*\bsrc\s*=\s*["']?(?:https?:)?//[^"'\s>]+"""
    r"""|<link\b[^>]*\bhref\s*=\s*["']?(?:https?:)?//[^"'\s>]+"""
    r"""|url\(\s*["']?(?:https?:)?//[^"')\s]+""",
    re.IGNORECASE,
)


def remote_fetches(text: str) -> list[str]:
    """What a page would still load over the network (scripts, styles, images, CSS urls)."""
    return _REMOTE.findall(text)


def _rewrite(page: Path, static: Path) -> None:
    prefix = Path(os.path.relpath(static, page.parent)).as_posix()
    text = page.read_text(encoding="utf-8")
    rewritten = offline_html(text, prefix)
    if rewritten != text:
        page.write_text(rewritten, encoding="utf-8")
    for fetch in remote_fetches(rewritten):
        # A great_expectations upgrade that loads something new: vendor it and add it to CDN_ASSETS.
        log.warning("Data Docs page %s still loads %s over the network: it will not render offline", page, fetch)


def _run_folders(root: Path) -> list[Path]:
    return [run for run in root.iterdir() if run.is_dir() and run.name not in RESERVED and not run.name.startswith(".")]


def _runs(root: Path, entity: str) -> list[Path]:
    """The entity's site folders, newest first (by when their index page was written)."""

    def written(entity_dir: Path) -> float:
        index = entity_dir / INDEX
        return (index if index.exists() else entity_dir).stat().st_mtime

    found = [run / entity for run in _run_folders(root) if (run / entity).is_dir()]
    return sorted(found, key=lambda d: (written(d), d.parent.name), reverse=True)


def prune(root: Path, entity: str, keep_runs: int, current: Path | None = None) -> list[Path]:
    """Delete the entity's sites beyond the ``keep_runs`` newest (never ``current``); returns them."""
    runs = _runs(root, entity)
    if current is not None and current in runs:
        runs.remove(current)
        runs.insert(0, current)
    removed = runs[keep_runs:]
    for entity_dir in removed:
        shutil.rmtree(entity_dir, ignore_errors=True)
        with contextlib.suppress(OSError):  # the run folder goes once no entity is left in it
            entity_dir.parent.rmdir()
    return removed


def _replace(path: Path, text: str) -> None:
    """Write ``path`` so a reader sees the old or the new file, never half of one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}")
    partial.write_text(text, encoding="utf-8")
    os.replace(partial, path)


def _redirect_page(entity: str, target: Path, root: Path) -> str:
    href = html.escape(Path(os.path.relpath(target, root / LATEST / entity)).as_posix(), quote=True)
    run = html.escape(target.parent.parent.name)
    return (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        f'<meta http-equiv="refresh" content="0; url={href}">'
        f"<title>Data Docs: latest {html.escape(entity)}</title></head><body>"
        f'<p>Latest Data Docs of {html.escape(entity)}: <a href="{href}">run {run}</a></p></body></html>'
    )


def _index_page(root: Path) -> str:
    entities = sorted({site.name for run in _run_folders(root) for site in run.iterdir() if site.is_dir()})
    sections = []
    for entity in entities:
        rows = "".join(
            f'<tr><td><a href="{html.escape(Path(os.path.relpath(d / INDEX, root)).as_posix(), quote=True)}">'
            f"{html.escape(d.parent.name)}</a></td><td>"
            f"{datetime.fromtimestamp((d / INDEX).stat().st_mtime, UTC):%Y-%m-%d %H:%M:%S} UTC</td></tr>"
            for d in _runs(root, entity)
            if (d / INDEX).exists()
        )
        latest = html.escape(f"{LATEST}/{entity}/{INDEX}", quote=True)
        sections.append(
            f'<h2>{html.escape(entity)}</h2><p><a href="{latest}">latest</a></p>'
            f"<table><tr><th>run</th><th>written</th></tr>{rows}</table>"
        )
    return (
        "<!doctype html><html lang=en><head><meta charset=utf-8><title>Data Docs</title>"
        "<style>body{font-family:system-ui,sans-serif;margin:24px}td,th{padding:2px 10px;text-align:left}"
        "</style></head><body><h1>Great Expectations Data Docs</h1>"
        "<p>One site per extract run and entity, newest first; older runs are deleted beyond "
        "<code>data_docs.keep_runs</code> (include/rules/expectations.yaml).</p>"
        f"{''.join(sections) or '<p>No Data Docs yet.</p>'}</body></html>"
    )
