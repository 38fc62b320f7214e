"""Run by the lineage tests in a process of its own, pointed at their Prefect server (PREFECT_API_URL), on
which `prefect deploy --all` registered the deployments of prefect.yaml (with their triggers).

1. `lakehouse` for DATE on an embedded MongoDB (its commits say `orchestrated_by: lakehouse`);
2. then, each step alone, as an operator runs it by hand: `ingest_pnadc`, `transform`, `publish` for the
   same date (their commits say `orchestrated_by: events`, so each may start the deployment that follows).
Prints one JSON line: {flow name: flow run id}.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from pydantic import SecretStr

from flows.pipeline import ingest_pnadc, lakehouse, publish, transform
from flows.settings import Settings
from flows.sources.embedded_mongo import embedded_mongo

DATE, ROWS = sys.argv[1], int(sys.argv[2])

settings = Settings()
runs: dict[str, str] = {}
steps = (
    ("lakehouse", lakehouse, {"ingestion_date": DATE}),
    ("ingest_pnadc", ingest_pnadc, {"ingestion_date": DATE}),
    ("transform", transform, {"ingestion_date": DATE}),
    ("publish", publish, {}),
)
with embedded_mongo(Path(settings.lake_root) / "mongo", "ibge", "pnadc20203", ROWS, 7) as server:
    with_mongo = settings.model_copy(update={"mongo_uri": SecretStr(server.uri)})
    for name, run, kwargs in steps:
        state = run(return_state=True, settings=with_mongo, **kwargs)
        if not state.is_completed():
            sys.exit(f"{name} ended {state.type}: {state.message}")
        runs[name] = str(state.state_details.flow_run_id)
print(json.dumps(runs))
