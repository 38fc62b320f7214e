"""The embedded MongoDB of a run with no `VAMOSJUNTOS_MONGO_URI`: SecantusDB (flows/sources/local_mongo.py)
on a folder under the lake root, seeded once, stopped once the stream is done.

The server takes a while to answer (its interpreter and imports, then its data folder: about half a second
on an idle machine, flows/sources/secantus_daemon.py, and longer while Prefect's server starts beside it).
`vamosjuntos run` launches it ahead (`launch_ahead`), before it waits for Prefect's server, so it starts
meanwhile; the `lakehouse` flow then takes it (`embedded_mongo`) instead of starting one, and one no run
took is stopped when the command ends.
"""

from __future__ import annotations

import atexit
import logging
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from flows.errors import VamosJuntosError
from flows.sources.local_mongo import SecantusProcess, secantus_installed
from flows.sources.local_mongo_seed import held_documents, seed

log = logging.getLogger(__name__)

# Launched ahead and not taken yet, by data folder.
_launched: dict[Path, SecantusProcess] = {}


def _server(storage_path: Path) -> SecantusProcess:
    return SecantusProcess(storage_path, log_path=storage_path.parent / "secantusd.log")


def launch_ahead(storage_path: Path) -> None:
    """Launch the embedded server on `storage_path` without waiting for it; `embedded_mongo` on the same
    folder takes it. Anything that stops the launch is left for `embedded_mongo` to meet and say (the
    stand-in not installed, a folder another run holds)."""
    if storage_path in _launched or not secantus_installed():
        return
    try:
        server = _server(storage_path).launch()
    except (VamosJuntosError, OSError) as exc:
        log.debug("The embedded MongoDB was not launched ahead: %s", exc)
        return
    if not _launched:
        atexit.register(stop_untaken)
    _launched[storage_path] = server


def launched_uri(storage_path: Path) -> str | None:
    """The address of the server launched ahead on `storage_path`, if one was (it may not answer yet)."""
    server = _launched.get(storage_path)
    return server.uri if server is not None else None


def stop_untaken() -> None:
    """Stop the servers launched ahead that no run took (the command failed before its flow started)."""
    while _launched:
        _launched.popitem()[1].stop()


@contextmanager
def embedded_mongo(
    storage_path: Path,
    database: str,
    collection: str,
    rows: int,
    seed_value: int,
    logger: logging.Logger | logging.LoggerAdapter[Any] | None = None,
) -> Iterator[SecantusProcess]:
    """Start the embedded server on its data folder (or take the one `launch_ahead` launched there), seed
    it if empty, and yield it (its `uri`); it stops on leaving, or sooner with `stop_after_stream`. A
    collection that holds other documents than `rows` of `seed_value` is kept, and `logger` says so (a
    run's `--rows` or `--seed` would otherwise be ignored silently)."""
    logger = logger or log
    with _launched.pop(storage_path, None) or _server(storage_path) as server:  # waits until it listens
        inserted = seed(server.uri, database, collection, rows, seed_value)
        if inserted:
            logger.info(
                "Seeded the embedded MongoDB (%s) with %s generated documents", storage_path, f"{inserted:,}"
            )
        else:
            how, count, seeded = held_documents(server.uri, database, collection)
            if count != rows or seeded not in (None, seed_value):  # None: seeded before the seed was kept
                held = (
                    f"was seeded with {count:,} documents of seed {seeded}"
                    if how == "seeded"
                    else f"already holds {count:,} documents"
                )
                logger.warning(
                    "The embedded MongoDB (%s) %s, so it was not seeded with %s of seed %s: it seeds an "
                    "empty collection only. For a run on those, use another lake folder "
                    "(VAMOSJUNTOS_LAKE_ROOT).",
                    storage_path,
                    held,
                    f"{rows:,}",
                    seed_value,
                )
        yield server


def stop_after_stream(server: SecantusProcess, logger: logging.Logger | logging.LoggerAdapter[Any]) -> None:
    """Stop the embedded server once the run has streamed its documents, and log what that freed.

    Nothing after the stream reads MongoDB, and SecantusDB still holds memory after it (its peak, while it
    builds the stream's answer, is earlier): 170 and 210 MB in two runs at 368,210 documents, 269 and 630 MB
    after a full drain of 368,210 and 2,000,000 (docs/operations.md), which the Spark steps can use instead.
    Its data stays in its folder for the next run. A stop that fails only keeps that memory: a warning, not
    the run's failure (its data is committed), and leaving `embedded_mongo` stops it again."""
    if not server.running:
        logger.info("The embedded MongoDB had already stopped before the Spark steps.")
        return
    held = server.resident_mb()
    try:
        server.stop()
    except (OSError, subprocess.SubprocessError) as exc:
        logger.warning(
            "The embedded MongoDB did not stop after the stream (%s): it stops at the run's end.", exc
        )
        return
    freed = f"the {held:,.0f} MB it held are free" if held is not None else "its memory is free"
    logger.info("The embedded MongoDB stopped after the stream: %s for the Spark steps.", freed)
