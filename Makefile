# Post-sales segmentation pipeline. `make run` and `make test` are the two commands
# a new user needs; both create .venv and install the pinned set on first use.

PYTHON ?= python3.11
VENV ?= .venv
PY := $(VENV)/bin/python
AIRFLOW := $(VENV)/bin/airflow

export AIRFLOW_HOME ?= $(CURDIR)/.airflow
export AIRFLOW__CORE__DAGS_FOLDER := $(CURDIR)/dags
export AIRFLOW__CORE__PLUGINS_FOLDER := $(CURDIR)/plugins
export AIRFLOW__CORE__LOAD_EXAMPLES := False
export PYTHONPATH := $(CURDIR)/plugins
# The developer tools (devtools/postsales_dev: the demo generator, the run/demo/summary commands) are
# not part of the library or the image: only the dev targets below add them to the path, never the
# Airflow processes (`make airflow`, airflow-env) nor AIRFLOW__CORE__PLUGINS_FOLDER.
DEV_PY := PYTHONPATH=$(CURDIR)/plugins:$(CURDIR)/devtools $(PY)
export GX_ANALYTICS_ENABLED := false
# SQLite metadata (the default): writers take the lock first and wait for it, so the CLI does not
# fail with "database is locked" while the scheduler runs (empty for any other metadata database).
export AIRFLOW__DATABASE__SQL_ALCHEMY_CONNECT_ARGS ?= postsales.airflow_metadata.METADATA_CONNECT_ARGS
# OpenLineage (docs/lineage.md) is off until a transport is configured: OPENLINEAGE_URL=http://localhost:5000
# (Marquez) or AIRFLOW__OPENLINEAGE__TRANSPORT='{"type": "file", "log_file_path": "...", "append": true}' in the
# environment of `make run` / `make airflow`. The extractor naming the pipeline's datasets is always registered;
# it does nothing while OpenLineage is off.
export AIRFLOW__OPENLINEAGE__EXTRACTORS := postsales.lineage.extractor.PostsalesExtractor
export AIRFLOW__OPENLINEAGE__NAMESPACE ?= postsales

DEMO_ACCOUNTS ?= 500
DEMO_SEED ?= 42
WAREHOUSE_POOL_SLOTS ?= 1

.PHONY: install install-spark spark-server spark-server-stop run test e2e lint format airflow airflow-db airflow-env demo summary evaluate lock clean clean-all compose-check bench

$(VENV)/.installed: requirements.txt constraints.txt
	@command -v $(PYTHON) >/dev/null || { echo "$(PYTHON) not found: install Python 3.11 or run make PYTHON=python3"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt -c constraints.txt
	touch $@

install: $(VENV)/.installed

# The Spark warehouse's client and engine (pyspark, 490 MB of jars: docs/deploy.md#choosing-a-warehouse),
# kept out of `make install`. Needs Java 17 or later. CI installs it: the Spark tests run there.
$(VENV)/.spark-installed: $(VENV)/.installed requirements-spark.txt constraints.txt
	@command -v java >/dev/null || { echo "java not found: Spark needs Java 17 or later (Debian: apt-get install openjdk-17-jre-headless)"; exit 1; }
	$(PY) -m pip install --quiet -r requirements-spark.txt -c constraints.txt
	touch $@

install-spark: $(VENV)/.spark-installed

# A local Spark Connect server from the pip package (postsales.spark.server): sc://127.0.0.1:$(SPARK_PORT),
# its warehouse directory and metastore under $(SPARK_DIR).
SPARK_DIR ?= $(CURDIR)/data/spark
SPARK_PORT ?= 15002
spark-server: install-spark
	$(PY) -m postsales.spark.server start --dir $(SPARK_DIR) --port $(SPARK_PORT)

spark-server-stop:
	$(PY) -m postsales.spark.server stop --dir $(SPARK_DIR)

# Airflow metadata (SQLite in AIRFLOW_HOME) and the pool that serialises warehouse writes.
$(AIRFLOW_HOME)/.migrated: $(VENV)/.installed
	mkdir -p $(AIRFLOW_HOME)
	$(AIRFLOW) db migrate > $(AIRFLOW_HOME)/migrate.log 2>&1 || { cat $(AIRFLOW_HOME)/migrate.log; exit 1; }
	$(AIRFLOW) pools set postsales_warehouse $(WAREHOUSE_POOL_SLOTS) "Tasks that open the warehouse (DuckDB: one process at a time)" > /dev/null
	touch $@

airflow-db: $(AIRFLOW_HOME)/.migrated

# Generates the demo source, or regenerates it when it was made with another size or seed
# (data/demo/_demo.json records them); `make run` does the same with the same variables.
demo: install
	$(DEV_PY) -m postsales_dev.cli demo --accounts $(DEMO_ACCOUNTS) --seed $(DEMO_SEED)

# Full refresh of the demo through the real DAGs (dag.test), then a summary.
run: airflow-db
	AIRFLOW__LOGGING__LOGGING_LEVEL=WARNING PYTHONWARNINGS='ignore::DeprecationWarning,ignore:Using `httpx`' $(DEV_PY) -m postsales_dev.cli run --demo-accounts $(DEMO_ACCOUNTS) --demo-seed $(DEMO_SEED)

summary: install
	$(DEV_PY) -m postsales_dev.cli summary

# Forecast backtest, health vs outcome, review recommendations and the report for one date,
# against whatever warehouse POSTSALES_WAREHOUSE_URL points at: make evaluate AS_OF=2026-09-30
# (the library's command, as the image runs it; then the summary of that date).
evaluate: install
	@test -n "$(AS_OF)" || { echo "usage: make evaluate AS_OF=YYYY-MM-DD"; exit 2; }
	$(PY) -m postsales.cli evaluate --as-of $(AS_OF)
	$(DEV_PY) -m postsales_dev.cli summary --as-of $(AS_OF)

test: install
	$(PY) -m pytest

# Two real Airflows, one after the other (docs/operations.md): `local` is make run then make airflow
# (LocalExecutor, SQLite, DuckDB), every DAG's latest interval and a 12-month cohort plus 6-month
# evaluation backfill with no task retried, with OpenLineage on (every table holding rows must be a
# task's output); `celery` is api-server, scheduler, dag-processor, triggerer and a Celery worker
# on this machine's PostgreSQL and Redis: the Asset chain, both backfills side by side checked
# against a direct computation, and their reprocessing unchanged.
# Options: make e2e E2E_ARGS="--stack local --accounts 500 --months 12 --keep"
e2e: install
	$(PY) scripts/e2e.py $(E2E_ARGS)

# Benchmarks at scale (docs/performance.md): make bench SCALE=10k|100k|300k; results in bench/results/.
SCALE ?= 10k
BENCH_ARGS ?=
bench: install
	$(PY) bench/run.py --scale $(SCALE) $(BENCH_ARGS)

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/sqlfluff lint include/sql

format: install
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .
	$(VENV)/bin/sqlfluff fix include/sql

# The Airflow UI (http://localhost:8080) with this project's DAGs; login details are printed.
airflow: airflow-db
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(AIRFLOW) standalone

# The environment `make airflow` runs in, for the airflow CLI in another terminal (the runbook
# in docs/operations.md):  eval "$$(make -s airflow-env)"; airflow backfill create ...
AIRFLOW_ENV_VARS := AIRFLOW_HOME AIRFLOW__CORE__DAGS_FOLDER AIRFLOW__CORE__PLUGINS_FOLDER \
	AIRFLOW__CORE__LOAD_EXAMPLES AIRFLOW__DATABASE__SQL_ALCHEMY_CONNECT_ARGS PYTHONPATH GX_ANALYTICS_ENABLED \
	AIRFLOW__OPENLINEAGE__EXTRACTORS AIRFLOW__OPENLINEAGE__NAMESPACE
airflow-env:
	@$(foreach name,$(AIRFLOW_ENV_VARS),$(if $($(name)),echo "export $(name)='$($(name))'";))
	@echo "export PATH='$(CURDIR)/$(VENV)/bin':\"\$$PATH\""

# Validate docker-compose.yaml without a Docker engine (Debian's docker-compose package, or
# COMPOSE="docker compose"); .env.example supplies every variable, so it works on a fresh clone.
COMPOSE ?= docker-compose
compose-check:
	POSTSALES_ENV_FILE=.env.example $(COMPOSE) --env-file .env.example config --quiet

# Re-resolve the pinned set after changing requirements.txt.
lock:
	rm -rf .venv-lock && $(PYTHON) -m venv .venv-lock
	.venv-lock/bin/pip install --quiet --upgrade pip
	.venv-lock/bin/pip install --quiet -r requirements.txt -r requirements-spark.txt
	{ echo "# Full resolved dependency set (pip freeze of a clean install of requirements.txt and requirements-spark.txt)."; \
	  echo "# Regenerate with: make lock"; .venv-lock/bin/pip freeze; } > constraints.txt
	rm -rf .venv-lock

# `make clean` removes what runs rebuild (Airflow metadata, the warehouse, Data Docs) and says
# what it keeps: the demo source, the HTML reports and benchmark data. `make clean-all` removes those too.
CLEAN_PATHS = $(AIRFLOW_HOME) .airflow-test .e2e data/warehouse.duckdb data/warehouse.duckdb.wal data/data_docs data/spark
KEPT_PATHS = data/demo data/reports data/bench
clean:
	rm -rf $(CLEAN_PATHS)
	@kept="$$(for p in $(KEPT_PATHS); do test -e $$p && printf '%s ' $$p; done)"; \
	test -z "$$kept" || echo "make clean kept $${kept}(demo source, reports, benchmark data): make clean-all removes them too"

clean-all:
	rm -rf $(CLEAN_PATHS) $(KEPT_PATHS)
