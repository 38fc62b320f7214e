"""Streaming the driver container's log into the run's logger, keeping the last lines for a failure report."""

from __future__ import annotations

import collections
import logging
import re
import threading
from collections.abc import Iterator

import httpx

from flows.spark.kubernetes.api import KubeApi
from flows.spark.kubernetes.errors import KubernetesApiError
from flows.spark.kubernetes.job_status import driver_status
from flows.spark.kubernetes.names import DRIVER_CONTAINER


class LogFollower(threading.Thread):
    """Streams the driver container's log lines into the logger, keeping the last ones for a failure report.

    Reconnects with `sinceTime` when the API server drops the stream while the container still runs.
    """

    def __init__(
        self,
        api: KubeApi,
        pod: str,
        logger: logging.Logger | logging.LoggerAdapter,
        step: str,
        keep: int,
        tail: int | None,
    ) -> None:
        super().__init__(name=f"spark-log-{pod}", daemon=True)
        self.api, self.pod, self.logger, self.step = api, pod, logger, step
        self.lines: collections.deque[str] = collections.deque(maxlen=keep)
        self.tail = tail  # on reattach: start from the last lines, not the whole log again
        self.stop_event = threading.Event()
        self._since: str | None = None

    def _stream(self, client: httpx.Client) -> Iterator[str]:
        params = {"container": DRIVER_CONTAINER, "follow": "true", "timestamps": "true"}
        if self._since:
            params["sinceTime"] = self._since
        elif self.tail is not None:
            params["tailLines"] = str(self.tail)
        path = f"/api/v1/namespaces/{self.api.namespace}/pods/{self.pod}/log"
        headers = {**self.api.headers(), "Accept": "text/plain"}
        with client.stream("GET", path, params=params, headers=headers, timeout=None) as response:
            if response.status_code != 200:
                response.read()
                raise KubernetesApiError("GET", path, response.status_code, response.text)
            yield from response.iter_lines()

    def _still_running(self) -> bool:
        try:
            pod = self.api.get_pod(self.pod)
        except (httpx.HTTPError, KubernetesApiError):
            return True  # can't tell: try the stream again
        return pod is not None and "running" in (driver_status(pod).get("state") or {})

    def run(self) -> None:
        last_seen: tuple[str, str] | None = None
        resume_after: tuple[str, str] | None = None  # only lines later than this after a reconnect
        with self.api.new_client() as client:
            for _attempt in range(20):
                try:
                    for raw in self._stream(client):
                        stamp, _, line = raw.partition(" ")
                        key = timestamp_key(stamp)
                        if key is None:  # no timestamp: keep the raw line
                            line = raw
                        elif resume_after is not None and key <= resume_after:
                            continue  # delivered before the reconnect
                        else:
                            last_seen, resume_after = key, None
                        self.lines.append(line)
                        self.logger.info("[%s] %s", self.step, line)
                    if self.stop_event.is_set() or not self._still_running():
                        return  # the container finished: its log is complete
                    raise httpx.RemoteProtocolError("log stream closed while the container runs")
                except (httpx.HTTPError, KubernetesApiError) as exc:
                    if self.stop_event.is_set():
                        return
                    resume_after = last_seen
                    self._since = f"{last_seen[0]}Z" if last_seen else None
                    self.logger.debug("log stream of %s interrupted (%s); reconnecting", self.pod, exc)
                    if self.stop_event.wait(1.0):
                        return


def timestamp_key(stamp: str) -> tuple[str, str] | None:
    """RFC3339Nano (UTC, variable-width fraction) -> a key that sorts in time order; None if not one."""
    match = re.fullmatch(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d{1,9}))?Z", stamp)
    if not match:
        return None
    return match.group(1), (match.group(2) or "").ljust(9, "0")
