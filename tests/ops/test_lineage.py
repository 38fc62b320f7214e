"""Lineage events and data-triggered runs against a real Prefect server.

`prefect deploy --all` registers prefect.yaml's deployments (and their triggers) on a Kubernetes pool with
no worker, so a triggered run stays Scheduled, with its parameters, for the test to read. A `lakehouse`
run commits every unit of a date: the Event Feed filtered on that run holds one `vamosjuntos.unit.committed`
per unit, chained consumer → processing → raw by run id, and starts no deployment. Steps then run alone
(`ingest_pnadc`, `transform`, `publish`) start exactly one `transform`, `publish` and `answer` run each.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from flows import layout
from flows.lake import Lake
from flows.ops.lineage import COMMITTED, ORCHESTRATED_BY, PUBLISHED, UnitRef
from flows.settings import Settings
from tests.k8s.conftest import REPO, background, prefect, prefect_env, prefect_server_process
from tests.k8s.test_prefect_deployments import DEPLOY_ENV, POOL

DATE, ROWS = "2026-11-29", 3_000
TRIGGERED = ("transform", "publish", "answer")  # deployments a trigger starts


def api(url: str, path: str, body: Any = None) -> Any:
    response = httpx.post(f"{url}{path}", json=body or {}, timeout=30)
    response.raise_for_status()
    return response.json()


@pytest.fixture(scope="module")
def ran(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """A server with the deployments, after the script's runs: {url, runs, lake}."""
    home = tmp_path_factory.mktemp("lineage-server")
    with prefect_server_process(home, healthy_within_s=300) as url:  # a loaded CI machine is slow to start it
        env = prefect_env(home, url)
        pool = ["work-pool", "create", "--type", "kubernetes", POOL]
        created = prefect(pool, env)
        assert created.returncode == 0, created.stdout + created.stderr
        deployed = prefect(["deploy", "--all", "--no-prompt"], {**env, **DEPLOY_ENV})
        assert deployed.returncode == 0, deployed.stdout[-3000:] + deployed.stderr[-3000:]

        lake_root = home / "lake"
        flow_env = {**env, "VAMOSJUNTOS_LAKE_ROOT": str(lake_root), "VAMOSJUNTOS_IBGE_SOURCE": "snapshot"}
        flow_env |= {"SPARK_LOCAL_IP": "127.0.0.1", "VAMOSJUNTOS_SPARK_SHUFFLE_PARTITIONS": "2"}
        script = Path(__file__).with_name("lineage_against_server.py")
        done = subprocess.run(
            [sys.executable, str(script), DATE, str(ROWS)],
            env=flow_env,
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=900,
        )
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-5000:]
        runs = json.loads(done.stdout.strip().splitlines()[-1])
        yield {"url": url, "runs": runs, "lake": Lake(Settings(lake_root=str(lake_root))), "env": flow_env}


def events(url: str, name: str, related_run: str, at_least: int = 1) -> list[dict[str, Any]]:
    """Events of `name` with the flow run `related_run` among their related resources, oldest first.

    Waits (up to a minute) for `at_least` of them, and fails with fewer: a run's last events reach the
    server as its process exits, and the server stores them in batches, so a read right after the run can
    come before them."""

    def read() -> dict[str, Any]:
        return api(
            url,
            "/events/filter",
            {
                "filter": {
                    "event": {"name": [name]},
                    "related": {"id": [f"prefect.flow-run.{related_run}"]},
                    "order": "ASC",
                },
                "limit": 50,
            },
        )

    def enough() -> dict[str, Any] | None:
        found = read()
        return found if len(found["events"]) >= at_least else None

    found = wait_for(enough, timeout=60) or read()
    assert found["total"] <= 50, found["total"]
    assert len(found["events"]) >= at_least, f"{len(found['events'])} {name} events, expected {at_least}"
    return found["events"]


def inputs(event: dict[str, Any]) -> dict[str, str]:
    return {
        r["prefect.resource.id"]: r.get("vamosjuntos.run_id")
        for r in event["related"]
        if r["prefect.resource.role"] == "input"
    }


def test_a_lakehouse_run_shows_every_commit_raw_to_processing_to_consumer(ran: dict[str, Any]) -> None:
    lakehouse = ran["runs"]["lakehouse"]
    expected = {
        UnitRef.of(u.zone, u.path, {layout.PARTITION_KEY: DATE}).resource_id for u in layout.units_of(DATE)
    }
    feed = events(ran["url"], COMMITTED, lakehouse, at_least=len(expected))
    by_id = {e["resource"]["prefect.resource.id"]: e for e in feed}
    assert len(by_id) == len(feed), "one event per unit"
    assert set(by_id) == expected
    for event in feed:
        resource = event["resource"]
        assert resource[ORCHESTRATED_BY] == "lakehouse" and resource["vamosjuntos.ingestion_date"] == DATE
        assert event["payload"]["run_id"] == resource["vamosjuntos.run_id"]
        assert event["payload"]["bytes"] > 0 and event["payload"]["files"] >= 1
        roles = {r["prefect.resource.role"] for r in event["related"]}
        assert {"flow-run", "flow", "lakehouse"} <= roles  # the subflow's run, its flow, and the parent run

    def unit(zone: str, table: str) -> str:
        return f"vamosjuntos.unit.{zone}.{table}.{DATE}"

    # Every input named is an event of this run, at the run that event committed.
    for event in feed:
        for input_id, run_id in inputs(event).items():
            assert input_id in by_id, f"{event['resource']['prefect.resource.id']} read {input_id}"
            assert by_id[input_id]["resource"]["vamosjuntos.run_id"] == run_id
    chains = {
        "publico_alvo": [unit("processing", "pnadc"), unit("processing", "ufs")],
        "regioes": [unit("processing", "regioes")],
        "ufs": [unit("processing", "ufs")],
        "mesorregioes": [unit("processing", "mesorregioes")],
        "microrregioes": [unit("processing", "microrregioes")],
    }
    for table, processing in chains.items():
        assert sorted(inputs(by_id[unit("consumer", table)])) == sorted(processing)
    raw_of = {"pnadc": "pnadc", "quarantine.pnadc": "pnadc", "ufs": "ibge.mesorregioes"}
    for e in layout.IBGE_ENTITIES:
        raw_of |= {e: f"ibge.{e}", f"quarantine.ibge_{e}": f"ibge.{e}"}
    for table, source in raw_of.items():
        assert list(inputs(by_id[unit("processing", table)])) == [unit("raw", source)], table
    # In commit order: raw before processing before consumer, for every consumer table.
    position = {e["resource"]["prefect.resource.id"]: i for i, e in enumerate(feed)}
    for table, processing in chains.items():
        for p in processing:
            (raw_input,) = inputs(by_id[p])
            assert position[raw_input] < position[p] < position[unit("consumer", table)]
    raw = by_id[unit("raw", "pnadc")]["payload"]
    assert raw["records"] == ROWS


def test_steps_run_alone_start_what_follows_and_lakehouse_starts_nothing(ran: dict[str, Any]) -> None:
    url, runs = ran["url"], ran["runs"]
    deployments = {d["name"]: d for d in api(url, "/deployments/filter")}
    # The standalone runs' commits say so, and the lake agrees with their run ids.
    transformed = [u for u in layout.units_of(DATE) if u.zone != "raw"]  # what `transform` commits
    transform_feed = events(url, COMMITTED, runs["transform"], at_least=len(transformed))
    assert {e["resource"][ORCHESTRATED_BY] for e in transform_feed} == {"events"}
    fact = next(e for e in transform_feed if e["resource"]["vamosjuntos.table"] == layout.PUBLICO_ALVO)
    assert (
        fact["resource"]["vamosjuntos.run_id"] == ran["lake"].manifest("consumer", "publico_alvo")["run_id"]
    )
    published = events(url, PUBLISHED, runs["publish"])
    assert [e["resource"]["vamosjuntos.ingestion_date"] for e in published] == [DATE]

    def triggered() -> dict[str, list[dict[str, Any]]]:
        by_deployment = {"flow_runs": {"deployment_id": {"any_": [deployments[n]["id"] for n in TRIGGERED]}}}
        found = api(url, "/flow_runs/filter", by_deployment)
        return {n: [r for r in found if r["deployment_id"] == deployments[n]["id"]] for n in TRIGGERED}

    deadline = time.monotonic() + 90
    while not all(triggered().values()) and time.monotonic() < deadline:
        time.sleep(1)
    time.sleep(5)  # a second run, had the lakehouse's events started any, has had time to show
    runs_of = triggered()
    assert {n: len(r) for n, r in runs_of.items()} == dict.fromkeys(TRIGGERED, 1), runs_of
    for name in TRIGGERED:
        (run,) = runs_of[name]
        assert run["parameters"] == {"ingestion_date": DATE}, (name, run["parameters"])
        assert run["state_type"] == "SCHEDULED"  # no worker on this pool


EMIT = """
from prefect.events.worker import EventsWorker
from flows.lake import Lake
from flows.ops import lineage
from flows.settings import Settings
lake = Lake(Settings())
assert lineage.emit_committed(lake, lake.manifest("consumer", "publico_alvo"))
EventsWorker.drain_all()
"""


def test_a_consumer_commit_is_followed_by_fresh_answers_nobody_started(
    ran: dict[str, Any], tmp_path: Path
) -> None:
    """`publish` and `answer` served with prefect.yaml's triggers (runs as local processes): the commit of
    the consumer table is announced again, and the triggered runs publish and answer on their own."""
    url, lake, env = ran["url"], ran["lake"], ran["env"]
    with background(
        [sys.executable, str(Path(__file__).with_name("serve_triggered.py"))], env, tmp_path / "serve.log"
    ):
        served = wait_for(
            lambda: (
                {"served-publish", "served-answer"} <= {d["name"] for d in api(url, "/deployments/filter")}
            ),
            300,
        )
        assert served, (tmp_path / "serve.log").read_text()[-3000:]
        deployments = {d["name"]: d["id"] for d in api(url, "/deployments/filter")}
        time.sleep(5)  # the triggers' automations are loaded by the server's trigger service
        emitted = subprocess.run(
            [sys.executable, "-c", EMIT], env=env, cwd=REPO, capture_output=True, text=True, timeout=120
        )
        assert emitted.returncode == 0, emitted.stderr[-3000:]

        def completed(name: str) -> list[dict[str, Any]]:
            found = api(
                url, "/flow_runs/filter", {"flow_runs": {"deployment_id": {"any_": [deployments[name]]}}}
            )
            return [r for r in found if r["state_type"] == "COMPLETED"]

        answered = wait_for(lambda: completed("served-answer"), 600)
        assert answered, (tmp_path / "serve.log").read_text()[-3000:]
    (publish_run,) = completed("served-publish")
    (answer_run,) = answered
    for run in (publish_run, answer_run):
        assert run["parameters"] == {"ingestion_date": DATE}
    assert answer_run["name"] == f"answer {DATE}"
    latest = lake.read_json("consumer", layout.ANSWERS)
    assert latest["run"]["flow_run_id"] == answer_run["id"]  # the answers in the lake are that run's
    assert [a["id"] for a in latest["answers"]] == list(range(1, 11))


def wait_for(check: Any, timeout: float) -> Any:
    deadline = time.monotonic() + timeout
    while not (found := check()) and time.monotonic() < deadline:
        time.sleep(2)
    return found
