"""The vendored Data Docs assets cover every URL great_expectations' templates load."""

from __future__ import annotations

import re
from pathlib import Path

import great_expectations

from postsales.validate.data_docs import CDN_ASSETS, GX_ASSETS, GX_IMAGES, VENDORED, offline_html

VIEW = Path(great_expectations.__file__).parent / "render" / "view"
LOADS = re.compile(
    r"""<script\b[^>]*\bsrc\s*=\s*["'](https?://[^"']+)|<link\b[^>]*\bhref\s*=\s*["'](https?://[^"']+)"""
    r"""|url\(\s*["']?(https?://[^"')]+)""",
    re.IGNORECASE,
)


def test_every_url_the_templates_load_has_a_local_copy():
    found = set()
    for path in [*VIEW.joinpath("templates").glob("*.j2"), *VIEW.joinpath("static", "styles").glob("*.css")]:
        found |= {next(filter(None, groups)) for groups in LOADS.findall(path.read_text(encoding="utf-8"))}
    assert found, "no template URL found: great_expectations moved its templates"
    # GX's logos on its web-asset bucket (e.g. the dark-mode logo in its styles) map to packaged images.
    unmapped = {url for url in found if url not in CDN_ASSETS and url.removeprefix(GX_ASSETS) not in GX_IMAGES}
    assert unmapped == set()
    for local in filter(None, CDN_ASSETS.values()):
        assert (VENDORED / local).is_file(), local
    for image in GX_IMAGES.values():
        assert (VIEW / "static" / image).is_file(), image


def test_offline_html_points_pages_at_the_shared_static_folder():
    page = (
        '<link rel="stylesheet" href="https://maxcdn.bootstrapcdn.com/bootstrap/4.3.1/css/bootstrap.min.css"/>'
        '<script src="https://stackpath.bootstrapcdn.com/bootstrap/4.3.1/js/bootstrap.min.js" integrity="sha384-x" '
        'crossorigin="anonymous"></script>\n'
        '<script src="https://cdn.jsdelivr.net/npm/vega@5"></script>\n'
        '<link rel="shortcut icon" href="../../../static/images/favicon.ico" type="image/x-icon"/>'
        '<img src="https://great-expectations-web-assets.s3.us-east-2.amazonaws.com/logo-long.png?d=20261202T0">'
        '<a href="https://greatexpectations.io">Great Expectations</a><td><img src=x onerror=alert(1)></td>'
    )
    assert offline_html(page, "../../../../static") == (
        '<link rel="stylesheet" href="../../../../static/vendor/bootstrap-4.3.1.min.css"/>'
        '<script src="../../../../static/vendor/bootstrap-4.3.1.min.js"></script>\n'
        "\n"
        '<link rel="shortcut icon" href="../../../../static/images/favicon.ico" type="image/x-icon"/>'
        '<img src="../../../../static/images/logo-long.png">'
        '<a href="https://greatexpectations.io">Great Expectations</a><td><img src=x onerror=alert(1)></td>'
    )
