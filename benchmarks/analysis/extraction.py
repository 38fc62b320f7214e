"""Extraction: `extract_pnadc` against a bare drain of the same cursor, its anatomy and its profile."""

from __future__ import annotations

from typing import Any

from benchmarks.analysis.stats import paired, stat
from benchmarks.measure import Run
from benchmarks.plan import DRAIN, EXTRACT, EXTRACT_IN_PROCESS, Results


def _docs_per_s(run: Run) -> float:
    return run.extra["documents"] / run.stage_seconds("extract")


def _peak(run: Run, name: str) -> int:
    s = run.stage(name)
    return s.peak_mem if s else 0


def _count_own_s(run: Run) -> float:
    return float(run.extra.get("overlapped_count_s", float("nan")))


def size_row(size: int, ours: list[Run], drain: list[Run], in_process: list[Run]) -> dict[str, Any]:
    drain_s = stat([r.stage_seconds("extract") for r in drain])
    first = stat([r.extra.get("first_batch_s") or 0.0 for r in drain])
    return {
        "size": size,
        "ours_rate": stat([_docs_per_s(r) for r in ours]),
        "drain_rate": stat([_docs_per_s(r) for r in drain]),
        "ratio": paired(ours, drain, lambda x, y: _docs_per_s(x) / _docs_per_s(y)),
        "stream_ratio": paired(ours, drain, lambda x, y: y.stage_seconds("extract") / x.extra["stream_s"]),
        # What the counts added after the stream (the collection's count is asked as the last batch
        # arrives; the extraction waits for what is left of it once its last part is written).
        "count_share": paired(ours, drain, lambda x, y: x.extra["count_s"] / y.stage_seconds("extract")),
        # The count's own time, beside the last batches' encoding (none in results from before it was kept).
        "count_own_share": paired(ours, drain, lambda x, y: _count_own_s(x) / y.stage_seconds("extract")),
        "ours_peak": stat([_peak(r, "extract") for r in ours]),
        "ours_growth": stat([_peak(r, "extract") - _peak(r, "startup") for r in ours]),
        "drain_peak": stat([_peak(r, "extract") for r in drain]),
        "server_peak": stat([r.server_peak_mem for r in ours + drain]),
        "first_batch_share": first["median"] / drain_s["median"] if drain_s["median"] else float("nan"),
        # The same extraction without encoder workers (results from before they existed have none).
        "in_process_rate": stat([_docs_per_s(r) for r in in_process]),
        "in_process_peak": stat([_peak(r, "extract") for r in in_process]),
        "in_process_ratio": paired(in_process, drain, lambda x, y: _docs_per_s(x) / _docs_per_s(y)),
        "workers_gain": paired(ours, in_process, lambda x, y: _docs_per_s(x) / _docs_per_s(y)),
        "workers": stat([float(r.extra.get("encoder_workers", 0)) for r in ours]),
    }


def analyse(results: Results, sizes: tuple[int, ...]) -> list[dict[str, Any]]:
    rows = []
    for size in sorted(sizes):
        ours = results.runs_of(EXTRACT, size, "extraction")
        drain = results.runs_of(DRAIN, size, "extraction")
        if ours and drain:
            rows.append(size_row(size, ours, drain, results.runs_of(EXTRACT_IN_PROCESS, size, "extraction")))
    return rows


def anatomy(an: dict[str, Any]) -> dict[str, Any] | None:
    """Each part of the extraction timed alone on the same documents (one run, no profiler)."""
    if not an:
        return None
    st, n = an["stages"], an["documents"]
    drain = st["drain (RawBSONDocument)"]
    decode = max(0.0, st["drain + decode to dicts"] - drain)
    fast = st["relaxed_lines (the pipeline's encoder)"]
    client = decode + fast + st["utf-8 encode"] + st["gzip level 1"] + st["sha256"]
    stream = st["pages + gzip + sha256 (all but the writes)"]
    first = an.get("first_batch_s") or 0.0
    count = st.get("collection count (reconciliation)")
    return {
        "documents": n,
        "parts": [
            {"name": k, "seconds": t, "us_per_doc": t / n * 1e6, "x_drain": t / drain}
            for k, t in st.items()
            if k not in ("startup", "shutdown")
        ],
        "drain": drain,
        "decode": decode,
        "client": client,
        "stream": stream,
        "reader": stream,
        "dumps": st["json_util.dumps (relaxed, the naive way)"],
        "fast": fast,
        "identical": bool(an.get("fast_path_identical")),
        "count": count,
        "first_batch": first,
        # Nothing overlaps the wait for the first batch; after it, server and client overlap at best.
        "bound": first + max(drain - first, client),
    }


def profile(pr: dict[str, Any]) -> dict[str, Any] | None:
    if not pr:
        return None
    total = pr["total_s"]
    return {
        "documents": pr["documents"],
        "total": total,
        "parts": [{"name": k, "seconds": v, "share": v / total} for k, v in pr["parts_s"].items()],
        "top": pr["top_tottime"][:12],
    }
