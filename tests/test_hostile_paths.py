"""Nothing outside the lake root is ever written, whatever a user passes; dates are calendar dates.

Every string that reaches a lake path is tried with traversal: the ingestion date (CLI, flow parameters,
step entrypoints), unit and table names (the lake itself), the IBGE entity of a step.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path

import pytest
from pydantic import ValidationError

from flows import cli
from flows.dates import ingestion_date, today
from flows.errors import ConfigurationError, LakeError
from flows.lake import Lake
from flows.settings import Settings

ESCAPE = "../../../../../ESCAPED"
BAD_DATES = [ESCAPE, "2026-11-25/../../../ESCAPED", "2026-13-01", "2026-02-30", "", " ", "20261125", "today"]


def _nothing_escaped(tmp_path: Path) -> None:
    """Only the lake folder (if anything) was created beside the test's own files."""
    assert not list(tmp_path.rglob("ESCAPED*")), "a path left the lake"
    assert not (Path.cwd() / "ESCAPED").exists() and not Path("/ESCAPED").exists()


@pytest.mark.parametrize("bad", BAD_DATES)
def test_cli_refuses_a_date_that_is_not_a_calendar_date(
    bad: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("VAMOSJUNTOS_LAKE_ROOT", str(tmp_path / "a" / "b" / "c" / "lake"))
    ran: list[object] = []
    monkeypatch.setattr(cli, "_check_java", lambda: ran.append("java"))
    with pytest.raises(SystemExit) as exit_:
        cli.main(["run", "--rows", "10", "--ingestion-date", bad])
    assert exit_.value.code == 2 and not ran
    assert "YYYY-MM-DD" in capsys.readouterr().err
    _nothing_escaped(tmp_path)


@pytest.mark.parametrize(
    ("option", "bad", "says"),
    [
        ("--rows", "-1", "must be 0 or more"),
        ("--rows", "ten", "not a whole number"),
        ("--rows", "1e3", "not a whole number"),
        ("--rows", "16777217", "at most 16,777,216 documents can be generated"),  # the _ids' counter
        ("--seed", "-1", "must be 0 or more"),  # numpy's generators take none (unexpected ValueError)
        ("--seed", "x", "not a whole number"),
        ("--seed", str(2**32), "at most 4,294,967,295"),  # recorded beside the documents, typed in the UI
        ("--warm-up-rows", "16777217", "at most 16,777,216 documents can be generated"),  # spark-server's
    ],
)
def test_cli_refuses_a_row_count_or_seed_the_generator_cannot_use(
    option: str, bad: str, says: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_:
        cli.main(["spark-server" if option == "--warm-up-rows" else "run", option, bad])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and f"argument {option}: {says}" in err


@pytest.mark.parametrize(
    ("name", "bad"),
    [("VAMOSJUNTOS_SEED", "-1"), ("VAMOSJUNTOS_SEED", "4294967296"), ("VAMOSJUNTOS_SEED_ROWS", "16777217")],
)
def test_settings_refuse_a_row_count_or_seed_the_generator_cannot_use(
    name: str, bad: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(name, bad)
    with pytest.raises(ValidationError, match=r"(greater than or equal to 0|less than or equal to)"):
        Settings(_env_file=None)  # type: ignore[call-arg]


@pytest.mark.parametrize("bad", [{"rows": -1}, {"rows": 2**24 + 1}, {"seed": -1}, {"seed": 2**32}])
def test_flows_refuse_a_row_count_or_seed_the_generator_cannot_use(bad: dict[str, int]) -> None:
    """As the command line does: from the Prefect UI, a deployment run or the API (the form shows the
    bounds), where a negative seed failed the run with an unexpected ValueError."""
    from prefect.exceptions import ParameterTypeError
    from prefect.utilities.callables import parameter_schema

    from flows import pipeline
    from flows.ops.backfill_flow import backfill

    for flow, good in ((pipeline.lakehouse, {}), (backfill, {"start": "2026-11-20", "end": "2026-11-21"})):
        with pytest.raises(ParameterTypeError):
            flow.validate_parameters(good | bad)
        assert flow.validate_parameters(good | {"rows": 0, "seed": 0})  # the bounds themselves are fine
        assert flow.validate_parameters(good | {"rows": 2**24, "seed": 2**32 - 1})
        schema = parameter_schema(flow.fn).model_dump()["properties"]
        for name, most in (("rows", 2**24), ("seed", 2**32 - 1)):
            (number,) = [option for option in schema[name]["anyOf"] if option.get("type") == "integer"]
            assert (number["minimum"], number["maximum"]) == (0, most), (flow.name, name)


def test_a_good_date_keeps_its_lake_form_and_none_is_today() -> None:
    assert ingestion_date("2026-11-25") == "2026-11-25"
    assert ingestion_date(dt.date(2026, 2, 28)) == "2026-02-28"
    # Today is read before and after: across UTC midnight either day is right.
    before = dt.datetime.now(dt.UTC).date().isoformat()
    none, now = ingestion_date(None), today()
    after = dt.datetime.now(dt.UTC).date().isoformat()
    assert before <= none <= after and before <= now <= after
    for bad in BAD_DATES:
        with pytest.raises(ConfigurationError, match="YYYY-MM-DD"):
            ingestion_date(bad)


@pytest.mark.parametrize("step", ["ibge_to_processing", "pnadc_to_processing", "processing_to_consumer"])
@pytest.mark.parametrize("bad", [ESCAPE, "2026-13-01", ""])
def test_step_entrypoints_refuse_a_bad_date(step: str, bad: str, tmp_path: Path) -> None:
    import importlib

    module = importlib.import_module(f"flows.spark.jobs.{step}")
    with pytest.raises(SystemExit) as exit_:
        module.main(["--ingestion-date", bad, "--lake-root", str(tmp_path / "lake")])
    assert exit_.value.code == 2
    _nothing_escaped(tmp_path)


def test_the_ibge_step_takes_no_entity_to_make_a_path_of(tmp_path: Path) -> None:
    """It builds the three entities it knows; an `--entity` (here a path) is refused before anything runs."""
    from flows.spark.jobs import ibge_to_processing

    with pytest.raises(SystemExit) as exit_:
        ibge_to_processing.main(
            ["--ingestion-date", "2026-11-25", "--lake-root", str(tmp_path / "lake"), "--entity", ESCAPE]
        )
    assert exit_.value.code == 2
    _nothing_escaped(tmp_path)


@pytest.mark.parametrize("root", ["local", "s3://vj-lake/prefix"])
@pytest.mark.parametrize(
    "parts",
    [
        ("pnadc/ingestion_date=" + ESCAPE,),
        ("ibge", "..", "..", "..", "ESCAPED"),
        ("../ESCAPED",),
        ("/tmp/ESCAPED",),
        ("pnadc/ingestion_date=2026-11-25", "/etc/ESCAPED"),
        ("_answers/../../ESCAPED.json",),
    ],
)
def test_the_lake_refuses_any_path_that_leaves_its_zone(
    root: str, parts: tuple[str, ...], tmp_path: Path
) -> None:
    lake = Lake(Settings(lake_root=str(tmp_path / "lake") if root == "local" else root))
    for zone in ("raw", "processing", "consumer"):
        with pytest.raises(LakeError, match="outside the"):
            lake.path(zone, *parts)  # type: ignore[arg-type]


def test_no_lake_operation_writes_outside_the_root(tmp_path: Path) -> None:
    lake = Lake(Settings(lake_root=str(tmp_path / "x" / "y" / "lake")))
    unit = "pnadc/ingestion_date=" + ESCAPE
    attempts: list[Callable[[], object]] = [
        lambda: lake.stage("raw", unit),
        lambda: lake.write_json("consumer", "../../../ESCAPED.json", {"a": 1}),
        lambda: lake.manifest("processing", unit),
        lambda: lake.partitions("raw", "../../../ESCAPED"),
        lambda: lake.committed_files("raw", unit),
    ]
    for attempt in attempts:
        with pytest.raises(LakeError, match="outside the"):
            attempt()
    _nothing_escaped(tmp_path)
    # and the ordinary names still work
    staging = lake.stage("raw", "pnadc/ingestion_date=2026-11-25")
    assert staging.path.startswith(str(tmp_path / "x" / "y" / "lake" / "raw"))


def test_flows_validate_the_date_parameter_and_show_a_date_picker(
    prefect_harness: None, tmp_path: Path, settings_for: Callable[..., Settings]
) -> None:
    from prefect.exceptions import ParameterTypeError
    from prefect.utilities.callables import parameter_schema

    from flows import pipeline

    for flow in (pipeline.lakehouse, pipeline.ingest_ibge, pipeline.ingest_pnadc, pipeline.transform):
        schema = parameter_schema(flow.fn).model_dump()
        prop = schema["properties"]["ingestion_date"]
        assert {"type": "string", "format": "date"} in prop.get("anyOf", [prop]), flow.name
        for bad in (ESCAPE, "2026-13-01", ""):
            with pytest.raises(ParameterTypeError):
                flow(ingestion_date=bad, settings=settings_for(mongo_uri="mongodb://127.0.0.1:1/"))
    _nothing_escaped(tmp_path)
