"""The run summary task every DAG ends with (added by ``postsales.dag_defaults.add_run_summary``)."""

from __future__ import annotations

from airflow.sdk import task

from postsales.assets import RUN_SUMMARY, RUN_SUMMARY_READS
from postsales.pools import WAREHOUSE_POOL


@task(pool=WAREHOUSE_POOL, inlets=RUN_SUMMARY_READS, outlets=RUN_SUMMARY)
def summarize_run() -> dict:
    """Write the run's row of ops.run_summary from the upstream tasks' XCom summaries and states."""
    from airflow.sdk import get_current_context

    from postsales.dag_defaults import TRY_NUMBER_KEY, tries_since_clear
    from postsales.monitoring import RunFacts, write_run_summary
    from postsales.tasks.context import data_interval

    context = get_current_context()
    ti, dag_run = context["ti"], context["dag_run"]
    run_id = context["run_id"]
    upstream = sorted(task_id for task_id in context["dag"].task_ids if task_id != ti.task_id)
    states = ti.get_task_states(dag_id=ti.dag_id, task_ids=upstream, run_ids=[run_id]).get(run_id, {})
    results = {task_id: ti.xcom_pull(task_ids=task_id) for task_id in upstream}
    tries = {task_id: ti.xcom_pull(task_ids=task_id, key=TRY_NUMBER_KEY) for task_id in upstream}
    tries[ti.task_id] = tries_since_clear(ti)
    if getattr(context["dag"].timetable, "periodic", False):
        interval_start, interval_end = data_interval(context)  # inferred for a run without a logical date
    else:  # asset-triggered: no interval
        interval_start, interval_end = dag_run.data_interval_start, dag_run.data_interval_end
    started = getattr(dag_run, "start_date", None)
    called = getattr(dag_run, "run_after", None)
    if getattr(dag_run, "triggering_user_name", None) == "dag_test" and (
        started is None or called is None or abs((started - called).total_seconds()) > 60
    ):
        # dag.test() starts a run at its logical date: only one left to its default (the moment
        # dag.test was called, as make run does) is when the run started; a past one is not.
        started = None
    return write_run_summary(
        RunFacts(
            dag_id=ti.dag_id,
            run_id=run_id,
            run_type=str(getattr(getattr(dag_run, "run_type", None), "value", getattr(dag_run, "run_type", None))),
            data_interval_start=interval_start,
            data_interval_end=interval_end,
            started_at=started,
            task_states={task_id: states.get(task_id) for task_id in upstream},
            task_results={task_id: value for task_id, value in results.items() if value is not None},
            task_tries={task_id: value for task_id, value in tries.items() if value is not None},
        )
    )
