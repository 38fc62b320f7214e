"""Raw PNAD lines → typed records and quarantined rejects. Pure: DataFrames in, DataFrames out.

Input: one row per raw line with `value` (the JSON text), `ingestion_date`, `source_file` and `line_no`
(file order, so "the first copy of a duplicate" is well defined). Every input row comes out exactly once,
either valid or in quarantine with its reasons.
"""

from __future__ import annotations

from collections.abc import Iterable

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from flows.contract import DOMAINS, IDADE_RANGE
from flows.spark.schemas import (
    CORRUPT,
    DOUBLE_FIELDS,
    INT_FIELDS,
    PNADC,
    PNADC_RAW,
    QUARANTINE,
    TEXT_FIELDS,
)

# Extended JSON wrappers a number may come in ({"$numberDouble": "12.5"}, {"$numberLong": "7"}, ...).
_WRAPPED_NUMBER = r'^\{"\$number(?:Int|Long|Double|Decimal)":"([^"]*)"\}$'
_NAN = r'^\{"\$numberDouble":"NaN"\}$'
_OID = r'^\{"\$oid":"([0-9a-fA-F]{24})"\}$'


def _number_text(raw: Column) -> Column:
    """The number's text, unwrapped from extended JSON; null for missing (null, absent, NaN)."""
    return (
        F.when(raw.isNull() | raw.rlike(_NAN), F.lit(None))
        .when(raw.rlike(_WRAPPED_NUMBER), F.regexp_extract(raw, _WRAPPED_NUMBER, 1))
        .otherwise(F.trim(raw))
    )


def _typed(name: str, raw: Column) -> tuple[Column, Column]:
    """(typed value, bad-type flag) for one field; a value is accepted only if read without loss."""
    if name in INT_FIELDS or name in DOUBLE_FIELDS:
        text = _number_text(raw)
        as_double = text.try_cast("double")
        finite = as_double.isNotNull() & ~F.isnan(as_double) & (F.abs(as_double) < F.lit(float("inf")))
        if name in INT_FIELDS:
            integral = finite & (as_double == F.floor(as_double)) & (F.abs(as_double) <= 2**31 - 1)
            bad = text.isNotNull() & ~integral
            return F.when(~bad, as_double.cast("int")), bad
        bad = text.isNotNull() & ~finite
        return F.when(~bad, as_double), bad
    # Text: trimmed; "" and NaN mean missing; an object or array where text belongs is a wrong type.
    text = F.when(raw.isNull() | raw.rlike(_NAN), F.lit(None)).otherwise(F.trim(raw))
    text = F.when(text == "", F.lit(None)).otherwise(text)
    bad = text.rlike(r"^[\[{]") & text.rlike(r"[\]}]$")
    return F.when(~bad, text), F.coalesce(bad, F.lit(False))


def judge_pnadc(lines: DataFrame, uf_names: Iterable[str]) -> DataFrame:
    """Every raw line typed, with the list of contract breaches it commits (`reasons`, empty if none)."""
    ufs = sorted(set(uf_names))
    j = F.from_json("value", PNADC_RAW, {"mode": "PERMISSIVE", "columnNameOfCorruptRecord": CORRUPT})
    parsed = lines.withColumn("j", j)
    unparseable = parsed["j"].isNull() | parsed[f"j.{CORRUPT}"].isNotNull()
    record_id = F.when(unparseable, F.lit(None)).otherwise(
        F.nullif(F.regexp_extract(F.col("j._id"), _OID, 1), F.lit(""))
    )
    cols: dict[str, Column] = {"_id": F.lower(record_id)}
    type_reasons: list[Column] = [
        F.when(unparseable, F.lit("unparseable JSON")),
        F.when(~unparseable & record_id.isNull(), F.lit("_id missing or not an ObjectId")),
    ]
    for name in (*INT_FIELDS, *DOUBLE_FIELDS, *TEXT_FIELDS):
        value, bad = _typed(name, F.col(f"j.{name}"))
        cols[name] = value
        kind = "integer" if name in INT_FIELDS else "number" if name in DOUBLE_FIELDS else "text"
        type_reasons.append(F.when(~unparseable & bad, F.lit(f"{name}: not a lossless {kind}")))
    # The parsed struct stops here: what follows (and the duplicate check's shuffle) sees typed columns only.
    typed = parsed.select(
        "value",
        "ingestion_date",
        "source_file",
        "line_no",
        unparseable.alias("_unparseable"),
        *[c.alias(n) for n, c in cols.items()],
        F.array(*type_reasons).alias("_type_reasons"),
    )

    lo, hi = IDADE_RANGE
    value_reasons = [
        F.when(
            F.col("idade").isNotNull() & ~F.col("idade").between(lo, hi), F.lit(f"idade outside {lo}-{hi}")
        )
    ]
    for name, domain in DOMAINS.items():
        value_reasons.append(
            F.when(
                F.col(name).isNotNull() & ~F.col(name).isin(*domain),
                F.concat(F.lit(f"{name} not in domain: "), F.col(name)),
            )
        )
    value_reasons.append(
        F.when(
            ~F.col("_unparseable") & (F.col("uf").isNull() | ~F.col("uf").isin(*ufs)),
            F.concat(F.lit("uf not an IBGE state: "), F.coalesce(F.col("uf"), F.lit("null"))),
        )
    )
    judged = typed.select(
        *[c for c in typed.columns if not c.startswith("_") or c == "_id"],
        F.array_compact(F.concat("_type_reasons", F.array(*value_reasons))).alias("reasons"),
    )
    return _mark_duplicates(judged)


def _mark_duplicates(judged: DataFrame) -> DataFrame:
    """The first copy of an _id (in file order) stays; later copies are quarantined as duplicates.

    Only the ids seen more than once travel to the join (an aggregate shuffles ids, not records), so a
    batch without duplicates pays for one small aggregation instead of sorting every record by `_id`.
    """
    first = F.struct("source_file", "line_no")
    repeated = (
        judged.where(F.col("_id").isNotNull())
        .groupBy("_id")
        .agg(F.count(F.lit(1)).alias("_copies"), F.min(first).alias("_first"))
        .where("_copies > 1")
    )
    marked = judged.join(repeated, on="_id", how="left")
    duplicate = F.col("_copies").isNotNull() & (first != F.col("_first"))
    return marked.select(
        *[c for c in judged.columns if c != "reasons"],
        F.when(duplicate, F.array_append("reasons", F.lit("duplicate _id")))
        .otherwise(F.col("reasons"))
        .alias("reasons"),
    )


def split_judged(judged: DataFrame) -> tuple[DataFrame, DataFrame]:
    """(valid records, quarantine) with their explicit schemas."""
    valid = judged.where(F.size("reasons") == 0).select(*[F.col(f.name) for f in PNADC.fields])
    quarantine = judged.where(F.size("reasons") > 0).select(
        F.lit("pnadc").alias("source"),
        F.col("_id").alias("record_id"),
        F.array_join("reasons", "; ").alias("reason"),
        F.col("value").alias("raw_record"),
        "ingestion_date",
        "source_file",
    )
    return valid, quarantine.select(*[F.col(f.name) for f in QUARANTINE.fields])


def clean_pnadc(lines: DataFrame, uf_names: Iterable[str]) -> tuple[DataFrame, DataFrame]:
    """Split raw lines into (valid typed records, quarantine)."""
    return split_judged(judge_pnadc(lines, uf_names))
