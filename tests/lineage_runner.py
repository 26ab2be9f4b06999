"""Run DAGs through ``dag.test()`` in a fresh process with OpenLineage on, under the write trace
(tests/write_trace.py), and write down what each task wrote and read (tests/integration/test_lineage.py).

A fresh process because the OpenLineage provider reads its configuration, and registers its
listener, once per process: the test session itself runs with OpenLineage off.

    python tests/lineage_runner.py OUT.json dags '[{"dag_id": ..., "logical_date": ..., "conf": {...}}, ...]'
    python tests/lineage_runner.py OUT.json cli run [ARGS...]      # make run's command (postsales_dev.cli)

OUT.json: ``{"runs": [{"dag_id", "run_id", "state", "tasks": {task_id: state}, "crm_changed"}],
"writes": [[dag_id, run_id, task_id, [tables]]], "reads": [...]}``; ``crm_changed`` compares the
rows of the CRM at ``POSTSALES_CRM_SYNC_URL`` before and after the run (null without one).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path


def crm_rows() -> list | None:
    url = os.environ.get("POSTSALES_CRM_SYNC_URL")
    if not url:
        return None
    from crm_fixtures import crm_rows as rows

    return sorted(map(str, rows(url).items()))


def run_dags(bag, plan: list[dict]) -> list[dict]:
    import pendulum

    runs = []
    for step in plan:
        before = crm_rows()
        logical_date = pendulum.parse(step["logical_date"]) if step.get("logical_date") else None
        dag_run = bag.get_dag(step["dag_id"]).test(logical_date=logical_date, run_conf=step.get("conf"))
        after = crm_rows()
        runs.append(
            {
                "dag_id": dag_run.dag_id,
                "run_id": dag_run.run_id,
                "state": str(getattr(dag_run.state, "value", dag_run.state)),
                "tasks": {ti.task_id: str(getattr(ti.state, "value", ti.state)) for ti in dag_run.get_task_instances()},
                "crm_changed": None if before is None else before != after,
            }
        )
    return runs


def main(argv: list[str]) -> int:
    out, mode, *args = argv
    from write_trace import task_trace

    result: dict = {}
    with task_trace() as trace:
        if mode == "dags":
            from airflow.dag_processing.dagbag import DagBag

            from postsales.dag_defaults import without_duration_alerts

            bag = DagBag(os.environ["AIRFLOW__CORE__DAGS_FOLDER"])
            assert bag.import_errors == {}, bag.import_errors
            result["runs"] = run_dags(without_duration_alerts(bag), json.loads(args[0]))
            code = 0
        else:
            from postsales_dev import cli

            code = cli.main(args)
    result["writes"] = [[*key, sorted(tables)] for key, tables in trace.writes.items()]
    result["reads"] = [[*key, sorted(tables)] for key, tables in trace.reads.items()]
    Path(out).write_text(json.dumps(result, indent=1), encoding="utf-8")
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
