"""Deterministic PNAD-Contínua-like documents, shaped like MongoDB `ibge.pnadc20203`.

Facts (fields, domains, presence rates) follow `shared/fixtures/README.md`. Documents come in fixed-size
chunks, each with its own RNG stream, so the first N documents are the same whatever the total: a run at
20k rows is a prefix of a run at 2M.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import numpy as np
from bson import ObjectId

from flows.settings import MAX_SEED_ROWS

CHUNK = 10_000

# The 27 UFs as IBGE spells them, weighted by their share of Brazil's population (PNAD samples follow it).
UF_WEIGHTS: dict[str, float] = {
    "São Paulo": 21.9,
    "Minas Gerais": 10.1,
    "Rio de Janeiro": 8.2,
    "Bahia": 7.0,
    "Paraná": 5.5,
    "Rio Grande do Sul": 5.4,
    "Pernambuco": 4.5,
    "Ceará": 4.3,
    "Pará": 4.1,
    "Santa Catarina": 3.4,
    "Maranhão": 3.4,
    "Goiás": 3.4,
    "Amazonas": 2.0,
    "Espírito Santo": 1.9,
    "Paraíba": 1.9,
    "Rio Grande do Norte": 1.7,
    "Mato Grosso": 1.7,
    "Alagoas": 1.6,
    "Piauí": 1.5,
    "Distrito Federal": 1.4,
    "Mato Grosso do Sul": 1.3,
    "Sergipe": 1.1,
    "Rondônia": 0.9,
    "Tocantins": 0.8,
    "Acre": 0.4,
    "Amapá": 0.4,
    "Roraima": 0.3,
}
COR = ["Parda", "Branca", "Preta", "Amarela", "Indígena", "Ignorado"]
COR_P = [0.465, 0.425, 0.09, 0.01, 0.006, 0.004]
TRAB_IN, TRAB_OUT = "Pessoas na força de trabalho", "Pessoas fora da força de trabalho"
OCUP_YES, OCUP_NO = "Pessoas ocupadas", "Pessoas desocupadas"
# Median 1,300 and mean ~2,159 (fixtures README): lognormal with mu=ln(1300), sigma from mean/median.
RENDA_MU = math.log(1300.0)
RENDA_SIGMA = math.sqrt(2 * math.log(2158.9 / 1300.0))

_UFS = list(UF_WEIGHTS)
_UF_P = np.array(list(UF_WEIGHTS.values())) / sum(UF_WEIGHTS.values())
# Ages: children, the 20-40 band, working age and elderly, so women 20-40 are ~15.6% of all (57,335/368,210).
_AGE_BANDS = [(0, 19, 0.27), (20, 40, 0.30), (41, 64, 0.31), (65, 112, 0.12)]
_MISSING_KINDS = np.array(["null", "nan", "absent"])
_OID_PREFIX = bytes.fromhex("600ce069")  # the real collection's ObjectId timestamp


def object_id(seed: int, index: int) -> ObjectId:
    """A deterministic ObjectId, increasing with `index` (keyset paging on _id follows generation order)."""
    machine = (seed & 0xFFFFFFFFFF).to_bytes(5, "big")
    return ObjectId(_OID_PREFIX + machine + index.to_bytes(3, "big"))


def _ages(rng: np.random.Generator, n: int) -> np.ndarray:
    band = rng.choice(len(_AGE_BANDS), size=n, p=[b[2] for b in _AGE_BANDS])
    lo = np.array([b[0] for b in _AGE_BANDS])[band]
    hi = np.array([b[1] for b in _AGE_BANDS])[band]
    # Elderly ages thin out towards 112 instead of being uniform.
    u = rng.random(n)
    u = np.where(band == 3, u**2.2, u)
    return (lo + np.floor(u * (hi - lo + 1))).astype(int)


def _chunk(seed: int, chunk_index: int, lo: int, hi: int) -> list[dict[str, Any]]:
    """Documents lo..hi-1 of a chunk. Every draw is for the whole chunk, so they never depend on lo/hi."""
    n = CHUNK
    rng = np.random.default_rng([seed, chunk_index])
    uf = rng.choice(len(_UFS), size=n, p=_UF_P)
    mulher = rng.random(n) < 0.52
    idade = _ages(rng, n)
    cor = rng.choice(len(COR), size=n, p=COR_P)
    target = mulher & (idade >= 20) & (idade <= 40)
    adult = idade >= 18

    # graduacao: 13,869 present overall, 5,995 of 57,335 in the target public.
    grad_present = adult & (rng.random(n) < np.where(target, 0.1046, 0.026))
    grad_sim = rng.random(n) < 0.62
    # trab: present from age 14 (missing for children); labour-force share by age and sex.
    trab_present = idade >= 14
    in_force_p = np.where(target, 0.607, np.where((idade >= 18) & (idade <= 64), 0.64, 0.18))
    in_force = trab_present & (rng.random(n) < in_force_p)
    ocupada = in_force & (rng.random(n) < 0.86)
    renda_present = ocupada & (rng.random(n) < np.where(target, 0.9, 0.95))
    renda = np.clip(np.round(rng.lognormal(RENDA_MU, RENDA_SIGMA, n), -1), 0, 310_000)
    renda = np.where(rng.random(n) < 0.01, 0.0, renda)  # a few zero incomes, as in the survey
    horas_present = ocupada & (rng.random(n) < 0.985)
    horas = np.clip(np.round(rng.normal(40, 11, n)), 0, 120)
    anos_present = (idade >= 4) | target
    anos = np.clip(np.round(rng.normal(np.where(idade < 15, idade - 6, 9.2), 3.8)), 0, 16)
    missing_kind = rng.choice(_MISSING_KINDS, size=(n, 7))

    start = chunk_index * CHUNK
    docs: list[dict[str, Any]] = []
    for i in range(lo, hi):
        doc: dict[str, Any] = {
            "_id": object_id(seed, start + i),
            "ano": 2020,
            "trimestre": 3,
            "uf": _UFS[uf[i]],
            "sexo": "Mulher" if mulher[i] else "Homem",
            "idade": int(idade[i]),
            "cor": COR[cor[i]],
        }
        optional = (
            ("graduacao", ("Sim" if grad_sim[i] else "Não") if grad_present[i] else None),
            ("trab", (TRAB_IN if in_force[i] else TRAB_OUT) if trab_present[i] else None),
            ("ocup", (OCUP_YES if ocupada[i] else OCUP_NO) if in_force[i] else None),
            ("renda", float(renda[i]) if renda_present[i] else None),
            ("horastrab", float(horas[i]) if horas_present[i] else None),
            ("anosesco", float(anos[i]) if anos_present[i] else None),
        )
        for k, (field, value) in enumerate(optional):
            if value is not None:
                doc[field] = value
            elif missing_kind[i, k] == "null":
                doc[field] = None
            elif missing_kind[i, k] == "nan":
                doc[field] = float("nan")
            # "absent": the field is left out of the document
        docs.append(doc)
    return docs


def generate(rows: int, seed: int = 20203, *, start: int = 0) -> Iterator[list[dict[str, Any]]]:
    """Yield documents `start`..`rows-1` in chunks of at most CHUNK, in `_id` order."""
    if rows < 0 or start < 0:
        raise ValueError("rows and start must be >= 0")
    if seed < 0:  # numpy's own message names no seed ("expected non-negative integer")
        raise ValueError(f"a seed is 0 or more, not {seed}")
    if rows > MAX_SEED_ROWS:  # object_id numbers them in 3 bytes
        raise ValueError(f"at most {MAX_SEED_ROWS:,} documents can be generated, not {rows:,}")
    index = start
    while index < rows:
        chunk_index, offset = divmod(index, CHUNK)
        docs = _chunk(seed, chunk_index, offset, min(CHUNK, rows - chunk_index * CHUNK))
        yield docs
        index += len(docs)
