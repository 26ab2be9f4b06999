"""The SQL macros (include/macros) render, and the rules they hold are written nowhere else."""

from __future__ import annotations

import re
from pathlib import Path

import jinja2
import pytest

from postsales import warehouse

ROOT = Path(__file__).resolve().parents[2]
SQL_FILES = sorted((ROOT / "include" / "sql").rglob("*.sql"))


def code(text: str) -> str:
    """The SQL without its comments (they may describe the rule)."""
    return "\n".join(line.split("--", 1)[0] for line in text.splitlines())


@pytest.mark.parametrize("path", SQL_FILES, ids=lambda p: str(p.relative_to(ROOT / "include" / "sql")))
def test_every_query_renders_and_spells_no_point_in_time_rule_itself(path):
    rendered = warehouse.render_sql(path)
    assert "{{" not in rendered and "{%" not in rendered
    # The rule compares valid_from / valid_to: only the macro known_at may.
    assert not re.search(r"valid_(from|to)\s*(is|<|>|=)", code(path.read_text())), (
        f"{path.name}: use {{{{ known_at(versions, moment) }}}} (include/macros/point_in_time.sql)"
    )


def test_known_at_renders_the_rule_for_the_relation_and_moment_given():
    env = warehouse._sql_templates(ROOT / "include")
    rendered = " ".join(env.from_string("{{ known_at('v', 'p.next_day') }}").render().split())
    assert rendered == (
        "(v.valid_from is null or v.valid_from < p.next_day) and (v.valid_to is null or v.valid_to >= p.next_day)"
    )


def test_an_unknown_macro_or_argument_fails_instead_of_rendering_empty(tmp_path):
    query = tmp_path / "q.sql"
    query.write_text("select 1 where {{ no_such_macro('x') }}")
    with pytest.raises(jinja2.UndefinedError):
        warehouse.render_sql(query)
    query.write_text("select 1 where {{ known_at('x', undefined_name) }}")
    with pytest.raises(jinja2.UndefinedError):
        warehouse.render_sql(query)
