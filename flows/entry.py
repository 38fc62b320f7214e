"""The `vamosjuntos` command as a process: `flows.cli.main`, then an exit that skips the interpreter's last
sweeps of the garbage collector.

After a run the process holds millions of objects (Prefect's and pydantic's models, PySpark, the flows),
and at exit the interpreter's final collections walk all of them, for nothing: the process is ending.
That took ~0.9 s after `vamosjuntos run` here, after every atexit handler (Prefect's log and event
workers flushing, the temporary server's stop) had run (docs/operations.md, "What Prefect costs a local
run"). `gc.freeze()` once the command has returned takes the objects alive then out of the collector's
sight: atexit handlers still run, and everything is still released by reference counts as before; only
reference cycles among those objects are left to the process's end, as `os._exit` would leave everything.

Only the command's own process does this (the console script, `python -m flows.cli`): a test that calls
`flows.cli.main` in a longer-lived process keeps its collector as it was.
"""

from __future__ import annotations

import gc


def leave(code: int) -> int:
    """`code`, with the objects alive now frozen out of the collector (module docstring): call it only on
    the way out of the process."""
    gc.freeze()
    return code


def run_command() -> int:
    """The console script `vamosjuntos`."""
    from flows.cli import main

    return leave(main())
