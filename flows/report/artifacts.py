"""The answers as a Prefect run shows them: the `answers` table artifact and the `answers-summary` Markdown.

Answers are shown with their units (`flows.report.formats.show`), as on the report page: `R$ 2,303.02`,
`9.53 years`, a state's name, `no data`. The raw values stay in the lake (`consumer/_answers/latest.json`).
"""

from __future__ import annotations

from typing import Any

from flows.report.formats import fmt_bytes, fmt_ms, show


def answers_table(answers: list[dict[str, Any]], queries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The answers table artifact: each answer with its unit, its rows, and what its query cost.

    Prefect's UI shows a table cell as plain text, so values are not escaped here (the summary's are).
    """
    cost = {q["id"]: q for q in queries}
    return [
        {
            "id": a["id"],
            "question": a["question"],
            "answer": str(show(a)),
            "rows": a["rows"],
            "bytes_scanned": cost.get(a["id"], {}).get("bytes_scanned"),
            "engine_ms": cost.get(a["id"], {}).get("engine_ms"),
            "total_ms": cost.get(a["id"], {}).get("total_ms"),
            "query_id": cost.get(a["id"], {}).get("query_id"),
        }
        for a in answers
    ]


# Characters that make Markdown (or the HTML it may carry) of data: a state's name is data, and an artifact
# must show it as text. < > & become entities; the rest are backslash-escaped (CommonMark allows it for any
# ASCII punctuation).
_MD_ENTITIES = {"<": "&lt;", ">": "&gt;", "&": "&amp;"}
_MD_ESCAPED = set("\\`*_[]{}()#+-.!|~")


def _md(text: str) -> str:
    """Data as literal text in a Markdown table cell, on one line."""
    return "".join(
        _MD_ENTITIES.get(c) or (f"\\{c}" if c in _MD_ESCAPED else " " if c in "\r\n" else c) for c in text
    )


def markdown_summary(answers: list[dict[str, Any]], queries: list[dict[str, Any]], report_path: str) -> str:
    """The answers summary artifact: a readable table, what the queries cost, where the report is."""
    cost = {q["id"]: q for q in queries}
    lines = [
        "| # | question | answer | rows | bytes scanned | time |",
        "|---:|---|---:|---:|---:|---:|",
    ]
    for a in answers:
        q = cost.get(a["id"], {})
        lines.append(
            f"| {a['id']} | {_md(a['question'])} | **{_md(str(show(a)))}** | {a['rows']:,} | "
            f"{fmt_bytes(q.get('bytes_scanned'))} | {fmt_ms(q.get('total_ms'))} |"
        )
    scanned = [q["bytes_scanned"] for q in queries if q.get("bytes_scanned") is not None]
    total = fmt_bytes(sum(scanned)) if scanned else "n/a"
    lines += ["", f"Bytes scanned in total: {total}. Report: {_md(report_path)}"]
    return "\n".join(lines)
