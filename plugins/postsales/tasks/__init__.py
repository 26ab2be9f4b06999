"""The pipeline's Airflow tasks, one module per stage; each task is written once, here.

DAG files (``dags/``) import these TaskFlow tasks and task groups and only wire them; a DAG
that names a shared task its own way uses ``.override(task_id=...)``. Each task declares
where it is defined the pool it needs and the Assets (``postsales.assets``) of the warehouse
tables it can write, including those a step writes on the way (a stage that segments dates
with no segmentation yet writes ``mart.account_segments``).

DAG files import these modules at parse time: they import Airflow's decorators, the Assets
and the pool name, nothing else. pandas, SQLAlchemy and the stage modules are imported in
the task bodies, when a task runs.

A task body lets a ``postsales.errors.NotRetryableError`` (bad input, a broken rules file, a
date before the data, a CRM refusing the credentials) propagate: the retry policy every task
gets from ``postsales.dag_defaults`` fails the task at once on it, and retries anything else.
"""
