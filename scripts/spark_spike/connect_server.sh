#!/usr/bin/env bash
# Start (or stop) a local Spark Connect server from the pip package (pyspark 4.3.0) alone:
#   scripts/spark_spike/connect_server.sh start DIR [PORT]   -> server on 127.0.0.1:PORT (15002), state in DIR
#   scripts/spark_spike/connect_server.sh stop DIR
# DIR holds the warehouse (DIR/warehouse), the Derby metastore (DIR/metastore_db), logs and pid.
set -euo pipefail
cmd=$1; dir=$(realpath -m "$2"); port=${3:-15002}
PY=${PY:-$PWD/.venv/bin/python}
export SPARK_HOME=$("$PY" -c 'import pyspark, os; print(os.path.dirname(pyspark.__file__))')
export SPARK_LOG_DIR=$dir/logs SPARK_PID_DIR=$dir SPARK_IDENT_STRING=spike SPARK_LOCAL_IP=127.0.0.1
export PYSPARK_PYTHON=$PY
mkdir -p "$dir/logs"
case $cmd in
  start)
    # derby.system.home: where Derby writes derby.log; the metastore follows javax.jdo's URL.
    "$SPARK_HOME/sbin/start-connect-server.sh" \
      --master "${SPARK_MASTER:-local[2]}" \
      --driver-memory "${SPARK_DRIVER_MEMORY:-1g}" \
      --conf spark.connect.grpc.binding.address=127.0.0.1 \
      --conf spark.connect.grpc.binding.port="$port" \
      --conf spark.sql.warehouse.dir="$dir/warehouse" \
      --conf spark.sql.catalogImplementation="${SPARK_CATALOG:-hive}" \
      --conf spark.hadoop.javax.jdo.option.ConnectionURL="jdbc:derby:;databaseName=$dir/metastore_db;create=true" \
      --conf spark.driver.extraJavaOptions="-Dderby.system.home=$dir" \
      --conf spark.sql.shuffle.partitions="${SPARK_SHUFFLE_PARTITIONS:-4}" \
      --conf spark.ui.enabled=false \
      --conf spark.sql.session.timeZone=UTC \
      --conf spark.sql.sources.partitionOverwriteMode=dynamic \
      "${@:4}" >/dev/null
    ;;
  stop)
    "$SPARK_HOME/sbin/stop-connect-server.sh" >/dev/null
    ;;
  *) echo "usage: $0 start|stop DIR [PORT]"; exit 2;;
esac
