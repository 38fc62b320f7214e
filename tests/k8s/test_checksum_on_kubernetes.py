"""A raw part that fails its checksum fails a Spark step on Kubernetes at once, as it does locally: the
Prefect task that runs the step (one retry for other failures) sees ChecksumMismatch naming the unit and
the part, and does not retry. The driver Job runs on the Kubernetes API stand-in; the task under a real
Prefect server.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from prefect import flow
from prefect.client.orchestration import get_client
from prefect.states import State

from flows.errors import ChecksumMismatch, DamagedLakeFile, InputTooLarge
from flows.settings import Settings
from flows.spark.kubernetes.errors import SparkStepFailed
from flows.spark.runner import not_retried
from tests.k8s.kube_standin import KubeStandIn, Scenario

DATE = "2026-11-25"
STEP = "pnadc_to_processing"
# What a step's entrypoint prints (flows/spark/jobs/_entry.py); it then exits with ChecksumMismatch.exit_code
MISMATCH_LINE = (
    f"{STEP} failed: ChecksumMismatch: raw/pnadc/ingestion_date={DATE}: part part-00001.jsonl.gz does not "
    "match the sha256 its manifest recorded (expected 9f86d0, found 60303a): it changed after ingestion."
)


@pytest.fixture
def kube() -> Iterator[KubeStandIn]:
    with KubeStandIn() as standin:
        yield standin


def _settings(kube: KubeStandIn) -> Settings:
    return Settings(
        _env_file=None,
        spark_runner="kubernetes",
        spark_image="123456789012.dkr.ecr.us-east-1.amazonaws.com/vamosjuntos-spark:3f2a9c1",
        k8s_namespace="vamosjuntos",
        k8s_api_url=kube.url,
        raw_root="s3://vj-raw",
        processing_root="s3://vj-processing",
        consumer_root="s3://vj-consumer",
        spark_job_deadline_s=600,
    )


def _run_the_task(settings: Settings) -> tuple[State, list[int]]:
    from flows.pipeline import spark_step

    @flow(name="one-step-on-kubernetes")
    def one_step() -> None:
        spark_step(STEP, settings, DATE)

    state = one_step(return_state=True)

    async def attempts() -> list[int]:
        async with get_client() as client:
            runs = await client.read_task_runs()
        return [r.run_count for r in runs if r.flow_run_id == state.state_details.flow_run_id]

    return state, asyncio.run(attempts())


def test_a_checksum_mismatch_in_the_driver_fails_the_task_at_once(prefect_harness: None, kube) -> None:
    kube.next_scenario = Scenario(
        "failure", log_lines=["starting step", MISMATCH_LINE], exit_code=ChecksumMismatch.exit_code
    )
    state, attempts = _run_the_task(_settings(kube))

    assert state.is_failed()
    with pytest.raises(ChecksumMismatch) as err:
        state.result()
    message = str(err.value)
    assert message.startswith(f"Spark step '{STEP}' on Kubernetes (job ")
    assert f"raw/pnadc/ingestion_date={DATE}: part part-00001.jsonl.gz does not match" in message
    assert attempts == [1]
    assert len(kube.job_posts) == 1


def test_any_other_driver_failure_is_still_retried_once(prefect_harness: None, kube) -> None:
    lines = ["Traceback (most recent call last):", "OSError: connection reset"]
    kube.next_scenario = Scenario("failure", log_lines=lines, exit_code=1)
    state, attempts = _run_the_task(_settings(kube))

    with pytest.raises(SparkStepFailed):
        state.result()
    assert attempts == [2]
    assert len(kube.job_posts) == 2  # the first Job was reported failed: the retry starts another


def test_a_mismatch_exit_without_its_log_line_is_still_a_mismatch() -> None:
    """The driver's log may be lost (a log stream that failed): the exit code alone says what happened."""
    reason = f"Error (exit code {ChecksumMismatch.exit_code})"
    failed = SparkStepFailed(STEP, "Failed", reason, job_name="j-1")
    mismatch = not_retried(failed)
    assert isinstance(mismatch, ChecksumMismatch)
    assert "(job j-1)" in str(mismatch) and "the driver's log says which" in str(mismatch)
    assert not_retried(SparkStepFailed(STEP, "Failed", "Error (exit code 1)", [MISMATCH_LINE])) is None


def test_a_raw_unit_too_large_in_the_driver_fails_the_task_at_once(prefect_harness: None, kube) -> None:
    line = (
        f"ibge_to_processing failed: InputTooLarge: raw/ibge/regioes/ingestion_date={DATE} holds 25,000 "
        "records; the IBGE step takes at most 20,000 per entity"
    )
    kube.next_scenario = Scenario("failure", log_lines=[line], exit_code=InputTooLarge.exit_code)
    state, attempts = _run_the_task(_settings(kube))

    with pytest.raises(InputTooLarge, match=r"on Kubernetes \(job .*\): raw/ibge/regioes/\S+ holds 25,000"):
        state.result()
    assert attempts == [1]
    assert len(kube.job_posts) == 1


def test_a_damaged_lake_file_in_the_driver_fails_the_task_at_once(prefect_harness: None, kube) -> None:
    line = (
        f"{STEP} failed: DamagedLakeFile: The lake file "
        f"s3://vj-raw/pnadc/ingestion_date={DATE}/_manifest.json is damaged: a JSON array, not an object."
    )
    kube.next_scenario = Scenario("failure", log_lines=[line], exit_code=DamagedLakeFile.exit_code)
    state, attempts = _run_the_task(_settings(kube))

    with pytest.raises(
        DamagedLakeFile, match=r"on Kubernetes \(job .*\): The lake file s3://vj-raw/pnadc/\S+ is"
    ):
        state.result()
    assert attempts == [1]
    assert len(kube.job_posts) == 1
