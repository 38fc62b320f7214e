"""Raw PNAD lines → typed records and quarantined rejects. Pure: DataFrames in, DataFrames out.

Input: a row per raw line, `ingestion_date`, `source_file`, `line_no` (file order: "the first copy of a
duplicate" is well defined) and `value` (the JSON text), or the line's fields as Spark's JSON reader parsed
them (spark/io.py `read_raw_records`: cheaper than `from_json`; no fingerprint then). Every row comes out
once: valid, or in quarantine with its reasons.

The raw line does not travel with the typed records: (`source_file`, `line_no`) names it, a fingerprint
(`line_hash`) checks it, and `with_raw_lines` brings it back for the quarantined records only. Carried
through every projection, the cache and the duplicate check, the line was the most copied value of the
step (docs/spark-performance.md). It travels (`keep_line`) only where lines are typed again to find the
rejected records' (transforms/pnadc_rejected.py): a few blocks of them, or all past half.
"""

from __future__ import annotations

from collections.abc import Iterable

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

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
_CLOSED_END = r"[\]}]$"  # ends with ] or }
_INT_MAX = 2**31 - 1
LINE_HASH = "line_hash"
# Spark casts text to double with Java's parser, which also reads hexadecimal ("0x1p10" is 1024) and type
# suffixes ("30d" is 30). A number here is decimal notation only: text with any character but these is not
# one. `translate` deletes them; whatever is left disqualifies the text (no regex per value).
_DECIMAL_CHARS = "0123456789+-.eE"


def _sql(value: str) -> str:
    """A SQL string literal holding exactly `value` (Spark unescapes backslashes in literals)."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _is_nan(raw: str) -> str:
    return f"(startswith({raw}, {_sql(_NAN_PREFIX)}) AND {raw} RLIKE {_sql(_NAN)})"


def _number_text(raw: str) -> str:
    """The number's text, unwrapped from extended JSON; null for missing (null, absent, NaN)."""
    wrapped = _sql(_WRAPPED_NUMBER)
    return (
        f"CASE WHEN {raw} IS NULL OR {_is_nan(raw)} THEN NULL"
        f" WHEN startswith({raw}, {_sql(_WRAPPED_PREFIX)}) AND {raw} RLIKE {wrapped}"
        f" THEN regexp_extract({raw}, {wrapped}, 1) ELSE trim({raw}) END"
    )


def _decimal_double(text: str) -> str:
    """The double a decimal number's text denotes; null for anything else (hexadecimal, suffixes, words)."""
    return f"CASE WHEN translate({text}, {_sql(_DECIMAL_CHARS)}, '') = '' THEN try_cast({text} AS DOUBLE) END"


def _text(raw: str) -> str:
    """Trimmed text; "" and NaN mean missing (null)."""
    return f"CASE WHEN {raw} IS NULL OR {_is_nan(raw)} THEN NULL ELSE nullif(trim({raw}), '') END"


def _object_as_text(text: str) -> str:
    """An object or array where text belongs: starts with [ or { and ends with ] or } (as the regex sees
    it); the regex runs only when the prefix test holds (AND short-circuits), i.e. almost never."""
    return f"((startswith({text}, '[') OR startswith({text}, '{{')) AND {text} RLIKE {_sql(_CLOSED_END)})"


def _object_id(raw: str) -> str:
    """The 24 hex digits of {"$oid": "..."} as written (case kept), or null.

    Fast path for the canonical form (exactly the prefix, 24 hex digits, `"}`): no regex, same capture;
    anything else starting like an ObjectId goes through the regex itself.
    """
    prefix = _sql(_OID_PREFIX)
    digits = f"substring({raw}, {len(_OID_PREFIX) + 1}, 24)"
    canonical = (
        f"length({raw}) = {len(_OID_PREFIX) + 24 + 2} AND startswith({raw}, {prefix})"
        f" AND endswith({raw}, '\"}}')"
        f" AND unhex({digits}) IS NOT NULL"  # unhex is null unless every character is [0-9a-fA-F]
    )
    return (
        f"CASE WHEN {canonical} THEN {digits}"
        f" WHEN startswith({raw}, {prefix}) THEN nullif(regexp_extract({raw}, {_sql(_OID)}, 1), '') END"
    )


def type_pnadc(lines: DataFrame, uf_names: Iterable[str], *, keep_line: bool = False) -> DataFrame:
    """Every raw line (or parsed record: module docstring) typed, with the contract breaches of the line
    on its own (`reasons`, empty if none). `keep_line`: the line (`value`) travels with its record too.

    Built as successive projections so each costly value (the parse, a field's text, its double) is
    computed once and then referenced as a column: written as one nested expression, Spark re-evaluated
    the same cast and regexes for every check that used them (CollapseProject keeps these projections
    apart: their values are referenced more than once). As SQL text, one `selectExpr` each, not thousands
    of calls into the JVM through PySpark's Column API."""
    numbers = (*INT_FIELDS, *DOUBLE_FIELDS)
    line = ["value"] if keep_line else []
    base = ["ingestion_date", "source_file", "line_no", LINE_HASH, *line]
    if "value" in lines.columns:
        j = F.from_json("value", PNADC_RAW, {"mode": "PERMISSIVE", "columnNameOfCorruptRecord": CORRUPT})
        parsed = lines.select(*base[:3], _line_hash(), *line, j.alias("j"))
        field, unparseable = "j.{}", f"(j IS NULL OR j.{CORRUPT} IS NOT NULL)"
    else:  # the fields are columns: no struct to build and take apart, and no line to fingerprint
        parsed = lines.select(*base[:3], F.lit(None).cast("long").alias(LINE_HASH), *PNADC_RAW.fieldNames())
        field, unparseable = "`{}`", f"(`{CORRUPT}` IS NOT NULL)"
    texts = parsed.selectExpr(
        *base,
        f"{unparseable} AS _unparseable",
        f"CASE WHEN NOT {unparseable} THEN {_object_id(field.format('_id'))} END AS _rid",
        *[f"{_number_text(field.format(n))} AS _t_{n}" for n in numbers],
        *[f"{_text(field.format(n))} AS _t_{n}" for n in TEXT_FIELDS],
    )
    doubles = texts.selectExpr("*", *[f"{_decimal_double(f'_t_{n}')} AS _d_{n}" for n in numbers])

    bad_flags: dict[str, str] = {}
    for name in numbers:
        text, as_double = f"_t_{name}", f"_d_{name}"
        finite = (
            f"{as_double} IS NOT NULL AND NOT isnan({as_double})"
            f" AND abs({as_double}) < CAST('Infinity' AS DOUBLE)"
        )
        if name in INT_FIELDS:
            in_range = f"({finite} AND abs({as_double}) <= {_INT_MAX})"
            # floor() returns a long and fails the whole query (ANSI) on a double beyond one, and Spark
            # may evaluate it before the range test (common subexpressions are hoisted): floor only
            # what is in range, so no value can make it overflow.
            floored = f"floor(CASE WHEN {in_range} THEN {as_double} ELSE 0.0D END)"
            integral = f"({in_range} AND {as_double} = {floored})"
            bad_flags[name] = f"{text} IS NOT NULL AND NOT {integral}"
        else:
            bad_flags[name] = f"{text} IS NOT NULL AND NOT ({finite})"
    for name in TEXT_FIELDS:
        bad_flags[name] = f"coalesce({_object_as_text(f'_t_{name}')}, false)"
    flagged = doubles.selectExpr("*", *[f"{b} AS _bad_{n}" for n, b in bad_flags.items()])

    cols: dict[str, str] = {"_id": "lower(_rid)"}
    for name in (*numbers, *TEXT_FIELDS):
        if name in INT_FIELDS:
            cols[name] = f"CASE WHEN NOT _bad_{name} THEN CAST(_d_{name} AS INT) END"
        elif name in DOUBLE_FIELDS:
            cols[name] = f"CASE WHEN NOT _bad_{name} THEN _d_{name} END"
        else:
            cols[name] = f"CASE WHEN NOT _bad_{name} THEN _t_{name} END"
    typed = flagged.selectExpr(
        *base,
        "_unparseable",
        "_rid",
        *[f"_bad_{n}" for n in bad_flags],
        *[f"{c} AS `{n}`" for n, c in cols.items()],
    )
    return typed.selectExpr(*base, *[f"`{n}`" for n in cols], f"{_reasons(bad_flags, uf_names)} AS reasons")


def _reasons(fields: Iterable[str], uf_names: Iterable[str]) -> str:
    """The breaches of one line, in a fixed order: (condition, message) pairs, the message only where the
    condition holds. Most lines break nothing: for them the result is the empty array, without building
    and filtering an array of nulls per line."""
    ufs = ", ".join(_sql(uf) for uf in sorted(set(uf_names)))
    parseable = "NOT _unparseable"
    breaches: list[tuple[str, str]] = [
        ("_unparseable", _sql("unparseable JSON")),
        (f"{parseable} AND _rid IS NULL", _sql("_id missing or not an ObjectId")),
    ]
    for name in fields:
        kind = "integer" if name in INT_FIELDS else "number" if name in DOUBLE_FIELDS else "text"
        breaches.append((f"{parseable} AND _bad_{name}", _sql(f"{name}: not a lossless {kind}")))
    lo, hi = IDADE_RANGE
    breaches.append(
        (f"idade IS NOT NULL AND NOT idade BETWEEN {lo} AND {hi}", _sql(f"idade outside {lo}-{hi}"))
    )
    for name, (lo, hi) in NUMBER_RANGES.items():
        breaches.append(
            (f"{name} IS NOT NULL AND NOT {name} BETWEEN {lo} AND {hi}", _sql(f"{name} outside {lo}-{hi}"))
        )
    for name, domain in DOMAINS.items():
        values = ", ".join(_sql(v) for v in domain)
        breaches.append(
            (
                f"{name} IS NOT NULL AND NOT {name} IN ({values})",
                f"concat({_sql(f'{name} not in domain: ')}, {name})",
            )
        )
    breaches.append(
        (
            f"{parseable} AND (uf IS NULL OR NOT uf IN ({ufs}))",
            f"concat({_sql('uf not an IBGE state: ')}, coalesce(uf, 'null'))",
        )
    )
    # Each message is non-null exactly where its condition is true, so "any condition true" is "any
    # message", and the compacted array equals the one built unconditionally.
    listed = "array_compact(array(" + ", ".join(f"CASE WHEN {c} THEN {m} END" for c, m in breaches) + "))"
    anything = " OR ".join(f"({c})" for c, _ in breaches)
    return f"CASE WHEN {anything} THEN {listed} ELSE CAST(array() AS ARRAY<STRING>) END"


def judge_pnadc(lines: DataFrame, uf_names: Iterable[str]) -> DataFrame:
    """Every raw line typed, with the list of contract breaches it commits (`reasons`, empty if none)."""
    return mark_duplicates(type_pnadc(lines, uf_names))


def _line_hash() -> Column:
    """A fingerprint of the raw line, 8 bytes: `with_raw_lines` pairs a record with a line only if it
    matches, so a line found again under another number can never be taken for the record's."""
    return F.xxhash64("value").alias(LINE_HASH)


def _first() -> Column:
    """Where a copy is in the raw files: the smallest is the first copy."""
    return F.struct("source_file", "line_no")


def repeated_ids(typed: DataFrame) -> DataFrame:
    """The `_id`s seen more than once, each with its first copy's (`source_file`, `line_no`)."""
    return (
        typed.where(F.col("_id").isNotNull())
        .groupBy("_id")
        .agg(F.count(F.lit(1)).alias("_copies"), F.min(_first()).alias("_first"))
        .where("_copies > 1")
    )


def mark_duplicates(typed: DataFrame, repeated: DataFrame | None = None) -> DataFrame:
    """The first copy of an _id (in file order) stays; later copies are quarantined as duplicates.

    Only the ids seen more than once travel to the join (an aggregate shuffles ids, not records), and that
    side is broadcast: the records themselves are never shuffled. Persist `typed` first when it is used
    more than once, or the aggregate re-parses the lines for the ids; `repeated` (from `repeated_ids`,
    persisted) spares each later use of the result the aggregate.
    """
    first = _first()
    repeated = repeated_ids(typed) if repeated is None else repeated
    marked = typed.join(F.broadcast(repeated), on="_id", how="left")
    duplicate = F.col("_copies").isNotNull() & (first != F.col("_first"))
    return marked.select(
        *[c for c in typed.columns if c != "reasons"],
        F.when(duplicate, F.array_append("reasons", F.lit("duplicate _id")))
        .otherwise(F.col("reasons"))
        .alias("reasons"),
    )


def split_judged(judged: DataFrame) -> tuple[DataFrame, DataFrame]:
    """(valid records with their explicit schema, rejected records: the quarantine but for the raw line,
    which `with_raw_lines` finds again by `source_file`, `line_no` and `line_hash`)."""
    valid = judged.where(F.size("reasons") == 0).select(*[F.col(f.name) for f in PNADC.fields])
    return valid, rejected_records(judged, LINE_HASH)


def rejected_records(judged: DataFrame, *carried: Column | str) -> DataFrame:
    """The judged records with a reason, in the quarantine's terms, with `carried` columns after them."""
    return judged.where(F.size("reasons") > 0).select(
        F.lit("pnadc").alias("source"),
        F.col("_id").alias("record_id"),
        F.array_join("reasons", "; ").alias("reason"),
        "ingestion_date",
        "source_file",
        "line_no",
        *carried,
    )


def with_raw_lines(rejected: DataFrame, lines: DataFrame, *, broadcast: bool = True) -> DataFrame:
    """The quarantine: each rejected record with its raw line (`raw_record`), in the quarantine's schema.

    `lines` must be the frame the records were typed from, read the same way (its `line_no`s are the ones
    they carry: read it inside `step_conf.one_file_per_task`). A record is paired only with the line whose
    fingerprint it carries: a line numbered otherwise is not found rather than taken for another, so a
    caller compares the count with the rejected records'. The rejected side is broadcast, so the lines are
    read and filtered where they lie, never shuffled; for a quarantine too large to broadcast
    (`broadcast=False`) both sides are shuffled instead.
    """
    keys = ["source_file", "line_no", LINE_HASH]
    raw = lines.select(*keys[:-1], _line_hash(), F.col("value").alias("raw_record"))
    quarantine = raw.join(F.broadcast(rejected) if broadcast else rejected, on=keys, how="inner")
    return quarantine.select(*[F.col(f.name) for f in QUARANTINE.fields])


def clean_pnadc(lines: DataFrame, uf_names: Iterable[str]) -> tuple[DataFrame, DataFrame]:
    """Split raw lines into (valid typed records, quarantine)."""
    valid, rejected = split_judged(judge_pnadc(lines, uf_names))
    return valid, with_raw_lines(rejected, lines)
