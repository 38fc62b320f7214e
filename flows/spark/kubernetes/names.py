"""Names shared with k8s/ (RBAC, NetworkPolicy) and images/spark (uid, conf): change them together."""

from __future__ import annotations

LABEL_FLOW_RUN = "vamosjuntos.io/flow-run-id"
LABEL_STEP = "vamosjuntos.io/step"
LABEL_ARGS = "vamosjuntos.io/args-hash"
LABEL_TASK_RUN = "vamosjuntos.io/task-run-id"
LABEL_FAILURE_REPORTED = "vamosjuntos.io/failure-reported"
# Every Spark pod (driver and executors) carries this label: the NetworkPolicy lets them talk.
LABEL_SPARK = "vamosjuntos.io/spark"
LABEL_JOB_NAME = "batch.kubernetes.io/job-name"  # set by the Job controller on its pods (k8s >= 1.27)

DRIVER_CONTAINER = "spark-driver"
NODE_POOL_LABEL = "vamosjuntos.io/pool"  # terraform/eks.tf: node groups `flows` and `spark`
SPARK_UID = 10185  # the `spark` user of images/spark/Dockerfile (>= 10000: no clash with host users)
SPARK_K8S_MASTER = "k8s://https://kubernetes.default.svc:443"
# Fixed ports so the NetworkPolicy can name them (Spark picks random ones otherwise).
DRIVER_PORT = 7078
BLOCK_MANAGER_PORT = 7079
# images/spark/Dockerfile sets SPARK_CONF_DIR to this and copies the executor pod template into it.
IMAGE_SPARK_CONF_DIR = "/opt/spark/conf"
EXECUTOR_POD_TEMPLATE_NAME = "executor-pod-template.yaml"
EXECUTOR_POD_TEMPLATE = f"{IMAGE_SPARK_CONF_DIR}/{EXECUTOR_POD_TEMPLATE_NAME}"
# The flow-run pod's own identity, from the downward API (k8s/work-pool-base-job-template.json): the
# Spark Jobs it starts are owned by it.
OWNER_POD_ENV = {
    "name": "VAMOSJUNTOS_FLOW_RUN_POD_NAME",
    "uid": "VAMOSJUNTOS_FLOW_RUN_POD_UID",
    "namespace": "VAMOSJUNTOS_FLOW_RUN_POD_NAMESPACE",
}
