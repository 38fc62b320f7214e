"""The `rollback` flow: an earlier run of a consumer table made current, the catalog republished, the
questions answered again, and a Prefect event and artifact saying who did what (flows/ops/rollback.py)."""

from __future__ import annotations

import getpass
import os
import socket
from typing import Any

from prefect import flow, get_client, get_run_logger
from prefect.artifacts import create_markdown_artifact
from prefect.events import emit_event
from prefect.runtime import flow_run

from flows.date_lock import one_rollback_per_table
from flows.lake import Lake
from flows.ops.lineage import Orchestrator
from flows.ops.rollback import ZONE, Rollback, check, mark_published, rollback_table
from flows.parent import ParentSettings
from flows.pipeline import answer, publish
from flows.settings import Settings

ROLLED_BACK = "vamosjuntos.table.rolled_back"


def who() -> str:
    """The operating-system user and host; with the Prefect user who started the run when Prefect knows it
    (Prefect Cloud records it on runs started from the UI or the API; a local server does not)."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no passwd entry (some containers): the uid still says who
        user = f"uid {os.getuid()}"
    by = f"{user}@{socket.gethostname()}"
    run_id = flow_run.get_id()
    if run_id:
        with get_client(sync_client=True) as client:
            created_by = client.read_flow_run(run_id).created_by
        if created_by is not None and created_by.display_value:
            by += f" (Prefect {created_by.type or 'user'} {created_by.display_value})"
    return by


def emit_rollback(done: Rollback) -> None:
    """The table is the event's resource; the runs rolled back from and to are related resources."""
    emit_event(
        event=ROLLED_BACK,
        resource={
            "prefect.resource.id": f"vamosjuntos.table.{ZONE}.{done.table}",
            "prefect.resource.name": f"{ZONE}/{done.table}",
        },
        related=[
            {"prefect.resource.id": f"vamosjuntos.run.{done.from_run_id}", "prefect.resource.role": "from"},
            {"prefect.resource.id": f"vamosjuntos.run.{done.to_run_id}", "prefect.resource.role": "to"},
        ],
        payload=done.as_dict(),
    )


def _markdown(done: Rollback) -> str:
    return "\n".join(
        [
            f"### `{ZONE}/{done.table}` rolled back",
            "",
            "| | run | records |",
            "| --- | --- | --- |",
            f"| from | `{done.from_run_id}` | {_count(done.from_records)} |",
            f"| to | `{done.to_run_id}` | {_count(done.to_records)} |",
            "",
            f"By **{done.by}** at {done.at}. The catalog was republished and the questions answered again.",
            f"To undo: `vamosjuntos rollback {done.table} --to {done.from_run_id}`.",
        ]
        + (
            [
                "",
                f"This run, by **{done.resumed_by}**, finished that rollback: it had not been recorded as "
                "carried through (stopped before the catalog and the answers followed it).",
            ]
            if done.resumed
            else []
        )
    )


def rollback_name() -> str:
    return f"rollback {flow_run.parameters.get('table')}"


@flow(name="rollback", flow_run_name=rollback_name)
def rollback(table: str, to_run_id: str | None = None, settings: ParentSettings = None) -> dict[str, Any]:
    """Make an earlier committed run of a consumer table current again; republish; answer again.

    Args:
        table: The consumer table to roll back: publico_alvo, regioes, ufs, mesorregioes or microrregioes.
        to_run_id: The run to make current (`vamosjuntos rollback TABLE --list` shows the runs the lake
            keeps); empty means the run before the current one, refused when the table is already a
            rollback (going further back needs the run named), unless that rollback was never carried
            through (stopped before its catalog and answers followed): then this run finishes it.
        settings: Set by a caller in the same process (the CLI, a test); a run started from a deployment
            reads the environment.
    """
    settings = settings or Settings()
    lake = Lake(settings)
    to_run_id = to_run_id or None  # a run form's empty field: the previous run
    check(lake, table, to_run_id)  # an unknown table or a refused rollback fails before any lock
    with one_rollback_per_table(table, settings):  # a second one waits, then sees what this one did
        return _roll_back(lake, settings, table, to_run_id)


def _roll_back(lake: Lake, settings: Settings, table: str, to_run_id: str | None) -> dict[str, Any]:
    done = rollback_table(lake, table, by=who(), to_run_id=to_run_id)
    get_run_logger().info("%s", done.sentence())
    # The catalog follows the swap first: a failure recording the rollback must not leave Glue on the bad
    # run while the lake has rolled back. Then who did what, then the answers. Only then is the rollback
    # recorded as carried through: a run stopped before that leaves one the same command finishes
    # (flows/ops/rollback.py). It answers itself: its publish must not start `answer` (prefect.yaml).
    publish(settings=settings, parent=Orchestrator.this_run("rollback"))
    emit_rollback(done)
    create_markdown_artifact(
        key=f"rollback-{done.table.replace('_', '-')}",
        markdown=_markdown(done),
        description=f"Rollback of {ZONE}/{done.table}",
    )
    answers = answer(settings=settings).rows
    mark_published(lake, done)
    return {"rollback": done.as_dict(), "answers": answers}


def _count(records: int | None) -> str:
    return "unknown" if records is None else str(records)  # None: the run's record was damaged
