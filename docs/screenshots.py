"""The Prefect UI screenshots of docs/operations.md, taken in a real headless browser.

    .venv/bin/python -m docs.screenshots      # from the repository root; ~10 minutes; docs/img/ops-*.png

Starts a real `prefect server start` on a free port (its own PREFECT_HOME, offline), backfills two dates
on a small generated collection (the command line, as an operator runs it, pointed at that server: the
lakehouse runs once per date), rolls `publico_alvo` back once, then opens the UI in Chromium
(Playwright driving the system's `/usr/bin/chromium`: Playwright's own browser download needs the
internet) and saves what an operator looks at: the runs, one run's graph, the backfill, answers and
rollback artifacts, the event feed. The PNGs are
reduced to a palette so they stay small. Everything it starts is stopped on the way out.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import httpx

from benchmarks.servers import prefect_server  # a real server in its own PREFECT_HOME, stopped on exit

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "docs" / "img"
DATES = ("2026-11-28", "2026-11-29")
TALL = {"runs": 1500}  # the run list sits below the chart


def _env(home: Path, api: str, lake: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "VAMOSJUNTOS_"))}
    env.update(
        DO_NOT_TRACK="1",
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        PREFECT_HOME=str(home),
        PREFECT_API_URL=api,
        PREFECT_UI_API_URL=api,
        SPARK_LOCAL_IP="127.0.0.1",
        VAMOSJUNTOS_LAKE_ROOT=str(lake),
        VAMOSJUNTOS_IBGE_SOURCE="snapshot",
        VAMOSJUNTOS_SPARK_MASTER="local[2]",
        VAMOSJUNTOS_SPARK_SHUFFLE_PARTITIONS="4",
    )
    return env


def vamosjuntos(env: dict[str, str], *args: str) -> None:
    done = subprocess.run([sys.executable, "-m", "flows.cli", *args], env=env, cwd=REPO, timeout=1800)
    if done.returncode != 0:
        raise SystemExit(f"vamosjuntos {' '.join(args)} failed ({done.returncode})")


def flow_run_id(api: str, name: str) -> str:
    body = {"flow_runs": {"name": {"any_": [name]}}, "sort": "START_TIME_DESC", "limit": 1}
    runs = httpx.post(f"{api}/flow_runs/filter", json=body, timeout=30).json()
    return str(runs[0]["id"])


def artifact_id(api: str, key: str) -> str:
    body = {"artifacts": {"key": {"any_": [key]}}, "sort": "CREATED_DESC", "limit": 1}
    return str(httpx.post(f"{api}/artifacts/filter", json=body, timeout=30).json()[0]["id"])


def event_page(api: str, name: str) -> str:
    """The UI's page of the latest event of this name."""
    body = {"filter": {"event": {"name": [name]}}, "limit": 1}
    event = httpx.post(f"{api}/events/filter", json=body, timeout=30).json()["events"][0]
    return f"/events/event/{event['occurred'][:10]}/{event['id']}"


def shoot(ui: str, api: str, pages: dict[str, str], width: int) -> None:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=shutil.which("chromium") or "/usr/bin/chromium",
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        try:
            page = browser.new_page(viewport={"width": width, "height": 900})
            for name, path in pages.items():
                page.set_viewport_size({"width": width, "height": TALL.get(name, 900)})
                page.goto(ui + path, wait_until="networkidle", timeout=60_000)
                page.wait_for_timeout(3000)  # the graph and tables draw after the data arrives
                target = OUT / f"ops-{name}.png"
                page.screenshot(path=str(target))
                _shrink(target)
                print(f"saved {target.relative_to(REPO)} ({target.stat().st_size // 1024} KiB)")
        finally:
            browser.close()


def _shrink(path: Path) -> None:
    """A 64-colour palette: UI screenshots are flat colours, so they lose nothing a reader sees."""
    from PIL import Image

    with Image.open(path) as img:
        small = img.convert("RGB").quantize(colors=64, method=Image.Quantize.MEDIANCUT)
    small.save(path, optimize=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=3000, help="documents to generate (default: %(default)s)")
    parser.add_argument("--width", type=int, default=1600, help="browser width in pixels")
    args = parser.parse_args(argv)
    OUT.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="vamosjuntos-screenshots-") as tmp:
        home, lake = Path(tmp) / "prefect-home", Path(tmp) / "lake"
        home.mkdir()
        with prefect_server(home, timeout_s=240) as api:
            ui, env = api.removesuffix("/api"), _env(home, api, lake)
            vamosjuntos(env, "run", "--rows", str(args.rows), "--from", DATES[0], "--to", DATES[-1])
            vamosjuntos(env, "rollback", "publico_alvo")
            lakehouse = flow_run_id(api, f"lakehouse {DATES[-1]}")
            pages = {
                "runs": "/runs",
                "backfill-artifact": f"/artifacts/artifact/{artifact_id(api, 'backfill')}",
                "flow-run-graph": f"/runs/flow-run/{lakehouse}",
                "answers-artifact": f"/artifacts/artifact/{artifact_id(api, 'answers')}",
                "rollback-artifact": f"/artifacts/artifact/{artifact_id(api, 'rollback-publico-alvo')}",
                "event-feed": "/events",
                "rollback-event": event_page(api, "vamosjuntos.table.rolled_back"),
            }
            print(json.dumps(pages, indent=2))
            shoot(ui, api, pages, args.width)
    return 0


if __name__ == "__main__":
    sys.exit(main())
