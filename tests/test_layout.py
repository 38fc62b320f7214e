"""flows/layout.py names every unit exactly as the lake on disk has always named it."""

from __future__ import annotations

import pytest

from flows import layout

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
