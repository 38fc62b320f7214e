"""CPU and memory notations (flows/spark/kubernetes/quantities.py)."""

from __future__ import annotations

import pytest

from flows.spark.kubernetes.quantities import cpu_to_cores, jvm_memory_to_mib


@pytest.mark.parametrize(("text", "mib"), [("2g", 2048), ("512m", 512), ("1536M", 1536), ("4gb", 4096)])
def test_jvm_memory(text, mib):
    assert jvm_memory_to_mib(text) == mib


def test_jvm_memory_rejects_kubernetes_notation():
    with pytest.raises(ValueError):
        jvm_memory_to_mib("2Gi")


@pytest.mark.parametrize(("cpu", "cores"), [("500m", 1), ("1", 1), ("1500m", 1), ("2.5", 2), (" 4 ", 4)])
def test_cpu_to_cores(cpu, cores):
    assert cpu_to_cores(cpu) == cores
