"""The PNAD data contract's value rules, shared by the Spark typing and the quality gate (no Spark here)."""

from __future__ import annotations

IDADE_RANGE = (0, 130)
# Plausible ranges of the measured numbers, inclusive: far wider than anything the survey holds (income
# 0-310,000 R$ a month, 0-120 weekly hours, 0-16 years of study) and tight enough that no sum or average
# over them can overflow. A value outside is a corrupt record: quarantined with the reason, never averaged.
NUMBER_RANGES: dict[str, tuple[int, int]] = {
    "renda": (0, 10_000_000),
    "horastrab": (0, 168),
    "anosesco": (0, 40),
}
DOMAINS: dict[str, tuple[str, ...]] = {
    "sexo": ("Homem", "Mulher"),
    "cor": ("Branca", "Preta", "Amarela", "Parda", "Indígena", "Ignorado"),
    "graduacao": ("Sim", "Não"),
    "trab": ("Pessoas na força de trabalho", "Pessoas fora da força de trabalho"),
    "ocup": ("Pessoas ocupadas", "Pessoas desocupadas"),
}
