"""A project home (POSTSALES_HOME) whose rules files a test changes, the shipped ones untouched."""

from __future__ import annotations

from pathlib import Path


def project_with_rules(home: Path, monkeypatch, **files: str) -> Path:
    """The shipped SQL and rules under ``home``, ``files`` (name -> text) replacing some rules;
    exported as POSTSALES_HOME. Returns the rules directory."""
    from postsales import paths

    shipped = paths.include_dir()
    (home / "include" / "rules").mkdir(parents=True)
    (home / "include" / "sql").symlink_to(shipped / "sql")
    (home / "include" / "macros").symlink_to(shipped / "macros")
    (home / "include" / "tables").symlink_to(shipped / "tables")
    for rules in (shipped / "rules").glob("*.yaml"):
        (home / "include" / "rules" / rules.name).write_text(files.get(rules.name, rules.read_text()))
    monkeypatch.setenv("POSTSALES_HOME", str(home))
    return home / "include" / "rules"
