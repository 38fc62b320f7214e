"""What a Spark step on Kubernetes can fail with: named errors the CLI's summary shows as they are.

Both are picklable with their fields (Prefect persists a failed task's exception in its state).
"""

from __future__ import annotations

from flows.errors import VamosJuntosError


class SparkStepFailed(VamosJuntosError):
    """A Spark step's Kubernetes Job did not succeed.

    `phase` is the driver pod's phase (Pending/Running/Failed/Unknown) or the Job's state when there was
    no pod; `reason` says why (Evicted, ImagePullBackOff, `Error (exit code 1)`, DeadlineExceeded, ...);
    `last_log_lines` are the driver's last lines (may be empty when the container never started).
    """

    def __init__(
        self,
        step: str,
        phase: str,
        reason: str,
        last_log_lines: list[str] | tuple[str, ...] = (),
        *,
        job_name: str | None = None,
        pod_name: str | None = None,
    ) -> None:
        self.step = step
        self.phase = phase
        self.reason = reason
        self.last_log_lines = list(last_log_lines)
        self.job_name = job_name
        self.pod_name = pod_name
        where = ", ".join(f"{k} {v}" for k, v in (("job", job_name), ("pod", pod_name)) if v)
        logs = "\n".join(f"  | {line}" for line in self.last_log_lines) or "  (no log lines)"
        super().__init__(
            f"Spark step {step!r} failed on Kubernetes ({where or 'no job'}): "
            f"phase={phase}, reason={reason}.\n"
            f"Last driver log lines:\n{logs}\n"
            "Check the lines above; `kubectl -n <namespace> describe job/pod` shows the events. "
            "Retrying the task starts a new Job."
        )

    def __reduce__(self):  # keyword-only fields: the default (cls, args) would lose them
        return (
            _rebuild_failure,
            (self.step, self.phase, self.reason, self.last_log_lines, self.job_name, self.pod_name),
        )


def _rebuild_failure(step, phase, reason, lines, job_name, pod_name) -> SparkStepFailed:
    return SparkStepFailed(step, phase, reason, lines, job_name=job_name, pod_name=pod_name)


class KubernetesApiError(VamosJuntosError):
    """The Kubernetes API answered with an unexpected status, or (`status` None) could not be reached."""

    def __init__(self, method: str, path: str, status: int | None, body: str) -> None:
        self.method, self.path, self.status, self.body = method, path, status, body
        if status is None:
            message = (
                f"Kubernetes API {method} {path} could not be reached: {body}. Hint: in a pod the API is "
                "https://kubernetes.default.svc; elsewhere VAMOSJUNTOS_K8S_API_URL must point at it "
                "(e.g. http://127.0.0.1:8001 behind `kubectl proxy`)."
            )
        else:
            hint = ""
            if status in (401, 403):
                hint = (
                    " Hint: the flow-run service account needs the Role in k8s/rbac-flow-runs.yaml "
                    "(jobs: create/get/list/watch/patch/delete; pods, pods/log: get/list/watch)."
                )
            message = f"Kubernetes API {method} {path} answered {status}: {body[:500]}{hint}"
        super().__init__(message)

    def __reduce__(self):  # the default would call KubernetesApiError(message) and fail to unpickle
        return (type(self), (self.method, self.path, self.status, self.body))
