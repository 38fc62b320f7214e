"""flows/layout.py names every unit exactly as the lake on disk has always named it."""

from __future__ import annotations

import ast
from collections.abc import Callable
from pathlib import Path
from typing import get_args

import pytest

from flows import catalog, layout, table_schemas
from flows.engines import duckdb_engine
from flows.lake import MANIFEST, STAGING
from flows.sources.ibge import SHAPES
from flows.spark import schemas as spark_schemas
from flows.spark.schemas import IBGE_RAW

DATE = "2026-11-25"


def test_zones_and_tables() -> None:
    assert layout.ZONES == ("raw", "processing", "consumer")
    assert layout.IBGE_ENTITIES == ("regioes", "mesorregioes", "microrregioes")
    assert layout.DIMENSIONS == ("regioes", "ufs", "mesorregioes", "microrregioes")
    assert layout.PROCESSING_TABLES == ("regioes", "ufs", "mesorregioes", "microrregioes", "pnadc")
    assert layout.CONSUMER_TABLES == ("publico_alvo", "regioes", "ufs", "mesorregioes", "microrregioes")


@pytest.mark.parametrize(
    ("unit", "expected"),
    [
        (layout.partition(DATE), "ingestion_date=2026-11-25"),
        (layout.raw_ibge("mesorregioes", DATE), "ibge/mesorregioes/ingestion_date=2026-11-25"),
        (layout.raw_pnadc(DATE), "pnadc/ingestion_date=2026-11-25"),
        (layout.processing("ufs", DATE), "ufs/ingestion_date=2026-11-25"),
        (layout.processing("pnadc", DATE), "pnadc/ingestion_date=2026-11-25"),
        (layout.quarantine("regioes", DATE), "quarantine/ibge_regioes/ingestion_date=2026-11-25"),
        (layout.quarantine("pnadc", DATE), "quarantine/pnadc/ingestion_date=2026-11-25"),
        (layout.gate_report(DATE), "_quality/ingestion_date=2026-11-25.json"),
        (layout.consumer("publico_alvo"), "publico_alvo"),
        (layout.lock_file(DATE), "ingestion_date=2026-11-25.lock"),
        (layout.ANSWERS, "_answers/latest.json"),
        (layout.REPORT, "_reports/latest.html"),
        (layout.DUCKDB_FILE, "vamosjuntos.duckdb"),
        (layout.LOCKS, "_locks"),
    ],
)
def test_unit_names_are_the_lakes(unit: str, expected: str) -> None:
    assert unit == expected


def test_units_of_a_date_zone_by_zone() -> None:
    units = layout.units_of(DATE)
    d = "ingestion_date=2026-11-25"
    assert [(u.zone, u.path, u.table) for u in units] == [
        ("raw", f"ibge/regioes/{d}", "regioes"),
        ("raw", f"ibge/mesorregioes/{d}", "mesorregioes"),
        ("raw", f"ibge/microrregioes/{d}", "microrregioes"),
        ("raw", f"pnadc/{d}", "pnadc"),
        ("processing", f"regioes/{d}", "regioes"),
        ("processing", f"ufs/{d}", "ufs"),
        ("processing", f"mesorregioes/{d}", "mesorregioes"),
        ("processing", f"microrregioes/{d}", "microrregioes"),
        ("processing", f"pnadc/{d}", "pnadc"),
        ("processing", f"quarantine/ibge_regioes/{d}", "quarantine ibge_regioes"),
        ("processing", f"quarantine/ibge_mesorregioes/{d}", "quarantine ibge_mesorregioes"),
        ("processing", f"quarantine/ibge_microrregioes/{d}", "quarantine ibge_microrregioes"),
        ("processing", f"quarantine/pnadc/{d}", "quarantine pnadc"),
        ("consumer", "regioes", "regioes"),
        ("consumer", "ufs", "ufs"),
        ("consumer", "mesorregioes", "mesorregioes"),
        ("consumer", "microrregioes", "microrregioes"),
        ("consumer", "publico_alvo", "publico_alvo"),
    ]


def test_batches_pair_raw_processing_and_quarantine() -> None:
    d = "ingestion_date=2026-11-25"
    assert [tuple(b) for b in layout.batches(DATE)] == [
        (f"ibge/{e}/{d}", f"{e}/{d}", f"quarantine/ibge_{e}/{d}")
        for e in ("regioes", "mesorregioes", "microrregioes")
    ] + [(f"pnadc/{d}", f"pnadc/{d}", f"quarantine/pnadc/{d}")]


def test_every_unit_past_raw_is_committed_by_one_spark_step() -> None:
    """What lineage announces around a step (layout.step_outputs) is every processing and consumer unit of
    the date, each claimed by exactly one step."""
    claimed = [u for step in layout.SPARK_STEPS for u in layout.step_outputs(step, DATE)]
    assert sorted(claimed) == sorted((u.zone, u.path) for u in layout.units_of(DATE) if u.zone != "raw")
    assert layout.step_outputs(layout.PNADC_TO_PROCESSING, DATE) == [
        ("processing", "quarantine/pnadc/ingestion_date=2026-11-25"),
        ("processing", "pnadc/ingestion_date=2026-11-25"),
    ]
    with pytest.raises(ValueError, match="unknown Spark step 'pnadc'"):
        layout.step_outputs("pnadc", DATE)


def test_each_processing_unit_is_typed_from_its_steps_raw_batch() -> None:
    """Lineage links a processing unit to the raw batch layout names (the UFs to the mesoregions'); each
    is a raw unit of the same date that the step producing the unit reads."""
    d = "ingestion_date=2026-11-25"
    raw = {u.path for u in layout.units_of(DATE) if u.zone == "raw"}
    for step in (layout.IBGE_TO_PROCESSING, layout.PNADC_TO_PROCESSING):
        for _, unit in layout.step_outputs(step, DATE):
            table = unit.split("/ingestion_date=")[0].split("/")[-1]
            assert layout.raw_source(table, DATE) in raw, unit
    assert layout.raw_source(layout.UFS, DATE) == f"ibge/mesorregioes/{d}"
    assert layout.raw_source("ibge_microrregioes", DATE) == f"ibge/microrregioes/{d}"
    assert layout.raw_source(layout.PNADC, DATE) == f"pnadc/{d}"


def test_each_spark_job_names_itself_with_its_layout_step() -> None:
    """`step_main(layout.<STEP>, …)` in flows/spark/jobs/<step>.py: the name the flow runs it by."""
    named = {}
    for path in sorted((ROOT / "flows" / "spark" / "jobs").glob("[!_]*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "step_main":
                first = node.args[0]
                assert isinstance(first, ast.Attribute) and getattr(first.value, "id", None) == "layout", (
                    f"{path.name}: step_main's name is not a layout constant"
                )
                named[path.stem] = getattr(layout, first.attr)
    assert named == {step: step for step in layout.SPARK_STEPS}


# --- one owner: no module spells a partition path or re-declares a table list ------------------------
ROOT = Path(__file__).resolve().parents[1]
SCANNED = ("flows", "benchmarks")
OWNER = ROOT / "flows" / "layout.py"
NAMES = {*layout.ZONES, *layout.PROCESSING_TABLES, *layout.CONSUMER_TABLES}


LAKE = ROOT / "flows" / "lake"  # owns its commit protocol's names (manifest, staging markers, history)
LAKE_NAMES = (MANIFEST, STAGING, layout.HISTORY, layout.BACKFILL)


def _modules() -> list[Path]:
    return sorted(p for d in SCANNED for p in (ROOT / d).rglob("*.py") if p != OWNER)


def _docstrings(tree: ast.AST) -> set[int]:
    """ids of the docstring nodes: prose about the layout may name its paths; code may not."""
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                found.add(id(body[0].value))
    return found


def _code_strings(source: str, where: str, spells: Callable[[str], bool]) -> list[str]:
    """`where:line` of every string (or f-string fragment) outside docstrings for which `spells` holds."""
    tree = ast.parse(source)
    docs = _docstrings(tree)
    return [
        f"{where}:{node.lineno}: {node.value!r}"
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant)
        and isinstance(node.value, str)
        and spells(node.value)
        and id(node) not in docs
    ]


def partition_literals(source: str, where: str) -> list[str]:
    """`where:line` of every string (or f-string fragment) that spells `ingestion_date=` itself."""
    return _code_strings(source, where, lambda text: f"{layout.PARTITION_KEY}=" in text)


def lake_name_literals(source: str, where: str) -> list[str]:
    """`where:line` of every string that spells one of the lake's own names (`_manifest.json`, ...)."""
    # A path segment, not e.g. `s3_staging_dir`.
    return _code_strings(source, where, lambda text: bool(set(text.split("/")) & set(LAKE_NAMES)))


def table_lists(source: str, where: str) -> list[str]:
    """`where:line` of every tuple, list, set or dict literal of two or more zone or table names."""
    found = []
    for node in ast.walk(ast.parse(source)):
        items: list[ast.expr | None] = []
        if isinstance(node, ast.Tuple | ast.List | ast.Set):
            items = list(node.elts)
        elif isinstance(node, ast.Dict):
            items = list(node.keys)
        names = [i.value for i in items if isinstance(i, ast.Constant) and isinstance(i.value, str)]
        if len(names) >= 2 and len(names) == len(items) and set(names) <= NAMES:
            found.append(f"{where}:{node.lineno}: {names}")
    return found


def _scan(find: Callable[[str, str], list[str]]) -> list[str]:
    return [hit for p in _modules() for hit in find(p.read_text(encoding="utf-8"), str(p.relative_to(ROOT)))]


def test_no_module_but_layout_spells_a_partition_path() -> None:
    assert _scan(partition_literals) == [], "ask flows.layout for the unit instead"


def test_no_module_but_layout_and_the_lake_spells_the_lakes_own_names() -> None:
    hits = [
        hit
        for p in _modules()
        if LAKE not in p.parents
        for hit in lake_name_literals(p.read_text(encoding="utf-8"), str(p.relative_to(ROOT)))
    ]
    assert hits == [], "ask flows.layout or flows.lake (MANIFEST, history_record, ...) for the name"


def test_no_module_but_layout_declares_a_table_or_zone_list() -> None:
    assert _scan(table_lists) == [], "use flows.layout's tuples (IBGE_ENTITIES, DIMENSIONS, ZONES, ...)"


def test_the_scans_see_what_they_look_for() -> None:
    code = 'x = f"pnadc/ingestion_date={d}"\ny = ("regioes", "ufs")\nz = {"raw": 1, "consumer": 2}\n'
    assert len(partition_literals(code, "m")) == 1
    assert len(table_lists(code, "m")) == 2
    assert len(lake_name_literals('m = root.rglob("_manifest.json")\n', "m")) == 1
    prose = '"""Units live under `pnadc/ingestion_date=…`."""\nw = ("regioes", other)\n'
    assert partition_literals(prose, "m") == [] and table_lists(prose, "m") == []


def test_table_lists_are_the_layouts_objects() -> None:
    assert duckdb_engine.CONSUMER_TABLES is layout.CONSUMER_TABLES
    assert tuple(catalog.CONSUMER) == layout.CONSUMER_TABLES
    assert tuple(table_schemas.DIMENSIONS) == layout.DIMENSIONS
    assert tuple(SHAPES) == layout.IBGE_ENTITIES == get_args(layout.Entity)
    assert tuple(IBGE_RAW) == layout.IBGE_ENTITIES and tuple(spark_schemas.DIMENSIONS) == layout.DIMENSIONS
