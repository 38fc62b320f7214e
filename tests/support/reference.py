"""An independent computation of the ten answers with pandas, straight from the source documents.

It shares nothing with the pipeline but the facts in design.md: no Spark, no SQL files, no lake.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from tests.support.ibge_server import FIXTURES


def _missing_to_none(value: Any) -> Any:
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else value


def target_public(docs: list[dict[str, Any]], fixtures: Path = FIXTURES) -> pd.DataFrame:
    rows = [{k: _missing_to_none(v) for k, v in d.items()} for d in docs]
    df = pd.DataFrame(rows)
    for col in ("renda", "anosesco", "graduacao", "trab", "cor"):
        if col not in df:
            df[col] = None
    df["renda"] = pd.to_numeric(df["renda"], errors="raise").astype(float)
    df["anosesco"] = pd.to_numeric(df["anosesco"], errors="raise").astype(float)
    women = df[(df["sexo"] == "Mulher") & (df["idade"] >= 20) & (df["idade"] <= 40)].copy()
    meso = json.loads((fixtures / "mesorregioes.json").read_text())
    region_of = {m["UF"]["nome"]: m["UF"]["regiao"]["nome"] for m in meso}
    women["regiao"] = women["uf"].map(region_of)
    return women


def mesoregions_in(uf_name: str, fixtures: Path = FIXTURES) -> int:
    meso = json.loads((fixtures / "mesorregioes.json").read_text())
    return sum(1 for m in meso if m["UF"]["nome"] == uf_name)


def _mean(s: pd.Series) -> float | None:
    s = s.dropna()
    return float(s.mean()) if len(s) else None


def answers(docs: list[dict[str, Any]]) -> dict[int, tuple[Any, int]]:
    """{question id: (answer, rows behind it)}"""
    t = target_public(docs)
    out: dict[int, tuple[Any, int]] = {}
    out[1] = (_mean(t.renda), len(t))
    df = t[t.uf == "Distrito Federal"]
    out[2] = (_mean(df.renda), len(df))
    se = t[t.regiao == "Sudeste"]
    out[3] = (_mean(se.renda), len(se))
    with_renda = t[t.renda.notna()]
    by_state = with_renda.groupby("uf").renda.mean().reset_index().sort_values(["renda", "uf"])
    out[4] = (by_state.iloc[0].uf, len(with_renda))
    with_anos = t[t.anosesco.notna()]
    by_state = with_anos.groupby("uf").anosesco.mean().reset_index()
    by_state = by_state.sort_values(["anosesco", "uf"], ascending=[False, True])
    out[5] = (by_state.iloc[0].uf, len(with_anos))
    men_mt = t[(t.sexo == "Homem") & (t.uf == "Mato Grosso")]
    out[6] = (_mean(men_mt.anosesco) if len(men_mt) else None, len(men_mt))
    pr = t[(t.sexo == "Mulher") & (t.uf == "Paraná") & t.idade.between(25, 30)]
    out[7] = (_mean(pr.anosesco), len(pr))
    sul = t[(t.regiao == "Sul") & (t.trab == "Pessoas na força de trabalho") & t.idade.between(25, 35)]
    out[8] = (_mean(sul.renda), len(sul))
    mg = t[t.uf == "Minas Gerais"]
    out[9] = (float(mg.renda.sum()) / mesoregions_in("Minas Gerais"), len(mg))
    norte = t[
        (t.regiao == "Norte")
        & (t.sexo == "Mulher")
        & (t.graduacao == "Sim")
        & t.idade.between(25, 35)
        & t.cor.isin(["Preta", "Parda"])
    ]
    out[10] = (_mean(norte.renda), len(norte))
    return out


def assert_answers_match(got: list[dict[str, Any]], expected: dict[int, tuple[Any, int]]) -> None:
    """The pipeline's answer rows equal `answers(docs)`: ids, rows behind each, values (floats to 1e-9)."""
    assert [a["id"] for a in got] == list(range(1, 11))
    for a in got:
        want_value, want_rows = expected[a["id"]]
        assert a["rows"] == want_rows, f"Q{a['id']} rows"
        if isinstance(want_value, float):
            assert a["answer"] == pytest.approx(want_value, rel=1e-9), f"Q{a['id']}"
        else:
            assert a["answer"] == want_value, f"Q{a['id']}"
