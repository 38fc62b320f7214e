"""CPU and memory in the notations that meet here: Kubernetes quantities and JVM sizes."""

from __future__ import annotations

import math
import re

_JVM_UNITS = {"": 1 / (1024 * 1024), "b": 1 / (1024 * 1024), "k": 1 / 1024, "m": 1, "g": 1024, "t": 1024**2}


def jvm_memory_to_mib(value: str) -> int:
    """'2g' / '512m' / '1536M' / '4gb' (Spark/JVM notation, binary units) -> MiB."""
    match = re.fullmatch(r"\s*(\d+)\s*([kmgtKMGT]?)[bB]?\s*", value)
    if not match:
        raise ValueError(f"not a JVM memory size: {value!r} (use e.g. '512m' or '2g')")
    number, unit = match.groups()
    return max(1, math.ceil(int(number) * _JVM_UNITS[unit.lower()]))


def cpu_to_cores(cpu: str) -> int:
    """Kubernetes CPU quantity ('500m', '1', '2.5') -> the integer `spark.executor.cores`."""
    cpu = cpu.strip()
    value = float(cpu[:-1]) / 1000 if cpu.endswith("m") else float(cpu)
    return max(1, math.floor(value))
