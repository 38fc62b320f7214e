"""A date's transform as a service: raw → processing → quality gate → consumer, in that order, here only.

The `transform` flow and the benchmark worker both call it; each wraps the steps its own way (a Prefect
task with retries and lineage, a timed stage) by passing `run_step` and `check_gate`, so neither spells
the order, and the gate is enforced here whoever checks it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from flows.lake import Lake
from flows.layout import IBGE_TO_PROCESSING, PNADC_TO_PROCESSING, PROCESSING_TO_CONSUMER
from flows.services.quality_gate import GateVerdict, quality_gate
from flows.services.run import Transformed
from flows.settings import Settings
from flows.spark import runner
from flows.summary import zone_counts

StepRunner = Callable[[str], None]  # runs one Spark step (by its name in layout.SPARK_STEPS) for the date
GateCheck = Callable[[], GateVerdict]  # checks the date's processing data and returns the verdict

TO_PROCESSING = (IBGE_TO_PROCESSING, PNADC_TO_PROCESSING)

log = logging.getLogger(__name__)


def transform(
    settings: Settings,
    lake: Lake,
    ingestion_date: str,
    *,
    run_step: StepRunner | None = None,
    check_gate: GateCheck | None = None,
    dimensions_done: bool = False,
) -> Transformed:
    """Run the date's Spark steps and the gate between them; return the verdict and the zones' counts.

    Args:
        run_step: How to run one step; by default the Spark runner the settings name, with no wrapping.
        check_gate: How to check the gate; by default the quality-gate service. Its verdict is enforced
            here, before the consumer zone is rebuilt, even if the caller's check already did.
        dimensions_done: The caller ran `ibge_to_processing` for the date already (`lakehouse` runs it
            while MongoDB streams, flows/spark/alongside.py): it is not run again.
    """
    run = run_step or (lambda step: runner.run_step(step, settings, ingestion_date, logger=log))
    check = check_gate or (lambda: quality_gate(settings, lake, ingestion_date))
    for step in TO_PROCESSING:
        if not (dimensions_done and step == IBGE_TO_PROCESSING):
            run(step)
    verdict = check()
    verdict.enforce()
    run(PROCESSING_TO_CONSUMER)
    return Transformed(ingestion_date, verdict, zone_counts(lake, ingestion_date))
