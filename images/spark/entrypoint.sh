#!/bin/bash
# Entrypoint of the Spark image, under tini (signals reach the JVM / Python, zombies are reaped).
#   executor ...   Spark's Kubernetes scheduler starts executors this way: run the executor backend with the
#                  SPARK_* environment Spark sets on the pod (same contract as Apache Spark's own image).
#   anything else  exec'd as is, e.g. the driver Job's `python -m flows.spark.jobs.<step> --ingestion-date ...`
set -euo pipefail

TINI="${TINI:-/usr/bin/tini}"

if [[ "${1:-}" == "executor" ]]; then
  shift
  # SPARK_JAVA_OPT_0, _1, ... _10: the driver's executor JVM options, in numeric order.
  java_opts=()
  while IFS= read -r name; do
    java_opts+=("${!name}")
  done < <(compgen -e | grep '^SPARK_JAVA_OPT_[0-9][0-9]*$' | sort -t_ -k4 -n || true)
  classpath="${SPARK_HOME}/jars/*"
  if [[ -n "${SPARK_CLASSPATH:-}" ]]; then
    classpath="${SPARK_CLASSPATH}:${classpath}"
  fi
  exec "${TINI}" -s -- "${JAVA_HOME}/bin/java" "${java_opts[@]}" \
    "-Xms${SPARK_EXECUTOR_MEMORY}" "-Xmx${SPARK_EXECUTOR_MEMORY}" \
    -cp "${classpath}" \
    org.apache.spark.scheduler.cluster.k8s.KubernetesExecutorBackend \
    --driver-url "${SPARK_DRIVER_URL}" \
    --executor-id "${SPARK_EXECUTOR_ID}" \
    --cores "${SPARK_EXECUTOR_CORES}" \
    --app-id "${SPARK_APPLICATION_ID}" \
    --hostname "${SPARK_EXECUTOR_POD_IP}" \
    --resourceProfileId "${SPARK_RESOURCE_PROFILE_ID}" \
    --podName "${SPARK_EXECUTOR_POD_NAME}" \
    "$@"
fi

exec "${TINI}" -s -- "$@"
