"""The project's own files agree with each other: pins, Makefile, CI entry point (compose: test_compose.py)."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def pins(path: Path) -> dict[str, str]:
    found = {}
    for line in path.read_text().splitlines():
        match = re.match(r"^([A-Za-z0-9_.\-\[\]]+)==([^\s;#]+)", line.strip())
        if match:
            name = re.sub(r"\[.*\]", "", match.group(1)).lower().replace("_", "-")
            found[name] = match.group(2)
    return found


def test_every_direct_dependency_is_pinned_and_locked():
    direct = pins(ROOT / "requirements.txt")
    locked = pins(ROOT / "constraints.txt")
    requirement_lines = [
        line for line in (ROOT / "requirements.txt").read_text().splitlines() if line.strip() and line[0] != "#"
    ]
    assert len(direct) == len(requirement_lines), "every requirement must be pinned with =="
    for name, version in direct.items():
        assert locked.get(name) == version, f"{name}: requirements {version} vs constraints {locked.get(name)}"
    assert direct["apache-airflow"].startswith("3.3.")
    assert direct["great-expectations"].startswith("1.")
    assert "airflow-provider-great-expectations" not in locked


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    assert "make test" in readme
    assert re.search(r"^make .*\btest\b", ci, re.M)


def test_plugins_loader_skips_the_library():
    assert "postsales/" in (ROOT / "plugins" / ".airflowignore").read_text().split()
