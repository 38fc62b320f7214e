"""The transform's order lives in flows/services/transform.py: both Spark steps into processing, then the
gate (enforced there, whoever checks it), then the consumer step; the flow and the benchmark pass their own
wrapping of a step and of the gate, and neither spells the order."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from flows.errors import QualityGateFailed
from flows.lake import Lake
from flows.quality import Check
from flows.services.quality_gate import GateVerdict
from flows.services.transform import transform
from flows.settings import Settings
from flows.spark.runner import STEPS
from flows.summary import zone_counts

DATE = "2026-11-29"
ROOT = Path(__file__).resolve().parents[2]


def _lake(tmp_path: Path) -> tuple[Settings, Lake]:
    settings = Settings(_env_file=None, lake_root=str(tmp_path / "lake"))  # type: ignore[call-arg]
    return settings, Lake(settings)


def _verdict(passed: bool) -> GateVerdict:
    return GateVerdict(DATE, (Check("raw = processing + quarantine", passed, 0, "0"),))


def test_steps_run_in_order_with_the_gate_before_the_consumer(tmp_path: Path) -> None:
    settings, lake = _lake(tmp_path)
    calls: list[str] = []

    def check() -> GateVerdict:
        calls.append("gate")
        return _verdict(True)

    done = transform(settings, lake, DATE, run_step=calls.append, check_gate=check)
    assert calls == [STEPS[0], STEPS[1], "gate", STEPS[2]]
    assert done.ingestion_date == DATE and done.gate.passed
    assert done.counts == zone_counts(lake, DATE)


def test_dimensions_done_by_the_caller_are_not_built_again(tmp_path: Path) -> None:
    """`lakehouse` builds the IBGE dimensions while MongoDB streams (flows/spark/alongside.py)."""
    settings, lake = _lake(tmp_path)
    calls: list[str] = []
    gate = lambda: calls.append("gate") or _verdict(True)  # noqa: E731
    transform(settings, lake, DATE, run_step=calls.append, check_gate=gate, dimensions_done=True)
    assert calls == [STEPS[1], "gate", STEPS[2]]


def test_a_failed_gate_stops_before_the_consumer_even_if_the_caller_does_not_enforce(tmp_path: Path) -> None:
    settings, lake = _lake(tmp_path)
    calls: list[str] = []
    with pytest.raises(QualityGateFailed, match="raw = processing"):
        transform(settings, lake, DATE, run_step=calls.append, check_gate=lambda: _verdict(False))
    assert calls == list(STEPS[:2])


@pytest.mark.parametrize("module", ["flows/pipeline.py", "benchmarks/worker.py"])
def test_callers_do_not_spell_the_order(module: str) -> None:
    tree = ast.parse((ROOT / module).read_text())
    named = {n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and n.value in STEPS}
    assert not named, f"{module} names Spark steps {sorted(named)}: the order belongs to services.transform"
