"""The PNAD data contract's value rules, shared by the Spark typing and the quality gate (no Spark here)."""

from __future__ import annotations

IDADE_RANGE = (0, 130)
DOMAINS: dict[str, tuple[str, ...]] = {
    "sexo": ("Homem", "Mulher"),
    "cor": ("Branca", "Preta", "Amarela", "Parda", "Indígena", "Ignorado"),
    "graduacao": ("Sim", "Não"),
    "trab": ("Pessoas na força de trabalho", "Pessoas fora da força de trabalho"),
    "ocup": ("Pessoas ocupadas", "Pessoas desocupadas"),
}
