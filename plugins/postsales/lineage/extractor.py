"""The OpenLineage extractor of the pipeline's tasks (``postsales.lineage`` says what it reports).

Registered for the TaskFlow operator classes (``@task``, ``@task.short_circuit``) with

    AIRFLOW__OPENLINEAGE__EXTRACTORS=postsales.lineage.extractor.PostsalesExtractor

(the Makefile, the Dockerfile and docker-compose.yaml set it). Airflow's OpenLineage listener
calls it in the task's process when the task starts (inputs: the declared inlets), succeeds
(inputs, and the outputs the task recorded) and fails (inputs only: what a failed task's
transactions wrote was rolled back). A TaskFlow task that is not the pipeline's gets what it would
get without this extractor: its inlets and outlets, and hook lineage.
"""

from __future__ import annotations

import contextlib

from airflow.providers.openlineage.extractors.base import BaseExtractor, OperatorLineage
from airflow.providers.openlineage.utils.utils import get_unknown_source_attribute_run_facet
from openlineage.client.event_v2 import InputDataset, OutputDataset
from openlineage.client.facet_v2 import input_statistics_input_dataset, schema_dataset

from postsales import lineage


class PostsalesExtractor(BaseExtractor):
    @classmethod
    def get_operator_classnames(cls) -> list[str]:
        return ["_PythonDecoratedOperator", "_ShortCircuitDecoratedOperator"]

    def _ours(self) -> bool:
        module = getattr(getattr(self.operator, "python_callable", None), "__module__", "") or ""
        return module.startswith("postsales.")

    def _execute_extraction(self) -> OperatorLineage | None:
        if not self._ours():
            return OperatorLineage(run_facets=get_unknown_source_attribute_run_facet(task=self.operator))
        return OperatorLineage(inputs=[_input(d) for d in declared_inputs(self.operator)])

    def extract_on_complete(self, task_instance) -> OperatorLineage | None:
        if not self._ours():
            return self.extract()
        recorded = lineage.collected(task_instance)
        return OperatorLineage(
            inputs=_inputs(declared_inputs(self.operator), recorded.inputs.values()),
            outputs=[_output(d) for d in recorded.outputs.values()],
        )

    def extract_on_failure(self, task_instance) -> OperatorLineage | None:
        if not self._ours():
            return self.extract()
        recorded = lineage.collected(task_instance)
        return OperatorLineage(inputs=_inputs(declared_inputs(self.operator), recorded.inputs.values()))


def declared_inputs(task) -> list[lineage.DatasetRef]:
    """The warehouse tables of the task's inlets, in the warehouse it is configured with."""
    from postsales.assets import asset_table
    from postsales.config import warehouse_url

    tables = [table for table in map(asset_table, task.inlets) if table]
    if not tables:
        return []
    url = warehouse_url()
    known = _known_tables()
    return [
        lineage.warehouse_table(url, known[table])
        if table in known
        else lineage.database_dataset(url, *table.split(".", 1))
        for table in tables
    ]


def _known_tables() -> dict:
    """Every warehouse table by ``schema.table`` (the staging tables as expectations.yaml builds them)."""
    from postsales import tables, warehouse

    known = {table.fullname: table for table in tables.catalog().tables.values()}
    # A broken expectations.yaml fails the extract itself; the names are enough here.
    with contextlib.suppress(Exception):
        known |= {table.fullname: table for table in warehouse.tables().staging.values()}
    return known


def _inputs(*groups) -> list[InputDataset]:
    seen: dict[tuple[str, str], lineage.DatasetRef] = {}
    for group in groups:
        for dataset in group:
            seen.setdefault(dataset.key, dataset)
    return [_input(d) for d in seen.values()]


def _facets(dataset: lineage.DatasetRef) -> dict:
    if not dataset.fields:
        return {}
    return {
        "schema": schema_dataset.SchemaDatasetFacet(
            fields=[
                schema_dataset.SchemaDatasetFacetFields(name=name, type=kind, description=description)
                for name, kind, description in dataset.fields
            ]
        )
    }


def _input(dataset: lineage.DatasetRef) -> InputDataset:
    input_facets = {}
    if dataset.file_count is not None:
        input_facets["inputStatistics"] = input_statistics_input_dataset.InputStatisticsInputDatasetFacet(
            fileCount=dataset.file_count
        )
    return InputDataset(
        namespace=dataset.namespace, name=dataset.name, facets=_facets(dataset), inputFacets=input_facets
    )


def _output(dataset: lineage.DatasetRef) -> OutputDataset:
    return OutputDataset(namespace=dataset.namespace, name=dataset.name, facets=_facets(dataset))
