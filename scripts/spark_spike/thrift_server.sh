#!/usr/bin/env bash
# Start (or stop) Spark's Thrift JDBC/ODBC server (HiveThriftServer2) from the pip package: pyspark 4.3.0
# ships jars/spark-hive-thriftserver_2.13-4.3.0.jar but not sbin/start-thriftserver.sh, so the class is
# submitted through sbin/spark-daemon.sh as that script would.
#   scripts/spark_spike/thrift_server.sh start DIR [PORT]   -> 127.0.0.1:PORT (10000), binary transport, NOSASL
#   scripts/spark_spike/thrift_server.sh stop DIR
set -euo pipefail
cmd=$1; dir=$(realpath -m "$2"); port=${3:-10000}
PY=${PY:-$PWD/.venv/bin/python}
export SPARK_HOME=$("$PY" -c 'import pyspark, os; print(os.path.dirname(pyspark.__file__))')
export SPARK_LOG_DIR=$dir/logs SPARK_PID_DIR=$dir SPARK_IDENT_STRING=spike SPARK_LOCAL_IP=127.0.0.1
CLASS=org.apache.spark.sql.hive.thriftserver.HiveThriftServer2
mkdir -p "$dir/logs"
case $cmd in
  start)
    "$SPARK_HOME/sbin/spark-daemon.sh" submit $CLASS 1 --name "Thrift JDBC/ODBC Server" \
      --master "${SPARK_MASTER:-local[2]}" --driver-memory "${SPARK_DRIVER_MEMORY:-1g}" \
      --conf spark.sql.warehouse.dir="$dir/warehouse" \
      --conf spark.hadoop.javax.jdo.option.ConnectionURL="jdbc:derby:;databaseName=$dir/metastore_db;create=true" \
      --conf spark.driver.extraJavaOptions="-Dderby.system.home=$dir" \
      --conf spark.sql.shuffle.partitions="${SPARK_SHUFFLE_PARTITIONS:-4}" \
      --conf spark.ui.enabled=false --conf spark.sql.session.timeZone=UTC \
      --conf spark.sql.sources.partitionOverwriteMode=dynamic \
      --hiveconf hive.server2.thrift.bind.host=127.0.0.1 --hiveconf hive.server2.thrift.port="$port" \
      --hiveconf hive.server2.authentication=NOSASL "${@:4}" >/dev/null
    ;;
  stop) "$SPARK_HOME/sbin/spark-daemon.sh" stop $CLASS 1 >/dev/null ;;
  *) echo "usage: $0 start|stop DIR [PORT]"; exit 2;;
esac
