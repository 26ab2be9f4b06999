"""Where the project's files live.

The library sits in ``<project>/plugins/postsales``; ``POSTSALES_HOME`` overrides the
project root (e.g. in a container where ``include/`` is mounted elsewhere).
"""

from __future__ import annotations

import os
from pathlib import Path


def project_root() -> Path:
    override = os.environ.get("POSTSALES_HOME")
    if override:
        return Path(override).resolve()
    return Path(__file__).resolve().parents[2]


def include_dir() -> Path:
    return project_root() / "include"


def rules_dir() -> Path:
    return include_dir() / "rules"


def sql_dir() -> Path:
    return include_dir() / "sql"


def data_dir() -> Path:
    """Generated files (demo data, DuckDB warehouse, Data Docs, reports); ``POSTSALES_DATA_DIR`` overrides."""
    override = os.environ.get("POSTSALES_DATA_DIR")
    return Path(override).resolve() if override else project_root() / "data"
