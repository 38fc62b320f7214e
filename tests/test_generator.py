"""The PNAD-like generator: deterministic, prefix-stable, and shaped like the real collection."""

from __future__ import annotations

import json
import math
from collections import Counter
from typing import Any

import pytest

from flows.generator import CHUNK, generate
from tests.support.ibge_server import FIXTURES

N = 40_000


def docs(rows: int, seed: int = 20203, start: int = 0) -> list[dict[str, Any]]:
    return [d for chunk in generate(rows, seed, start=start) for d in chunk]


@pytest.fixture(scope="module")
def sample() -> list[dict[str, Any]]:
    return docs(N)


def missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def share(sample: list[dict[str, Any]], field: str) -> float:
    return sum(1 for d in sample if not missing(d.get(field))) / len(sample)


def test_same_seed_same_documents_and_prefix_stable() -> None:
    a, b = docs(2_500), docs(2_500)
    assert [d["_id"] for d in a] == [d["_id"] for d in b]
    assert json.dumps(a, default=str) == json.dumps(b, default=str)
    longer = docs(CHUNK + 500)
    assert json.dumps(longer[:2_500], default=str) == json.dumps(a, default=str)
    assert json.dumps(docs(CHUNK + 500, start=CHUNK - 10), default=str) == json.dumps(
        longer[CHUNK - 10 :], default=str
    )
    assert json.dumps(docs(2_500, seed=1), default=str) != json.dumps(a, default=str)


def test_ids_are_unique_and_increase_in_generation_order(sample: list[dict[str, Any]]) -> None:
    ids = [d["_id"] for d in sample]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)


def test_value_domains(sample: list[dict[str, Any]]) -> None:
    meso = json.loads((FIXTURES / "mesorregioes.json").read_text())
    ibge_states = {m["UF"]["nome"] for m in meso}
    assert {d["uf"] for d in sample} == ibge_states  # all 27, spelt as IBGE spells them
    assert {d["sexo"] for d in sample} == {"Homem", "Mulher"}
    assert {d["ano"] for d in sample} == {2020} and {d["trimestre"] for d in sample} == {3}
    assert min(d["idade"] for d in sample) == 0 and max(d["idade"] for d in sample) <= 112
    assert {d["cor"] for d in sample} <= {"Parda", "Branca", "Preta", "Amarela", "Indígena", "Ignorado"}
    present = lambda f: {d[f] for d in sample if not missing(d.get(f))}  # noqa: E731
    assert present("graduacao") == {"Sim", "Não"}
    assert present("trab") == {"Pessoas na força de trabalho", "Pessoas fora da força de trabalho"}
    assert present("ocup") == {"Pessoas ocupadas", "Pessoas desocupadas"}
    assert all(0 <= v <= 310_000 for v in (d.get("renda") for d in sample) if not missing(v))
    assert all(0 <= v <= 120 for v in (d.get("horastrab") for d in sample) if not missing(v))
    assert all(0 <= v <= 16 for v in (d.get("anosesco") for d in sample) if not missing(v))


def test_missing_values_are_a_mix_of_null_nan_and_absent(sample: list[dict[str, Any]]) -> None:
    for field in ("graduacao", "trab", "ocup", "renda", "horastrab", "anosesco"):
        kinds = Counter(
            "absent" if field not in d else "null" if d[field] is None else "nan"
            for d in sample
            if missing(d.get(field))
        )
        assert set(kinds) == {"absent", "null", "nan"}, field


def test_rates_follow_the_real_collection(sample: list[dict[str, Any]]) -> None:
    """Facts of shared/fixtures/README.md (368,210 documents), within sampling tolerance."""
    target = [d for d in sample if d["sexo"] == "Mulher" and 20 <= d["idade"] <= 40]
    assert len(target) / N == pytest.approx(57_335 / 368_210, abs=0.01)
    assert share(sample, "trab") == pytest.approx(301_724 / 368_210, abs=0.02)
    assert share(sample, "ocup") == pytest.approx(160_168 / 368_210, abs=0.02)
    assert share(sample, "renda") == pytest.approx(132_967 / 368_210, abs=0.02)
    assert share(sample, "horastrab") == pytest.approx(138_209 / 368_210, abs=0.02)
    assert share(sample, "anosesco") == pytest.approx(347_091 / 368_210, abs=0.02)
    assert share(sample, "graduacao") == pytest.approx(13_869 / 368_210, abs=0.01)
    # Within the target public trab and anosesco are always there.
    assert share(target, "trab") == 1.0 and share(target, "anosesco") == 1.0
    assert share(target, "renda") == pytest.approx(26_792 / 57_335, abs=0.03)
    rendas = sorted(d["renda"] for d in sample if not missing(d.get("renda")))
    assert sum(rendas) / len(rendas) == pytest.approx(2_158.9, rel=0.08)
    assert rendas[len(rendas) // 2] == pytest.approx(1_300, rel=0.08)
    anos = [d["anosesco"] for d in sample if not missing(d.get("anosesco"))]
    assert sum(anos) / len(anos) == pytest.approx(8.5, abs=0.5)


def test_states_in_realistic_proportions(sample: list[dict[str, Any]]) -> None:
    counts = Counter(d["uf"] for d in sample).most_common()
    assert counts[0][0] == "São Paulo" and counts[0][1] / N == pytest.approx(0.21, abs=0.02)
    assert counts[-1][0] in {"Roraima", "Amapá", "Acre"}


def test_more_documents_than_the_ids_can_number_are_refused_before_any_is_made() -> None:
    """The `_id`s number the documents in an ObjectId's 3-byte counter: past 16,777,216 they failed with an
    OverflowError in the middle of seeding."""
    with pytest.raises(ValueError, match="at most 16,777,216 documents can be generated, not 16,777,217"):
        next(generate(2**24 + 1))
    (last,) = next(generate(2**24, start=2**24 - 1))  # the bound itself: its last document is numbered
    assert str(last["_id"]).endswith("ffffff")
    with pytest.raises(ValueError, match="a seed is 0 or more, not -1"):
        next(generate(1, -1))
