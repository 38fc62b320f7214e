"""Shared fixtures for the Kubernetes/EKS deployment tests (no cluster: stand-ins and strict schemas)."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import kubernetes_validate
import pytest

# Offline Prefect in every process these tests start (and in this one).
os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")

REPO = Path(__file__).resolve().parents[2]
K8S_VERSION = "1.30.0"


def validate_strict(manifest: dict) -> None:
    """Strict schema validation against Kubernetes 1.30 (unknown fields are errors)."""
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
