"""The ten question SQL files on DuckDB over a small hand-made consumer zone, against plain Python.

The rows are chosen to sit on the edges the questions care about: inclusive age bounds, ties broken by
name, missing incomes, a mesoregion count that only the dimension knows (3 for Minas Gerais here, not 12),
and no men at all.
"""

from __future__ import annotations

from pathlib import Path
from statistics import mean
from typing import Any

import duckdb
import pyarrow as pa
import pytest

from flows.answers import answer_all
from flows.catalog import table_specs
from flows.engines.duckdb_engine import DUCKDB_TYPES, DuckDBEngine
from flows.lake import Lake
from flows.settings import Settings
from flows.spark.schemas import DIMENSIONS, PUBLICO_ALVO
from flows.table_schemas import TYPES
from tests.support.cloud_lake import commit_parquet

REGIONS = {"N": "Norte", "NE": "Nordeste", "SE": "Sudeste", "S": "Sul", "CO": "Centro-Oeste"}
UFS = {  # sigla: (id, name, region sigla)
    "AM": (13, "Amazonas", "N"),
    "PA": (15, "Pará", "N"),
    "BA": (29, "Bahia", "NE"),
    "MG": (31, "Minas Gerais", "SE"),
    "SP": (35, "São Paulo", "SE"),
    "PR": (41, "Paraná", "S"),
    "RS": (43, "Rio Grande do Sul", "S"),
    "MT": (51, "Mato Grosso", "CO"),
    "DF": (53, "Distrito Federal", "CO"),
}
REGION_ID = {"N": 1, "NE": 2, "SE": 3, "S": 4, "CO": 5}
MESO = [("MG", 3101, "Noroeste de Minas"), ("MG", 3102, "Norte de Minas"), ("MG", 3103, "Jequitinhonha")]
MESO += [("PR", 4101, "Noroeste Paranaense"), ("PR", 4102, "Centro Ocidental Paranaense")]
IN, OUT = "Pessoas na força de trabalho", "Pessoas fora da força de trabalho"

# uf, idade, renda, anosesco, trab, graduacao, cor
PEOPLE = [
    ("DF", 30, 1000.0, 10.0, IN, None, "Branca"),
    ("DF", 22, None, 12.0, OUT, None, "Parda"),
    ("MG", 25, 3000.0, 8.0, IN, "Sim", "Parda"),
    ("MG", 40, 600.5, 9.0, OUT, None, "Preta"),
    ("MG", 33, None, 11.0, IN, None, "Branca"),
    ("SP", 20, 2000.0, 11.0, IN, "Não", "Branca"),
    ("PR", 24, 1500.0, 9.0, IN, None, "Branca"),  # Q7: one year too young
    ("PR", 25, 2500.0, 14.0, IN, None, "Branca"),  # Q7: lower bound, included
    ("PR", 30, None, 10.0, OUT, None, "Parda"),  # Q7: upper bound, included
    ("PR", 31, 900.0, 7.0, IN, None, "Preta"),  # Q7: one year too old
    ("PR", 36, 3100.0, 12.0, IN, None, "Branca"),  # Q8: too old
    ("RS", 35, 1800.0, 13.0, IN, None, "Branca"),  # Q8: upper bound, included
    ("RS", 25, 2200.0, 8.0, IN, None, "Parda"),  # Q8: lower bound, included
    ("RS", 30, 9000.0, 8.0, OUT, None, "Branca"),  # Q8: out of the labour force
    ("AM", 28, 5000.0, 16.0, IN, "Sim", "Parda"),  # Q10: included
    ("PA", 35, 3000.0, 15.0, IN, "Sim", "Preta"),  # Q10: included (upper bound)
    ("PA", 30, 9999.0, 16.0, IN, "Sim", "Branca"),  # Q10: colour excluded
    ("AM", 30, 7777.0, 16.0, IN, "Não", "Parda"),  # Q10: no degree
    ("AM", 36, 8888.0, 16.0, IN, "Sim", "Parda"),  # Q10: too old
    ("AM", 24, None, 16.0, IN, "Sim", "Preta"),  # Q10: too young, no income
    ("BA", 29, 450.0, 6.0, IN, None, "Parda"),  # BA and MT tie for the lowest average income
    ("MT", 31, 450.0, 6.0, OUT, None, "Preta"),
]


def _publico_alvo() -> pa.Table:
    rows = []
    for i, (uf, idade, renda, anos, trab, grad, cor) in enumerate(PEOPLE):
        uf_id, uf_name, reg = UFS[uf]
        rows.append(
            {
                "_id": f"{i:024x}",
                "ano": 2020,
                "trimestre": 3,
                "uf": uf_name,
                "sexo": "Mulher",
                "idade": idade,
                "cor": cor,
                "graduacao": grad,
                "trab": trab,
                "ocup": None,
                "renda": renda,
                "horastrab": None,
                "anosesco": anos,
                "ingestion_date": "2026-11-25",
                "uf_id": uf_id,
                "uf_sigla": uf,
                "regiao_id": REGION_ID[reg],
                "regiao_sigla": reg,
                "regiao_nome": REGIONS[reg],
            }
        )
    return _table(rows, PUBLICO_ALVO)


def _table(rows: list[dict[str, Any]], spark_schema: Any) -> pa.Table:
    types = {"IntegerType()": pa.int32(), "DoubleType()": pa.float64(), "StringType()": pa.string()}
    schema = pa.schema([(f.name, types[repr(f.dataType)]) for f in spark_schema.fields])
    return pa.Table.from_pylist(rows, schema=schema)


def _region(sigla: str) -> dict[str, Any]:
    return {"regiao_id": REGION_ID[sigla], "regiao_sigla": sigla, "regiao_nome": REGIONS[sigla]}


def _uf(sigla: str) -> dict[str, Any]:
    uf_id, name, reg = UFS[sigla]
    return {"uf_id": uf_id, "uf_sigla": sigla, "uf_nome": name, **_region(reg)}


@pytest.fixture
def consumer(tmp_path: Path) -> Lake:
    lake = Lake(Settings(lake_root=str(tmp_path / "lake")))
    commit_parquet(lake, "publico_alvo", _publico_alvo(), ("regiao_sigla", "uf_sigla"))
    commit_parquet(lake, "regioes", _table([_region(r) for r in REGIONS], DIMENSIONS["regioes"]))
    commit_parquet(lake, "ufs", _table([_uf(u) for u in UFS], DIMENSIONS["ufs"]))
    meso = [{"mesorregiao_id": i, "mesorregiao_nome": n, **_uf(u)} for u, i, n in MESO]
    commit_parquet(lake, "mesorregioes", _table(meso, DIMENSIONS["mesorregioes"]))
    micro = [
        {"microrregiao_id": i * 100 + 1, "microrregiao_nome": f"Micro {n}", "mesorregiao_id": i,
         "mesorregiao_nome": n, **_uf(u)}
        for u, i, n in MESO
    ]  # fmt: skip
    commit_parquet(lake, "microrregioes", _table(micro, DIMENSIONS["microrregioes"]))
    return lake


def _people() -> list[dict[str, Any]]:
    keys = ("uf", "idade", "renda", "anosesco", "trab", "graduacao", "cor")
    out = []
    for p in PEOPLE:
        d = dict(zip(keys, p, strict=True))
        d["regiao"] = REGIONS[UFS[d["uf"]][2]]
        d["uf_name"] = UFS[d["uf"]][1]
        out.append(d)
    return out


def _avg(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return mean(present) if present else None


def expected() -> dict[int, tuple[Any, int]]:
    """The ten answers computed in plain Python from PEOPLE, MESO and UFS."""
    people = _people()

    def where(pred: Any) -> list[dict[str, Any]]:
        return [p for p in people if pred(p)]

    def by_state(field: str) -> dict[str, float]:
        states = {p["uf_name"] for p in people if p[field] is not None}
        return {
            s: mean(p[field] for p in people if p["uf_name"] == s and p[field] is not None) for s in states
        }

    income, schooling = by_state("renda"), by_state("anosesco")
    lowest = sorted(income.items(), key=lambda kv: (kv[1], kv[0]))[0][0]
    highest = sorted(schooling.items(), key=lambda kv: (-kv[1], kv[0]))[0][0]
    q = {
        1: where(lambda p: True),
        2: where(lambda p: p["uf_name"] == "Distrito Federal"),
        3: where(lambda p: p["regiao"] == "Sudeste"),
        6: [],  # no men in the consumer zone
        7: where(lambda p: p["uf_name"] == "Paraná" and 25 <= p["idade"] <= 30),
        8: where(lambda p: p["regiao"] == "Sul" and p["trab"] == IN and 25 <= p["idade"] <= 35),
        9: where(lambda p: p["uf_name"] == "Minas Gerais"),
        10: where(
            lambda p: (
                p["regiao"] == "Norte"
                and p["graduacao"] == "Sim"
                and 25 <= p["idade"] <= 35
                and p["cor"] in ("Preta", "Parda")
            )
        ),
    }
    mg_meso = sum(1 for u, _, _ in MESO if u == "MG")
    return {
        1: (_avg([p["renda"] for p in q[1]]), len(q[1])),
        2: (_avg([p["renda"] for p in q[2]]), len(q[2])),
        3: (_avg([p["renda"] for p in q[3]]), len(q[3])),
        4: (lowest, sum(1 for p in people if p["renda"] is not None)),
        5: (highest, sum(1 for p in people if p["anosesco"] is not None)),
        6: (None, 0),
        7: (_avg([p["anosesco"] for p in q[7]]), len(q[7])),
        8: (_avg([p["renda"] for p in q[8]]), len(q[8])),
        9: (sum(p["renda"] for p in q[9] if p["renda"] is not None) / mg_meso, len(q[9])),
        10: (_avg([p["renda"] for p in q[10]]), len(q[10])),
    }


def test_the_ten_questions_on_duckdb_match_plain_python(consumer: Lake) -> None:
    engine = DuckDBEngine(consumer)
    try:
        engine.register_consumer()
        got = {a.id: a for a in answer_all(engine)}
    finally:
        engine.close()
    want = expected()
    for qid, (value, rows) in want.items():
        assert got[qid].rows == rows, f"Q{qid} rows"
        if isinstance(value, float):
            assert got[qid].answer == pytest.approx(value, rel=1e-12), f"Q{qid}"
        else:
            assert got[qid].answer == value, f"Q{qid}"


def test_the_edges_are_really_in_the_data() -> None:
    """Guards the fixture itself: each edge case above is present, so the comparison means something."""
    want = expected()
    assert want[4][0] == "Bahia"  # tie with Mato Grosso at 450.0, broken by name
    assert want[7][1] == 2 and want[8][1] == 4 and want[10][1] == 2
    assert want[9][0] == pytest.approx((3000.0 + 600.5) / 3)  # three MG mesoregions in this dimension
    assert want[6] == (None, 0)


def test_a_target_public_of_no_one_is_an_empty_table_of_the_same_columns(consumer: Lake) -> None:
    """A source with no one of the target public commits `publico_alvo` with no files (no rows, no
    partition folders): its view has the columns and types the files give, and each question finds no rows
    (the run answers "no data" instead of failing on columns it cannot resolve)."""
    engine = DuckDBEngine(consumer)
    try:
        engine.register_consumer()
        with_rows = engine.schema()["publico_alvo"]
        commit_parquet(consumer, "publico_alvo", _publico_alvo().slice(0, 0), ("regiao_sigla", "uf_sigla"))
        assert consumer.committed_files("consumer", "publico_alvo") == []
        assert engine.register_consumer()["publico_alvo"] == 0
        assert list(engine.schema()["publico_alvo"].items()) == list(with_rows.items())
        got = [(a.id, a.answer, a.rows) for a in answer_all(engine)]
    finally:
        engine.close()
    assert got == [(qid, None, 0) for qid in range(1, 11)]
    assert set(DUCKDB_TYPES) == TYPES  # every column type has its empty-view type


def test_the_views_expose_exactly_the_catalog_columns(consumer: Lake) -> None:
    """DuckDB's views and the Glue declarations show the same columns (no `run` from the lake folders)."""
    engine = DuckDBEngine(consumer)
    try:
        engine.register_consumer()
        views = engine.schema()
    finally:
        engine.close()
    for spec in table_specs(consumer):
        declared = [c.name for c in spec.columns] + [k.name for k in spec.partition_keys]
        assert sorted(views[spec.name]) == sorted(declared), spec.name


def test_questions_filter_places_on_the_partition_columns_so_athena_can_prune() -> None:
    # `uf`/`regiao_nome` hold the same facts as the partition columns `uf_sigla`/`regiao_sigla`, but only
    # a filter on a partition column lets Athena skip partitions (it bills the bytes it reads).
    import sqlglot
    from sqlglot import exp

    from flows.questions import questions
    from flows.spark.schemas import PUBLICO_ALVO_PARTITIONS

    name_twins = {"uf", "regiao_nome", "uf_nome"}
    pruned = []
    for q in questions():
        tree = sqlglot.parse_one(q.sql, read="trino")
        for where in tree.find_all(exp.Where):
            for pred in where.find_all(exp.EQ, exp.In):
                cols = {c.name for c in pred.find_all(exp.Column)}
                assert not cols & name_twins, f"Q{q.id} filters on a name column: {pred.sql()}"
                if cols & set(PUBLICO_ALVO_PARTITIONS):
                    pruned.append(q.id)
    assert sorted(set(pruned)) == [2, 3, 6, 7, 8, 9, 10]


def test_a_publish_that_fails_midway_leaves_every_view_as_it_was(consumer: Lake, tmp_path: Path) -> None:
    """The views of a database file change together: a publish that fails at one table (its committed file
    gone) leaves every view reading what it read before, not the tables before it on the newer runs (a
    reader then joined one run's people to another run's dimensions)."""
    database = tmp_path / "catalog.duckdb"
    engine = DuckDBEngine(consumer, database)
    try:
        before = engine.register_consumer()
        commit_parquet(consumer, "publico_alvo", _publico_alvo().slice(1), ("regiao_sigla", "uf_sigla"))
        commit_parquet(consumer, "regioes", _table([_region(r) for r in REGIONS], DIMENSIONS["regioes"]))
        for gone in consumer.committed_files("consumer", "regioes"):
            Path(gone).unlink()
        with pytest.raises(duckdb.IOException, match=r"part-00000\.parquet"):
            engine.register_consumer()
        # the same connection too: nothing of the failed publish is left in it
        assert engine.query("SELECT count(*) FROM publico_alvo")[1] == [(before["publico_alvo"],)]
    finally:
        engine.close()
    reader = duckdb.connect(str(database), read_only=True)
    try:
        counted = {t: reader.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in before}
    finally:
        reader.close()
    assert counted == before
