"""The developer tools (devtools/postsales_dev) stay out of the shipped library and the image.

The library (plugins/postsales) is what the image and every Airflow process import; the dev
package imports the library, never the other way round. (Compose: test_compose.py.)
"""

from __future__ import annotations

import ast
import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LIBRARY = ROOT / "plugins"
DEV_PACKAGE = "postsales_dev"
DEV_FOLDER = ROOT / "devtools"


def imported_modules(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module)
    return found


def test_the_dev_package_is_outside_the_library():
    assert (DEV_FOLDER / DEV_PACKAGE / "__init__.py").is_file()
    assert not [p for p in LIBRARY.rglob("*") if p.name == DEV_PACKAGE]
    for name in ("demo.py", "summary.py"):
        assert not (LIBRARY / "postsales" / name).exists(), f"plugins/postsales/{name} is a developer tool"


def test_the_library_imports_nothing_from_the_dev_package():
    sources = sorted(LIBRARY.rglob("*.py"))
    assert len(sources) > 20, "the library's modules were not found"
    for path in sources:
        dev = {m for m in imported_modules(path) if m == DEV_PACKAGE or m.startswith(f"{DEV_PACKAGE}.")}
        assert not dev, f"{path.relative_to(ROOT)} imports {sorted(dev)}"
    # Nor by name (importlib, a string in a DAG helper, a doc pointing users there).
    for path in LIBRARY.rglob("*"):
        if path.is_file() and "__pycache__" not in path.parts:
            text = path.read_bytes().decode("utf-8", errors="replace")
            assert DEV_PACKAGE not in text, f"{path.relative_to(ROOT)} names {DEV_PACKAGE}"


def test_the_image_does_not_contain_the_dev_tools():
    dockerfile = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    copied = [
        source
        for line in dockerfile.splitlines()
        if re.match(r"^(COPY|ADD)\s", line)
        for source in [word for word in line.split()[1:] if not word.startswith("--")][:-1]
    ]
    assert "plugins" in copied, copied
    # Neither the folder nor the whole build context ("COPY . ..."): only what .dockerignore admits.
    assert not [s for s in copied if s.strip("./").split("/")[0] in ("devtools", "")], copied
    kept = (ROOT / ".dockerignore").read_text().split()
    assert "*" in kept and not [line for line in kept if line.startswith("!") and "devtools" in line]
    env = " ".join(line for line in dockerfile.splitlines() if line.startswith("ENV "))
    assert "devtools" not in env, "the image's PYTHONPATH is the library's"


def test_only_the_dev_targets_put_the_dev_tools_on_the_path():
    """`make airflow` (the scheduler) and `make airflow-env` get the library only; make run, demo,
    summary and evaluate's summary get both."""
    makefile = (ROOT / "Makefile").read_text()
    exported = re.search(r"^export PYTHONPATH := (.*)$", makefile, re.M)
    assert exported and exported.group(1) == "$(CURDIR)/plugins"
    assert re.search(r"^export AIRFLOW__CORE__PLUGINS_FOLDER := \$\(CURDIR\)/plugins$", makefile, re.M)

    def make(*args: str) -> str:
        return subprocess.run(
            ["make", "-s", "-n", *args, "AIRFLOW_HOME=/nonexistent/.airflow"],
            cwd=ROOT, capture_output=True, text=True, check=True, timeout=60,
        ).stdout  # fmt: skip

    env = subprocess.run(
        ["make", "-s", "airflow-env"], cwd=ROOT, capture_output=True, text=True, check=True, timeout=60
    ).stdout
    assert f"export PYTHONPATH='{ROOT / 'plugins'}'" in env.splitlines()
    dev_path = f"PYTHONPATH={ROOT / 'plugins'}:{DEV_FOLDER}"
    for target, command in (
        ("demo", "-m postsales_dev.cli demo"),
        ("summary", "-m postsales_dev.cli summary"),
        ("evaluate", "-m postsales_dev.cli summary --as-of 2026-09-30"),
    ):
        lines = [line for line in make(target, "AS_OF=2026-09-30").splitlines() if command in line]
        assert lines and all(dev_path in line for line in lines), (target, lines)
    evaluate = make("evaluate", "AS_OF=2026-09-30")
    assert [line for line in evaluate.splitlines() if "-m postsales.cli evaluate" in line and "devtools" not in line]
    assert "devtools" not in make("airflow")
