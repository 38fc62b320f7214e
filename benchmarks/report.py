"""The report: `docs/benchmarks.md` rendered from the analysis' numbers by a Jinja2 template, with plots.

analysis (`benchmarks.analysis.analyse`: results → a plain dict of numbers and verdicts) → plots
(`benchmarks.plots`) → template (`benchmarks/templates/benchmarks.md.j2`). The prose lives in the template;
every number in it comes from the dict.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import jinja2

from benchmarks import plots, rows
from benchmarks.analysis import analyse, describe_plan
from benchmarks.analysis.formats import FORMATS, cell, ratio
from benchmarks.analysis.targets import TARGETS
from benchmarks.plan import Results

__all__ = ["SECTION_TITLES", "TARGETS", "describe_plan", "numbers", "render", "write"]
TEMPLATES = Path(__file__).resolve().parent / "templates"
SECTION_TITLES = {
    "machine": "## Machine and method",
    "targets": "## Targets",
    "e2e": "## 1. End to end: our pipeline vs the original way",
    "extraction": "## 2. Extraction: `extract_pnadc` vs the bare drain",
    "storage": "## 3. Storage and scan cost",
    "scaling": "## 4. Scaling: ours and the original way as the collection grows",
}


def environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        undefined=jinja2.StrictUndefined,  # a number the analysis lacks fails the render, never prints blank
        keep_trailing_newline=True,
        autoescape=False,  # Markdown, not HTML
    )
    env.filters.update(FORMATS | rows.FILTERS | {"cell": cell, "ratio": ratio})
    return env


def render(a: dict[str, Any], img_rel: str = "img") -> str:
    text = environment().get_template("benchmarks.md.j2").render(a=a, img=img_rel)
    while "\n\n\n" in text:
        text = text.replace("\n\n\n", "\n\n")
    return text.strip() + "\n"


def write(results: Results, out: Path, img: Path) -> Path:
    made = plots.draw(results, analyse(results), img)
    a = analyse(results, plots=made)  # again, so the targets know which plots exist
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render(a, Path(os.path.relpath(img, out.parent)).as_posix()))
    return out


def numbers(results: Results) -> dict[str, float]:
    """The headline numbers (the smoke test wants every one finite and positive)."""
    a = analyse(results)
    out: dict[str, float] = {}
    if e := a["e2e"]:
        out["e2e_speedup"] = e["speedup"]["median"]
        out["e2e_memory_ratio"] = e["memory_ratio"]["median"]
        for c, key in zip(e["contestants"][:2], ("ours", "original"), strict=True):
            out[f"e2e_{key}_wall_s"] = c["wall"]["median"]
            out[f"e2e_{key}_peak_mem"] = c["peak"]["median"]
    for d in a["extraction"]:
        size = d["size"]
        out[f"extract_{size}_ratio"] = d["ratio"]["median"]
        out[f"extract_{size}_ours_docs_per_s"] = d["ours_rate"]["median"]
        out[f"extract_{size}_drain_docs_per_s"] = d["drain_rate"]["median"]
        out[f"extract_{size}_ours_peak_mem"] = d["ours_peak"]["median"]
    if st := a["storage"]:
        out |= {f"zone_{z}_bytes": b for z, b in st["zones"].items()}
        out["questions_cold_s"] = st["cold_s"]
        out["questions_warm_s"] = st["warm"]["median"]
        for q in st["questions"]:
            out[f"q{q['id']}_bytes_partition_pruning"] = q["bytes_partitions"]
            out[f"q{q['id']}_athena_usd"] = q["athena_usd"]
    for r in (a["scaling"] or {}).get("per_size", []):
        out[f"scaling_{r['size']}_wall_s"] = r["ours_wall"]
        out[f"scaling_{r['size']}_peak_mem"] = r["ours_peak"]
        if r["orig_wall"] is not None:
            out[f"scaling_{r['size']}_speedup"] = r["speedup"]
    return out
