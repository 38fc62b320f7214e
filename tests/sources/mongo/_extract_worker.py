"""One pnadc extraction in its own process, for crash tests.

`python -m tests.sources.mongo._extract_worker CFG`:

CFG is JSON: {"settings": {...Settings fields...}, "date": "...", "kill_after_part": N | null}. With
`kill_after_part`, the process SIGKILLs itself as soon as part N is written and checkpointed: no cleanup,
no `finally`, exactly what an OOM kill or a lost node does.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import sys

from flows.lake import Lake
from flows.settings import Settings
from flows.sources.mongo import extract_pnadc


class _KillAfter(logging.Handler):
    def __init__(self, part: int) -> None:
        super().__init__()
        self.prefix = f"pnadc part {part:05d}:"

    def emit(self, record: logging.LogRecord) -> None:
        if record.getMessage().startswith(self.prefix):
            os.kill(os.getpid(), signal.SIGKILL)


def main() -> int:
    cfg = json.loads(sys.argv[1])
    settings = Settings(**cfg["settings"])
    logger = logging.getLogger("extract-worker")
    logger.setLevel(logging.INFO)
    if cfg.get("kill_after_part") is not None:
        logger.addHandler(_KillAfter(cfg["kill_after_part"]))
    result = extract_pnadc(settings, Lake(settings), cfg["date"], logger=logger)
    print(json.dumps({"records": result.manifest["records"]}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
