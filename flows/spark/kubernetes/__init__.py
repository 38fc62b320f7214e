"""Run a Spark step as a short-lived Kubernetes Job: the Job's pod is the Spark driver, executors are pods.

Two processes use this package, and each imports only its side (this file imports nothing):

- the **driver pod** (`python -m flows.spark.jobs.<step>`): its SparkSession builder applies
  `spark_conf.spark_conf_for_kubernetes(settings)`; that module needs no HTTP client;
- the **flow-run pod** calls `step_runner.run_step_on_kubernetes(...)`, which
  1. looks for a Job of the same flow run, step and arguments (labels), so a retried task **reattaches**
     to a running Job instead of starting a second one (a succeeded Job returns at once, a failed Job
     that no one has reported yet raises);
  2. otherwise creates the `batch/v1` Job of `manifest.build_job_manifest` from the Spark image, running
     `python -m flows.spark.jobs.<step> <args>` as the Spark driver (client mode, in the cluster), owned
     by the flow-run pod (`owner_pod.OwnerPod`, from the downward API): when that pod is deleted,
     Kubernetes' garbage collector deletes the Job;
  3. follows the Job (`job_follower`), streaming the driver's log lines into the given logger
     (`log_follower`), until it succeeds or fails; a failure raises `errors.SparkStepFailed` with the
     pod's phase, reason (Evicted, ImagePullBackOff, `Error (exit code 1)`, DeadlineExceeded, ...) and
     the last log lines;
  4. deletes the Job (its pods go too) when the wait is interrupted by anything else than the Job's own
     outcome or an API error: a cancelled task, Prefect's `TerminationSignal`, SIGTERM (the kubelet
     stopping the flow-run pod), Ctrl-C. After an API error the Job is kept, so the task's retry
     reattaches to it.

Finished Jobs are removed by Kubernetes (`ttlSecondsAfterFinished`); `backoffLimit: 0` leaves retries to
Prefect; `activeDeadlineSeconds` bounds a hung step, and `timing.spark_time_budget_s` says how long a
flow-run pod must be allowed to live for the steps it starts. Executors are owned by the driver pod
(`spark.kubernetes.driver.pod.name`), so they go when the driver goes.

The modules: `names` (labels, uid, ports shared with k8s/ and images/spark), `errors`, `quantities` (CPU
and memory notations), `spark_conf` (driver side), `owner_pod`, `manifest`, `api` (a small httpx client),
`job_status` (reading Job and pod objects), `log_follower`, `job_follower`, `timing`, `step_runner`.
"""
