"""The session every step uses (flows/spark/session.py)."""

from __future__ import annotations

from pyspark.sql import SparkSession

from flows.spark.jvm import INLINING, JVM_OPTIONS, LOCAL_JVM_OPTIONS


def _arguments(spark: SparkSession) -> set[str]:
    """The options the driver's JVM was started with."""
    jvm = spark.sparkContext._jvm
    assert jvm is not None
    return set(jvm.java.lang.management.ManagementFactory.getRuntimeMXBean().getInputArguments())


def _vm_option(spark: SparkSession, name: str) -> str:
    """A HotSpot flag's value in the driver's JVM, as the JVM reports it."""
    jvm = spark.sparkContext._jvm
    assert jvm is not None
    hotspot = jvm.java.lang.Class.forName("com.sun.management.HotSpotDiagnosticMXBean")
    bean = jvm.java.lang.management.ManagementFactory.getPlatformMXBean(hotspot)
    return str(bean.getVMOption(name).getValue())


def test_the_jvm_compiles_huge_generated_methods(spark: SparkSession) -> None:
    """The driver's JVM (which runs the tasks in local mode) was started with the option, so Spark's huge
    generated methods are compiled, not interpreted."""
    assert set(JVM_OPTIONS.split()) <= _arguments(spark)
    assert _vm_option(spark, "DontCompileHugeMethods") == "false"


def test_the_jit_inlines_within_the_projects_limits(spark: SparkSession) -> None:
    """The local JVM runs with the inlining limits of flows/spark/jvm.py, as the JVM itself reports them
    (an option it ignored or misread would show its default here)."""
    limits = dict(option.removeprefix("-XX:").split("=") for option in INLINING.split())
    assert set(limits) == {"MaxInlineLevel", "FreqInlineSize", "InlineSmallCode"}
    assert {name: _vm_option(spark, name) for name in limits} == limits


def test_the_jvm_collects_garbage_with_the_throughput_collector(spark: SparkSession) -> None:
    jvm = spark.sparkContext._jvm
    assert jvm is not None
    collectors = [
        b.getName() for b in jvm.java.lang.management.ManagementFactory.getGarbageCollectorMXBeans()
    ]
    assert any("PS " in name for name in collectors), collectors  # "PS Scavenge", "PS MarkSweep"


def test_the_local_jvm_keeps_a_small_young_generation(spark: SparkSession) -> None:
    """The young generation stays at the fixed size of LOCAL_JVM_OPTIONS (flows/spark/jvm.py): the
    collector does not grow it towards a third of the heap."""
    assert set(LOCAL_JVM_OPTIONS.split()) <= _arguments(spark)
    young = LOCAL_JVM_OPTIONS.split("-Xmn")[1].split()[0]
    assert young.endswith("m")
    assert int(_vm_option(spark, "MaxNewSize")) == int(young[:-1]) << 20
