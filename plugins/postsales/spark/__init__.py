"""Apache Spark as the third warehouse (docs/deploy.md#choosing-a-warehouse).

``sql``: SQL written once for DuckDB and PostgreSQL, as Spark SQL (sqlglot and the rewrites it
needs). ``dialect``: SQLAlchemy on a Spark Connect server, ``spark+connect://host:port``
(registered by ``postsales.warehouse`` when a warehouse URL names it). ``server``: a local Spark
Connect server from the pip package (``make spark-server``), for development and the tests.
Needs ``make install-spark`` (pyspark) and Java 17 or later.
"""
