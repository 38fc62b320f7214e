"""Raw PNAD lines → typed records and quarantined rejects. Pure: DataFrames in, DataFrames out.

Input: one row per raw line with `value` (the JSON text), `ingestion_date`, `source_file` and `line_no`
(file order, so "the first copy of a duplicate" is well defined). Every input row comes out exactly once,
either valid or in quarantine with its reasons.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import reduce

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql.types import ArrayType, StringType

from flows.contract import DOMAINS, IDADE_RANGE, NUMBER_RANGES
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
# Every text the regular expressions above can match starts with one of these. A prefix test is a byte
# comparison, so the (costlier) regex only runs for the rare values that could match: same result, and
# the regex stays the single definition of what matches (Java's `$` also accepts a final line break).
_WRAPPED_PREFIX = '{"$number'
_NAN_PREFIX = '{"$numberDouble":"NaN"}'
_OID_PREFIX = '{"$oid":"'
_INT_MAX = 2**31 - 1
# Spark casts text to double with Java's parser, which also reads hexadecimal ("0x1p10" is 1024) and type
# suffixes ("30d" is 30). A number here is decimal notation only: text with any character but these is not
# one. `translate` deletes them; whatever is left disqualifies the text (no regex per value).
_DECIMAL_CHARS = "0123456789+-.eE"


def _is_nan(raw: Column) -> Column:
    return raw.startswith(_NAN_PREFIX) & raw.rlike(_NAN)


def _number_text(raw: Column) -> Column:
    """The number's text, unwrapped from extended JSON; null for missing (null, absent, NaN)."""
    wrapped = raw.startswith(_WRAPPED_PREFIX)
    return (
        F.when(raw.isNull() | _is_nan(raw), F.lit(None))
        .when(wrapped & raw.rlike(_WRAPPED_NUMBER), F.regexp_extract(raw, _WRAPPED_NUMBER, 1))
        .otherwise(F.trim(raw))
    )


def _decimal_double(text: Column) -> Column:
    """The double a decimal number's text denotes; null for anything else (hexadecimal, suffixes, words)."""
    return F.when(F.translate(text, _DECIMAL_CHARS, "") == "", text.try_cast("double"))


def _text(raw: Column) -> Column:
    """Trimmed text; "" and NaN mean missing (null)."""
    text = F.when(raw.isNull() | _is_nan(raw), F.lit(None)).otherwise(F.trim(raw))
    return F.when(text == "", F.lit(None)).otherwise(text)


def _object_as_text(text: Column) -> Column:
    """An object or array where text belongs: starts with [ or { and ends with ] or } (as the regex sees
    it); the regex runs only when the prefix test holds (And short-circuits), i.e. almost never."""
    return (text.startswith("[") | text.startswith("{")) & text.rlike(r"[\]}]$")


def _object_id(raw: Column) -> Column:
    """The 24 hex digits of {"$oid": "..."} as written (case kept), or null.

    Fast path for the canonical form (exactly the prefix, 24 hex digits, `"}`): no regex, same capture;
    anything else starting like an ObjectId goes through the regex itself.
    """
    digits = F.substring(raw, len(_OID_PREFIX) + 1, 24)
    canonical = (
        (F.length(raw) == len(_OID_PREFIX) + 24 + 2)
        & raw.startswith(_OID_PREFIX)
        & raw.endswith('"}')
        & F.unhex(digits).isNotNull()  # unhex is null unless every character is [0-9a-fA-F]
    )
    return F.when(canonical, digits).when(
        raw.startswith(_OID_PREFIX), F.nullif(F.regexp_extract(raw, _OID, 1), F.lit(""))
    )


def type_pnadc(lines: DataFrame, uf_names: Iterable[str]) -> DataFrame:
    """Every raw line typed, with the contract breaches of the line on its own (`reasons`, empty if none).

    Built as successive projections so each costly value (the parse, a field's text, its double) is
    computed once and then referenced as a column: written as one nested expression, Spark re-evaluated
    the same cast and regexes for every check that used them (CollapseProject keeps these projections
    apart because their values are referenced more than once).
    """
    numbers = (*INT_FIELDS, *DOUBLE_FIELDS)
    j = F.from_json("value", PNADC_RAW, {"mode": "PERMISSIVE", "columnNameOfCorruptRecord": CORRUPT})
    base = ["value", "ingestion_date", "source_file", "line_no"]
    parsed = lines.select(*base, j.alias("j"))
    unparseable = F.col("j").isNull() | F.col(f"j.{CORRUPT}").isNotNull()
    texts = parsed.select(
        *base,
        unparseable.alias("_unparseable"),
        F.when(~unparseable, _object_id(F.col("j._id"))).alias("_rid"),
        *[_number_text(F.col(f"j.{n}")).alias(f"_t_{n}") for n in numbers],
        *[_text(F.col(f"j.{n}")).alias(f"_t_{n}") for n in TEXT_FIELDS],
    )
    doubles = texts.select(
        *texts.columns, *[_decimal_double(F.col(f"_t_{n}")).alias(f"_d_{n}") for n in numbers]
    )

    bad_flags: dict[str, Column] = {}
    for name in numbers:
        text, as_double = F.col(f"_t_{name}"), F.col(f"_d_{name}")
        finite = as_double.isNotNull() & ~F.isnan(as_double) & (F.abs(as_double) < F.lit(float("inf")))
        if name in INT_FIELDS:
            in_range = finite & (F.abs(as_double) <= _INT_MAX)
            # floor() returns a long and fails the whole query (ANSI) on a double beyond one, and Spark
            # may evaluate it before the range test (common subexpressions are hoisted): floor only
            # what is in range, so no value can make it overflow.
            floored = F.floor(F.when(in_range, as_double).otherwise(F.lit(0.0)))
            integral = in_range & (as_double == floored)
            bad_flags[name] = text.isNotNull() & ~integral
        else:
            bad_flags[name] = text.isNotNull() & ~finite
    for name in TEXT_FIELDS:
        bad_flags[name] = F.coalesce(_object_as_text(F.col(f"_t_{name}")), F.lit(False))
    flagged = doubles.select(*doubles.columns, *[b.alias(f"_bad_{n}") for n, b in bad_flags.items()])

    cols: dict[str, Column] = {"_id": F.lower("_rid")}
    for name in (*numbers, *TEXT_FIELDS):
        bad = F.col(f"_bad_{name}")
        if name in INT_FIELDS:
            cols[name] = F.when(~bad, F.col(f"_d_{name}").cast("int"))
        elif name in DOUBLE_FIELDS:
            cols[name] = F.when(~bad, F.col(f"_d_{name}"))
        else:
            cols[name] = F.when(~bad, F.col(f"_t_{name}"))
    typed = flagged.select(
        *base,
        "_unparseable",
        "_rid",
        *[F.col(f"_bad_{n}") for n in bad_flags],
        *[c.alias(n) for n, c in cols.items()],
    )
    return typed.select(*base, *cols, _reasons(bad_flags, uf_names).alias("reasons"))


def _reasons(fields: Iterable[str], uf_names: Iterable[str]) -> Column:
    """The breaches of one line, in a fixed order: (condition, message) pairs, the message only where the
    condition holds. Most lines break nothing: for them the result is the empty array, without building
    and filtering an array of nulls per line."""
    ufs = sorted(set(uf_names))
    parseable = ~F.col("_unparseable")
    breaches: list[tuple[Column, Column]] = [
        (F.col("_unparseable"), F.lit("unparseable JSON")),
        (parseable & F.col("_rid").isNull(), F.lit("_id missing or not an ObjectId")),
    ]
    for name in fields:
        kind = "integer" if name in INT_FIELDS else "number" if name in DOUBLE_FIELDS else "text"
        breaches.append((parseable & F.col(f"_bad_{name}"), F.lit(f"{name}: not a lossless {kind}")))
    lo, hi = IDADE_RANGE
    idade = F.col("idade")
    breaches.append((idade.isNotNull() & ~idade.between(lo, hi), F.lit(f"idade outside {lo}-{hi}")))
    for name, (lo, hi) in NUMBER_RANGES.items():
        value = F.col(name)
        breaches.append((value.isNotNull() & ~value.between(lo, hi), F.lit(f"{name} outside {lo}-{hi}")))
    for name, domain in DOMAINS.items():
        value = F.col(name)
        breaches.append(
            (value.isNotNull() & ~value.isin(*domain), F.concat(F.lit(f"{name} not in domain: "), value))
        )
    uf = F.col("uf")
    breaches.append(
        (
            parseable & (uf.isNull() | ~uf.isin(*ufs)),
            F.concat(F.lit("uf not an IBGE state: "), F.coalesce(uf, F.lit("null"))),
        )
    )
    # Each message is non-null exactly where its condition is true, so "any condition true" is "any
    # message", and the compacted array equals the one built unconditionally.
    listed = F.array_compact(F.array(*[F.when(cond, message) for cond, message in breaches]))
    return F.when(reduce(Column.__or__, [cond for cond, _ in breaches]), listed).otherwise(
        F.array().cast(ArrayType(StringType()))
    )


def judge_pnadc(lines: DataFrame, uf_names: Iterable[str]) -> DataFrame:
    """Every raw line typed, with the list of contract breaches it commits (`reasons`, empty if none)."""
    return mark_duplicates(type_pnadc(lines, uf_names))


def mark_duplicates(typed: DataFrame) -> DataFrame:
    """The first copy of an _id (in file order) stays; later copies are quarantined as duplicates.

    Only the ids seen more than once travel to the join (an aggregate shuffles ids, not records), and that
    side is broadcast: the records themselves (raw line included) are never shuffled. Persist `typed`
    first when it is used more than once, or the aggregate re-parses the lines for the ids.
    """
    first = F.struct("source_file", "line_no")
    repeated = (
        typed.where(F.col("_id").isNotNull())
        .groupBy("_id")
        .agg(F.count(F.lit(1)).alias("_copies"), F.min(first).alias("_first"))
        .where("_copies > 1")
    )
    marked = typed.join(F.broadcast(repeated), on="_id", how="left")
    duplicate = F.col("_copies").isNotNull() & (first != F.col("_first"))
    return marked.select(
        *[c for c in typed.columns if c != "reasons"],
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
