"""Shared fixtures for the Kubernetes/EKS deployment tests (no cluster: stand-ins and strict schemas)."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path

import kubernetes_validate
import pytest

from benchmarks import servers

# Offline Prefect in every process these tests start (and in this one).
os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")

REPO = Path(__file__).resolve().parents[2]
# The cluster's Kubernetes (terraform's kubernetes_version, in EKS standard support; a test ties them).
K8S_VERSION = "1.34.0"


def validate_strict(manifest: dict) -> None:
    """Strict schema validation against the cluster's Kubernetes version (unknown fields are errors)."""
    kubernetes_validate.validate(manifest, K8S_VERSION, strict=True)


class ListHandler(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    @property
    def messages(self) -> list[str]:
        return [r.getMessage() for r in self.records]


@pytest.fixture
def run_logger():
    logger = logging.getLogger(f"vamosjuntos.test.spark.{id(object())}")
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    handler = ListHandler()
    logger.addHandler(handler)
    logger.handler = handler  # type: ignore[attr-defined]
    yield logger
    logger.removeHandler(handler)


def prefect_env(home: Path, api_url: str | None = None, **extra: str) -> dict[str, str]:
    """A clean environment for Prefect CLI processes: offline, own PREFECT_HOME, no inherited PREFECT_*,
    VAMOSJUNTOS_* or AWS_* (each process gets what it should know, and nothing of ours)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "VAMOSJUNTOS_", "AWS_"))}
    env.update(
        DO_NOT_TRACK="1",
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        PREFECT_HOME=str(home),
        PYTHONPATH=str(REPO),
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
        PREFECT_LOGGING_LEVEL="INFO",
    )
    if api_url:
        env["PREFECT_API_URL"] = api_url
    env.update(extra)
    return env


# The tests' processes (a worker, a serve script) run from the repository, where they find the flows.
background = partial(servers.background, cwd=REPO)


def prefect(args: list[str], env: dict[str, str], cwd: Path = REPO, timeout: float = 240):
    """`prefect <args>` with this environment's Python; output captured."""
    return subprocess.run(
        [sys.executable, "-m", "prefect", *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@contextmanager
def prefect_server_process(home: Path, healthy_within_s: float = 240) -> Iterator[str]:
    """A real `prefect server start` on a free port (benchmarks/servers.py starts it, in the tests' clean
    environment); yields its API URL (its UI calls that URL too)."""
    with servers.prefect_server(home, healthy_within_s, env=prefect_env(home)) as url:
        yield url
