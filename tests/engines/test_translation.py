"""Athena SQL on DuckDB: translated constructs keep Athena's meaning, divergent ones are refused.

Each expectation below is what Athena (Trino) returns, written down from Trino's documented semantics, not
obtained by running DuckDB: the test fails if sqlglot's translation (or the engine) changes a meaning.
"""

from __future__ import annotations

from typing import Any

import duckdb
import pytest

from flows.engines.duckdb_engine import (
    DialectDivergence,
    TranslationError,
    athena_to_duckdb,
)
from flows.questions import questions
from flows.spark.schemas import DIMENSIONS, PUBLICO_ALVO

# A table whose column types matter (integer division): DuckDB types as the engine reads them.
SCHEMA = {"t": {"i": "INTEGER", "b": "BIGINT", "d": "DOUBLE", "s": "VARCHAR"}}
ROWS = [(7, 2, 1.5, "Paraná"), (-7, 2, None, "Parana"), (None, 4, 2.5, "B"), (3, 3, 3.0, "a")]


@pytest.fixture(scope="module")
def con() -> Any:
    c = duckdb.connect()
    c.execute("CREATE TABLE t (i INTEGER, b BIGINT, d DOUBLE, s VARCHAR)")
    c.executemany("INSERT INTO t VALUES (?, ?, ?, ?)", ROWS)
    yield c
    c.close()


def run(con: Any, athena_sql: str) -> list[tuple[Any, ...]]:
    return con.execute(athena_to_duckdb(athena_sql, SCHEMA)).fetchall()


# (Athena SQL, what Athena returns)
SAME_MEANING = [
    # integer division truncates toward zero in Trino; DuckDB's `/` would give 3.5 and -3.5
    ("SELECT 7 / 2", [(3,)]),
    ("SELECT -7 / 2", [(-3,)]),
    ("SELECT i / b AS q FROM t WHERE i IS NOT NULL ORDER BY i", [(-3,), (1,), (3,)]),
    ("SELECT sum(i) / count(*) FROM t", [(0,)]),  # 3 / 4 with bigint operands: 0
    ("SELECT CAST(sum(i) AS DOUBLE) / count(*) FROM t", [(0.75,)]),
    ("SELECT d / 2 FROM t WHERE i = 7", [(0.75,)]),
    ("SELECT 7 % 3, -7 % 3", [(1, -1)]),
    # AVG ignores NULLs; over only NULLs (or no rows) it is NULL, never 0
    ("SELECT avg(d) FROM t", [(7.0 / 3,)]),
    ("SELECT avg(i) FROM t", [(1.0,)]),
    ("SELECT avg(d) FROM t WHERE i = -7", [(None,)]),
    ("SELECT avg(d), count(*) FROM t WHERE s = 'nobody'", [(None, 0)]),
    ("SELECT count(d), count(*) FROM t", [(3, 4)]),
    # strings compare by code point, case- and accent-sensitive; no trailing-space padding for varchar
    ("SELECT 'B' < 'a', 'Paraná' > 'Parana', 'a' = 'A', 'a' = 'a '", [(True, True, False, False)]),
    ("SELECT min(s), max(s) FROM t", [("B", "a")]),
    ("SELECT count(*) FROM t WHERE s = 'Paraná'", [(1,)]),
    ("SELECT count(*) FROM t WHERE s IN ('Parana', 'Paraná')", [(2,)]),
    # NULL never equals anything; NULLs sort last by default in both directions (Trino's default)
    ("SELECT count(*) FROM t WHERE i = NULL", [(0,)]),
    ("SELECT count(*) FROM t WHERE i <> 7", [(2,)]),
    ("SELECT i FROM t ORDER BY i DESC LIMIT 1", [(7,)]),
    ("SELECT i FROM t ORDER BY i ASC LIMIT 1", [(-7,)]),
    ("SELECT i FROM t ORDER BY i ASC", [(-7,), (3,), (7,), (None,)]),
    ("SELECT i FROM t ORDER BY i DESC", [(7,), (3,), (-7,), (None,)]),
    ("SELECT s FROM t ORDER BY d DESC, s ASC LIMIT 2", [("a",), ("B",)]),
    # BETWEEN is inclusive at both ends
    ("SELECT count(*) FROM t WHERE b BETWEEN 2 AND 3", [(3,)]),
    # concatenation with NULL is NULL in Trino (concat() too)
    ("SELECT 'x' || NULL, concat('x', NULL)", [(None, None)]),
    # a scalar subquery over an empty set is NULL
    ("SELECT (SELECT s FROM t WHERE i = 99 ORDER BY s LIMIT 1)", [(None,)]),
]


@pytest.mark.parametrize(("athena_sql", "expected"), SAME_MEANING, ids=[s for s, _ in SAME_MEANING])
def test_translated_construct_keeps_athena_meaning(con: Any, athena_sql: str, expected: list[Any]) -> None:
    got = run(con, athena_sql)
    assert len(got) == len(expected)
    for g, e in zip(got, expected, strict=True):
        assert g == pytest.approx(e) if any(isinstance(v, float) for v in e) else g == e


DIVERGENT = [
    "SELECT date_diff('month', DATE '2024-01-31', DATE '2024-02-29')",  # Athena 0, DuckDB 1
    "SELECT date_diff('year', DATE '2023-12-31', DATE '2024-01-01')",  # Athena 0, DuckDB 1
    "SELECT date_add('day', 1, DATE '2024-01-31')",  # Athena DATE, DuckDB TIMESTAMP
    "SELECT count(*) FROM t WHERE date_add('month', 1, DATE '2024-01-31') = DATE '2024-02-29'",
    "SELECT DATE '2024-01-31' + INTERVAL '1' DAY",  # Athena DATE, DuckDB TIMESTAMP
    "SELECT DATE '2024-01-31' - INTERVAL '1' MONTH",
]


@pytest.mark.parametrize("athena_sql", DIVERGENT)
def test_known_divergent_date_functions_are_refused(athena_sql: str) -> None:
    with pytest.raises(DialectDivergence, match="DuckDB would answer differently"):
        athena_to_duckdb(athena_sql, SCHEMA)


def test_a_question_using_date_diff_is_refused_naming_the_question() -> None:
    sql = (
        "-- question: Days between two dates.\n"
        "SELECT avg(date_diff('day', DATE '2024-01-01', DATE '2024-03-01')) AS answer, count(*) AS row_count "
        "FROM t"
    )
    with pytest.raises(DialectDivergence) as info:
        athena_to_duckdb(sql, SCHEMA)
    message = str(info.value)
    assert "'Days between two dates.'" in message and "date_diff" in message.lower()


def test_division_of_untyped_columns_is_refused() -> None:
    # Without the table's schema nobody knows whether `i / b` is an integer division in Athena.
    with pytest.raises(DialectDivergence, match="operand types are unknown"):
        athena_to_duckdb("SELECT i / b FROM t")
    # with a double on one side, it is a real division on both engines whatever the other side is
    assert athena_to_duckdb("SELECT i / CAST(b AS DOUBLE) FROM t")


def test_a_column_the_tables_do_not_have_is_a_translation_error() -> None:
    with pytest.raises(TranslationError, match="does not fit the consumer tables"):
        athena_to_duckdb("SELECT avg(salary) AS answer FROM t", SCHEMA)


def _duckdb_type(spark_type: Any) -> str:
    return {"IntegerType()": "INTEGER", "DoubleType()": "DOUBLE", "StringType()": "VARCHAR"}[repr(spark_type)]


def consumer_schema() -> dict[str, dict[str, str]]:
    tables = {"publico_alvo": PUBLICO_ALVO, **DIMENSIONS}
    return {t: {f.name: _duckdb_type(f.dataType) for f in s.fields} for t, s in tables.items()}


@pytest.mark.parametrize("question", questions(), ids=lambda q: q.slug)
def test_every_question_translates_under_the_guard(question: Any) -> None:
    sql = athena_to_duckdb(question.sql, consumer_schema())
    assert sql.strip()
    # the answer columns keep their names
    assert " AS answer" in sql and " AS row_count" in sql
