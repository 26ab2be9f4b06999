"""The airflow dags trigger commands a task logs for a person to run (approvals)."""

from __future__ import annotations

import json


def test_a_logged_trigger_command_is_one_shell_word_whatever_the_version():
    import shlex
    from types import SimpleNamespace

    import pendulum

    from postsales.tasks import trigger_command

    start = pendulum.datetime(2026, 10, 1, tz="UTC")
    context = {"params": {"force": True}, "dag": SimpleNamespace(dag_id="annual_segmentation_review"),
               "data_interval_start": start, "data_interval_end": start.add(months=1)}  # fmt: skip
    version = "2027.01'; rm -rf ~; echo '"
    words = shlex.split(trigger_command(context, approve_rules_version=version))
    assert words[:5] == ["airflow", "dags", "trigger", "annual_segmentation_review", "--conf"] and len(words) == 6
    assert json.loads(words[5]) == {"month": "2026-10", "force": True, "approve_rules_version": version}
