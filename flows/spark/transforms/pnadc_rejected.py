"""The rejected PNAD records found again after a pass that typed every line but wrote only the valid ones.

The PNAD step types its lines once, as it writes the valid records (spark/jobs/pnadc_to_processing.py). On
the way, Spark's observed metrics (`Dataset.observe`) count the records judged and those rejected, and
note where the rejected ones lie: the block of consecutive lines holding each (16 lines, or more for a
batch of over 2,097,152 lines: `block_bits`). The quarantine pass then reads the lines again but types
only those blocks' lines, with their raw lines kept, so no join is needed to bring them back. The blocks
noted are about a sixteenth of the lines at most, however many records are rejected, and a few rejected
records cost the typing of a few blocks, not of every line again (docs/spark-performance.md). Both passes
also take a fingerprint of the records rejected, which must match: the same count of records found at
other places (lines numbered otherwise the second time) would not do.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from flows.errors import LakeError
from flows.spark.schemas import QUARANTINE
from flows.spark.session import is_remote_session
from flows.spark.transforms.pnadc import rejected_records

# Blocks of 2**4 lines at least; `line_no` keeps its task in its high bits (spark/io.py), so a block never
# spans two files. Larger blocks for larger batches keep the set of blocks (on the driver, then broadcast)
# near MAX_BLOCKS entries at most (a file's last block may be partial: up to one more a file).
BLOCK_BITS = 4
MAX_BLOCKS = 1 << 17
# How long the driver waits for Spark's report of what a pass observed, once its action has ended. Spark 4.3
# completes a classic session's observation as the action's execution ends, failed or not; one it never
# completes (its metrics not in the plan that ran) would leave `Observation.get` waiting for ever, and the
# step with it. A safety net, then: a bound on a wait that should take no time.
REPORT_WAIT_S = 60.0
# At or past this share of the lines in blocks that hold a rejected record, every line is typed again: the
# filter would keep most lines anyway, and its set would be broadcast for nothing.
EVERY_LINE_SHARE = 0.5


@dataclass(frozen=True)
class Judgement:
    """What the judging pass saw: the records judged, those rejected, and the blocks holding them."""

    judged: int
    rejected: int
    blocks: tuple[int, ...]
    bits: int = BLOCK_BITS  # a block is `line_no` >> bits
    fingerprint: int | None = None  # of the rejected records (`rejection_fingerprint`); None if none

    def lines_to_type(self, lines: DataFrame) -> DataFrame:
        """The lines the quarantine pass types: those of the blocks holding a rejected record (numbered as
        when judged: `lines` must be read as the judged ones were), all when those blocks cover half the
        lines or more, none when nothing was rejected (Spark plans `limit(0)` as an empty result, without
        reading a file)."""
        if not self.rejected:
            return lines.limit(0)
        if len(self.blocks) << self.bits >= self.judged * EVERY_LINE_SHARE:
            return lines
        # As Arrow: a frame made from Python rows would start Spark's Python workers (a second of CPU).
        listed = pa.table({"block": pa.array(self.blocks, type=pa.int64())})
        blocks = lines.sparkSession.createDataFrame(listed)
        # Broadcast: the lines are filtered where they are read, never shuffled.
        wanted = F.shiftright(F.col("line_no"), self.bits) == F.col("block")
        return lines.join(F.broadcast(blocks), wanted, "left_semi")


def block_bits(lines: int | None) -> int:
    """The bits a block's number drops from `line_no`: 16 lines a block, more when `lines` (expected)
    would make more than MAX_BLOCKS of them."""
    per_block = -(-(lines or 0) // MAX_BLOCKS)  # the lines a block must hold, rounded up
    return max(BLOCK_BITS, (per_block - 1).bit_length())


def observe_judgement(judged: DataFrame, bits: int = BLOCK_BITS) -> tuple[DataFrame, Any]:
    """`judged` (records with their `reasons` and `line_no`) observed: once an action has run the frame
    returned, `judgement` reads what it saw from the observation returned (with the same `bits`)."""
    observation = _observation(judged, "pnadc_judgement")
    rejected = F.size("reasons") > 0
    reason = F.array_join("reasons", "; ")
    observed = judged.observe(
        observation,
        F.count(F.lit(1)).alias("judged"),
        F.count_if(rejected).alias("rejected"),
        F.collect_set(F.when(rejected, F.shiftright("line_no", bits))).alias("blocks"),
        rejection_fingerprint(F.when(rejected, F.xxhash64("source_file", "line_no", "_id", reason))),
    )
    return observed, observation


def rejection_fingerprint(hashed: Column) -> Column:
    """The rows' hashes of (`source_file`, `line_no`, record id, reason) xor-ed together: two passes that
    rejected the same lines for the same reasons, in whatever order, have the same one (null for none)."""
    return F.bit_xor(hashed).alias("fingerprint")


def observed_quarantine(typed: DataFrame) -> tuple[DataFrame, Any]:
    """`quarantine_with_lines(typed)`, observed: once an action has run it, `fingerprint` reads the
    fingerprint of its records from the observation returned, to compare with the judging pass's."""
    observation = _observation(typed, "pnadc_quarantine")
    return quarantine_with_lines(typed, observation), observation


def fingerprint(observation: Any, wait_s: float = REPORT_WAIT_S) -> int | None:
    """The fingerprint an observed quarantine's action saw (None for no record); LakeError if Spark
    reported none (waited for as `judgement` waits)."""
    seen = observation.get if _reported(observation, wait_s) else None
    if not seen or "fingerprint" not in seen:
        raise LakeError("Spark reported no fingerprint for the quarantine it wrote")
    return seen["fingerprint"]


def _observation(frame: DataFrame, name: str) -> Any:
    if is_remote_session(frame.sparkSession):
        from pyspark.sql.connect.observation import Observation
    else:
        from pyspark.sql import Observation
    return Observation(name)


def judgement(observation: Any, bits: int = BLOCK_BITS, wait_s: float = REPORT_WAIT_S) -> Judgement | None:
    """What the observed frame saw, once an action ran it; None if Spark reported nothing (a Connect
    session's observation is then empty; a classic one's report is waited for up to `wait_s`)."""
    if not _reported(observation, wait_s):
        return None
    seen = observation.get
    if not seen or any(seen.get(k) is None for k in ("judged", "rejected", "blocks")):
        return None
    blocks = tuple(sorted(seen["blocks"]))
    return Judgement(int(seen["judged"]), int(seen["rejected"]), blocks, bits, seen.get("fingerprint"))


def _reported(observation: Any, wait_s: float) -> bool:
    """Whether Spark has reported a classic session's observation, waited for up to `wait_s` (a Connect
    session's is complete, or empty, once the action has returned)."""
    jo = getattr(observation, "_jo", None)  # PySpark's handle, whose `get` would wait without a timeout
    if jo is None:
        return True
    reported = jo.future()
    deadline = time.monotonic() + wait_s
    while not reported.isCompleted():
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.02)
    return True


def quarantine_with_lines(typed: DataFrame, observation: Any = None) -> DataFrame:
    """The quarantine of records typed with their raw lines (`type_pnadc(..., keep_line=True)`), its
    records' fingerprint taken by `observation` if given (`observed_quarantine`)."""
    rejected = rejected_records(typed, F.col("value").alias("raw_record"))
    if observation is not None:
        keys = F.xxhash64("source_file", "line_no", "record_id", "reason")
        rejected = rejected.observe(observation, rejection_fingerprint(keys))
    return rejected.select(*[F.col(f.name) for f in QUARANTINE.fields])
