"""Athena in the cloud: the question SQL files as they are, run through pyathena in the workgroup.

Cursor choice. Every query here returns one row (the answers) or a few dozen (the report's charts), so the
time goes into Athena's queueing, planning and scanning, not into moving results. pyathena's default result
set reads rows through the GetQueryResults API, which for such results is one call; the Arrow and pandas
cursors would instead download the result file from the workgroup's S3 output location (an extra
round trip and an extra s3:GetObject permission), which only pays off for results of many thousands of
rows. So we keep the default result set, but through `AsyncCursor`: it is the same result set, and it lets
us start every query first and wait afterwards, so the whole set costs about as long as its slowest query
instead of the sum of all of them.

Results location: the workgroup's (the terraform sets it, encrypted, with a bytes-scanned limit per query);
`s3_staging_dir=""` stops pyathena from falling back to `AWS_ATHENA_S3_STAGING_DIR` and overriding it.
Query result reuse stays off: Athena does not notice that a table now points at a newer lake run.
"""

from __future__ import annotations

import contextlib
from concurrent.futures import Future
from typing import Any

from pyathena import connect
from pyathena.async_cursor import AsyncCursor
from pyathena.error import Error as PyAthenaError
from pyathena.result_set import AthenaResultSet

from flows.engines.base import QueryCost, Rows
from flows.errors import VamosJuntosError
from flows.questions import query_label
from flows.settings import Settings

POLL_INTERVAL_S = 0.5  # GetQueryExecution calls while waiting; Athena queries take a second or more
MAX_WAITERS = 16  # threads waiting on started queries (Athena runs them regardless of this number)


class AthenaQueryError(VamosJuntosError):
    """An Athena query failed, was cancelled (e.g. by the workgroup's bytes-scanned limit) or never ran."""


class AthenaEngine:
    """Runs Athena-dialect SQL in the configured workgroup and database; records each query's cost."""

    def __init__(self, settings: Settings, **connect_kwargs: Any) -> None:
        self.settings = settings
        options: dict[str, Any] = {
            "work_group": settings.athena_workgroup,
            "s3_staging_dir": "",  # the workgroup's result location, never a client-side one
            "schema_name": settings.glue_database,
            "region_name": settings.aws_region,
            "poll_interval": POLL_INTERVAL_S,
            "cursor_class": AsyncCursor,
            "cursor_kwargs": {"max_workers": MAX_WAITERS},
        }
        if settings.athena_endpoint_url:
            options["endpoint_url"] = settings.athena_endpoint_url
        options.update(connect_kwargs)
        self.connection = connect(**options)
        self.cursor: AsyncCursor = self.connection.cursor()
        self._started: dict[str, tuple[str, Future[AthenaResultSet]]] = {}
        self.stats: dict[str, QueryCost] = {}  # per SQL text

    def _start(self, athena_sql: str) -> None:
        try:
            self._started[athena_sql] = self.cursor.execute(athena_sql)
        except PyAthenaError as exc:
            raise AthenaQueryError(
                f"Athena did not start the {query_label(athena_sql)} in workgroup "
                f"{self.settings.athena_workgroup!r} (database {self.settings.glue_database!r}): {exc}. "
                "Check the workgroup exists, has a result location, and that this role may use it."
            ) from exc

    def prefetch(self, athena_sqls: list[str]) -> None:
        """Start these queries now, in this order, so that they run concurrently; `query` collects them."""
        for sql in athena_sqls:
            if sql not in self._started:
                self._start(sql)

    def query(self, athena_sql: str) -> Rows:
        if athena_sql not in self._started:
            self._start(athena_sql)
        query_id, future = self._started.pop(athena_sql)
        try:
            result = future.result()
        except PyAthenaError as exc:
            raise AthenaQueryError(
                f"Athena query {query_id} ({query_label(athena_sql)}) failed: {exc}"
            ) from exc
        try:
            if result.state != "SUCCEEDED":
                reason = result.state_change_reason or result.error_message or "no reason given"
                raise AthenaQueryError(
                    f"Athena query {query_id} ({query_label(athena_sql)}) ended {result.state}: {reason}. "
                    "If it was cancelled for scanning too many bytes, the workgroup's per-query limit "
                    "stopped it: check the table locations and partition projection (docs/cloud-query.md)."
                )
            columns = [d[0] for d in result.description or []]
            rows = [tuple(r) for r in result.fetchall()]
            self.stats[athena_sql] = {
                "engine": "athena",
                "query_id": query_id,
                "bytes_scanned": result.data_scanned_in_bytes,
                "engine_ms": result.engine_execution_time_in_millis,
                "total_ms": result.total_execution_time_in_millis,
            }
        finally:
            result.close()
        return columns, rows

    def close(self) -> None:
        """Cancel queries started but never collected (they would still be billed), then disconnect."""
        for query_id, _ in self._started.values():
            with contextlib.suppress(PyAthenaError):
                self.cursor.cancel(query_id).result()
        self._started.clear()
        self.cursor.close()
        self.connection.close()
