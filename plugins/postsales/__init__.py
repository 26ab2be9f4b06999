"""Post-sales segmentation pipeline library.

Imported by the thin DAG files in ``dags/``; everything heavy (pandas, Great
Expectations, database drivers) is imported inside the functions that need it
so DAG parsing stays fast.
"""
