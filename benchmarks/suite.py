"""The plan of a benchmark run and its execution, size by size (one seeded server per size)."""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field, replace
from importlib import metadata
from pathlib import Path
from typing import Any

import psutil

from benchmarks import servers
from benchmarks.measure import BenchmarkError, Run, run_worker
from flows.layout import ZONES

REAL_SIZE = 368_210
DATE = "2026-11-25"
OURS, ORIGINAL, FLOW = "ours (steps)", "original way", "ours (Prefect flow)"
EXTRACT, DRAIN = "extract_pnadc", "bare drain"


@dataclass(frozen=True)
class Plan:
    e2e_size: int = REAL_SIZE
    extract_sizes: tuple[int, ...] = (100_000, 500_000, 2_000_000)
    scale_sizes: tuple[int, ...] = (100_000, REAL_SIZE, 1_000_000, 2_000_000)
    repeat: int = 3  # repetitions at sizes up to `large`
    repeat_large: int = 1  # above it (2M extraction, the scaling runs)
    large: int = 500_000
    scale_repeat: int = 1  # scaling sizes other than the end-to-end one
    with_flow: bool = True  # also time the `lakehouse` Prefect flow end to end...
    flow_repeat: int = 1  # ...this many times (it is the same steps plus Prefect's overhead)
    # A what-if at the end-to-end size, once: our pipeline with a smaller Spark driver heap.
    whatif_driver_memory: str | None = "1g"
    profile_size: int = 100_000
    question_repeat: int = 5
    smoke: bool = False
    sections: tuple[str, ...] = ("e2e", "extraction", "storage", "scaling")

    def reps(self, size: int) -> int:
        return self.repeat if size <= self.large else self.repeat_large

    @property
    def sizes(self) -> list[int]:
        wanted = set()
        if "e2e" in self.sections or "storage" in self.sections:
            wanted.add(self.e2e_size)
        if "extraction" in self.sections:
            wanted |= {*self.extract_sizes, self.profile_size}
        if "scaling" in self.sections:
            wanted |= set(self.scale_sizes)
        return sorted(wanted)


FULL = Plan()
# CI: every section, every contestant but the Prefect flow, at sizes that take seconds. Not timed.
SMOKE = Plan(
    e2e_size=3_000,
    extract_sizes=(2_000, 6_000),
    scale_sizes=(1_500, 3_000),
    repeat=1,
    repeat_large=1,
    large=10_000,
    with_flow=False,
    whatif_driver_memory=None,
    profile_size=2_000,
    question_repeat=2,
    smoke=True,
)


@dataclass
class Results:
    plan: dict[str, Any]
    machine: dict[str, Any]
    runs: list[dict[str, Any]] = field(default_factory=list)
    seeding: dict[str, Any] = field(default_factory=dict)
    questions: dict[str, Any] = field(default_factory=dict)
    anatomy: dict[str, Any] = field(default_factory=dict)
    profile: dict[str, Any] = field(default_factory=dict)
    baseline_storage: dict[str, Any] = field(default_factory=dict)
    failures: list[dict[str, Any]] = field(default_factory=list)
    started_at: str = ""
    finished_at: str = ""
    duration_s: float = 0.0

    def runs_of(self, label: str, size: int | None = None, section: str | None = None) -> list[Run]:
        return [
            Run.from_dict(r)
            for r in self.runs
            if r["label"] == label
            and (size is None or r["size"] == size)
            and (section is None or section in r["extra"].get("sections", []))
        ]

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(asdict(self), indent=1, default=str))

    @classmethod
    def load(cls, path: Path) -> Results:
        return cls(**json.loads(path.read_text()))


# --- the machine ----------------------------------------------------------------------------
def _java_version() -> str:
    try:
        out = subprocess.run(["java", "-version"], capture_output=True, text=True, timeout=30)
        return (out.stderr or out.stdout).splitlines()[0]
    except (OSError, IndexError, subprocess.SubprocessError):
        return "not found"


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _os_name() -> str:
    try:
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                return line.split("=", 1)[1].strip('"')
    except OSError:
        pass
    return platform.system()


def _git(*args: str) -> str:
    try:
        root = Path(__file__).resolve().parent.parent
        return subprocess.run(
            ["git", *args], cwd=root, capture_output=True, text=True, timeout=30
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def machine_info() -> dict[str, Any]:
    packages = ["vamosjuntos-lakehouse", "pyspark", "pymongo", "SecantusDB", "duckdb", "pyarrow", "sqlglot"]
    packages += ["prefect", "psutil", "matplotlib"]
    versions = {}
    for name in packages:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return {
        "cpus_logical": psutil.cpu_count(logical=True),
        "cpus_physical": psutil.cpu_count(logical=False),
        "cpu_affinity": len(psutil.Process().cpu_affinity() or [])
        if hasattr(psutil.Process, "cpu_affinity")
        else None,
        "cpu_model": _cpu_model(),
        "ram_bytes": psutil.virtual_memory().total,
        "os": _os_name(),
        "kernel": platform.release(),
        "python": sys.version.split()[0],
        "java": _java_version(),
        "versions": versions,
        "git_commit": _git("rev-parse", "--short", "HEAD"),
        "git_dirty_flows": bool(_git("status", "--porcelain", "--", "flows")),
        "load_average_start": list(os.getloadavg()),
    }


# --- running --------------------------------------------------------------------------------
def _dir_bytes(path: Path, pattern: str = "*") -> int:
    return sum(p.stat().st_size for p in path.rglob(pattern) if p.is_file()) if path.exists() else 0


def _parquet_rows(path: Path) -> int:
    import pyarrow.parquet as pq

    return sum(pq.ParquetFile(p).metadata.num_rows for p in path.rglob("*.parquet"))


class Runner:
    def __init__(self, plan: Plan, work: Path, log: Any = print) -> None:
        self.plan = plan
        self.work = work
        self.log = log
        self.results = Results(plan=asdict(plan), machine=machine_info())
        self.counter = 0

    def _spec(self, task: str, server: Any, size: int, **more: Any) -> dict[str, Any]:
        self.counter += 1
        run_dir = self.work / "runs" / f"{self.counter:03d}-{task}-{size}"
        shutil.rmtree(run_dir, ignore_errors=True)
        spec = {
            "task": task,
            "uri": server.uri if server else None,
            "database": servers.DATABASE,
            "collection": servers.COLLECTION,
            "date": DATE,
            "lake": str(run_dir / "lake"),
            "work": str(run_dir),
            "spark_master": "local[*]",
            "spark_driver_memory": "2g",
            "batch_size": 50_000,
        }
        spec.update(more)
        return spec

    def failed(self, label: str, size: int, rep: int, exc: BenchmarkError) -> None:
        """A contestant that fails is recorded and reported; the other measurements go on."""
        self.log(f"  {label} at {size:,} (rep {rep + 1}) FAILED: {str(exc).splitlines()[0]}")
        self.results.failures.append({"label": label, "size": size, "repetition": rep, "error": str(exc)})

    def measure(
        self, task: str, label: str, size: int, server: Any, rep: int, sections: list[str], **more: Any
    ) -> Run | None:
        spec = self._spec(task, server, size, **more)
        env = {}
        if task == "ours_flow":  # the flow reads its settings from the environment, as deployed
            env = {
                "VAMOSJUNTOS_LAKE_ROOT": spec["lake"],
                "VAMOSJUNTOS_MONGO_URI": server.uri,
                "VAMOSJUNTOS_IBGE_SOURCE": "snapshot",
                "PREFECT_HOME": str(self.work / "prefect-home"),
            }
        load = os.getloadavg()[0]
        self.log(f"  {label:<28} size {size:>9,}  rep {rep + 1} ...")
        try:
            run = run_worker(
                spec,
                Path(spec["work"]),
                label=label,
                size=size,
                repetition=rep,
                server_pid=server.proc.pid if server else None,
                env=env,
            )
        except BenchmarkError as exc:
            self.failed(label, size, rep, exc)
            shutil.rmtree(spec["lake"], ignore_errors=True)
            return None
        run.extra["sections"] = sections
        run.extra["load1_before"] = load
        lake = Path(spec["lake"])
        run.extra["lake"] = str(lake)
        run.extra["disk"] = {z: _dir_bytes(lake / z) for z in ZONES}
        self.log(
            f"  {label:<28} size {size:>9,}  rep {rep + 1}: {run.wall_s:7.1f} s, "
            f"peak {run.peak_rss / 2**20:7.0f} MB (server {run.server_peak_rss / 2**20:.0f} MB)"
        )
        self.results.runs.append(run.as_dict())
        return run

    def drop_lake(self, run: Run) -> None:
        shutil.rmtree(run.extra["lake"], ignore_errors=True)

    # --- the sections, for one size served by one server ------------------------------------
    def e2e(self, server: Any, size: int, scaling_too: bool) -> None:
        plan = self.plan
        reps = plan.reps(size)
        contestants = [("ours", OURS, {}), ("baseline", ORIGINAL, {})]
        extra: list[tuple[int, tuple[str, str, dict[str, Any]]]] = []
        if plan.with_flow:
            self._warm_prefect()
            extra += [(rep, ("ours_flow", FLOW, {})) for rep in range(min(plan.flow_repeat, reps))]
        if plan.whatif_driver_memory:
            label = f"{OURS[:-1]}, driver {plan.whatif_driver_memory})"
            whatif = {"settings": {"spark_driver_memory": plan.whatif_driver_memory}}
            extra.append((reps - 1, ("ours", label, whatif)))
        sections = ["e2e", "scaling"] if scaling_too else ["e2e"]
        for rep in range(reps):
            these = contestants + [c for r, c in extra if r == rep]
            k = rep % len(these)  # a different contestant goes first each repetition
            order = these[k:] + these[:k]
            if rep % 2:
                order.reverse()
            for task, label, more in order:
                run_sections = sections if label == OURS else ["e2e"]
                run = self.measure(task, label, size, server, rep, run_sections, **more)
                if run is None:
                    continue
                last = rep == reps - 1
                if task == "baseline":
                    out = Path(run.extra["out_dir"])
                    run.extra["rows_out"] = _parquet_rows(out)
                    run.extra["raw_json_bytes"] = Path(run.extra["raw_file"]).stat().st_size
                    run.extra["parquet_bytes"] = _dir_bytes(out, "*.parquet")
                    self.results.runs[-1] = run.as_dict()
                    if last:
                        self.results.baseline_storage = {
                            "raw_json_bytes": run.extra["raw_json_bytes"],
                            "parquet_bytes": run.extra["parquet_bytes"],
                            "parquet_files": len(list(out.rglob("*.parquet"))),
                            "rows_out": run.extra["rows_out"],
                        }
                if label == OURS and last and "storage" in self.plan.sections:
                    self.storage(run)
                self.drop_lake(run)

    def _warm_prefect(self) -> None:
        """Create the Prefect home's database once, so no repetition pays for the migrations."""
        home = self.work / "prefect-home"
        if (home / ".warm").exists():
            return
        home.mkdir(parents=True, exist_ok=True)
        code = "from prefect import flow\n@flow\ndef warm():\n    return 1\nwarm()\n"
        from benchmarks.measure import clean_env

        env = clean_env({"PREFECT_HOME": str(home)})
        subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, timeout=600, check=True)
        (home / ".warm").write_text("ok")

    def storage(self, ours: Run) -> None:
        self.log("  storage and scan cost on the last end-to-end lake")
        spec = self._spec("questions", None, ours.size, repeat=self.plan.question_repeat)
        spec["lake"] = ours.extra["lake"]
        try:
            run = run_worker(spec, Path(spec["work"]), label="questions", size=ours.size)
        except BenchmarkError as exc:
            self.failed("questions", ours.size, 0, exc)
            return
        self.results.questions = run.extra | {"stages": [asdict(s) for s in run.stages]}

    def extraction(self, server: Any, size: int) -> None:
        contestants = [("extract_ours", EXTRACT), ("extract_drain", DRAIN)]
        for rep in range(self.plan.reps(size)):
            order = contestants if rep % 2 == 0 else contestants[::-1]
            for task, label in order:
                run = self.measure(task, label, size, server, rep, ["extraction"])
                if run is not None:
                    self.drop_lake(run)

    def anatomy(self, server: Any, size: int) -> None:
        self.log(f"  extraction anatomy and profile at {size:,}")
        spec = self._spec("extract_anatomy", server, size)
        try:
            run = run_worker(spec, Path(spec["work"]), label="anatomy", size=size, server_pid=server.proc.pid)
            self.results.anatomy = run.extra | {
                "size": size,
                "stages": {s.name: s.seconds for s in run.stages},
            }
        except BenchmarkError as exc:
            self.failed("anatomy", size, 0, exc)
        spec = self._spec("extract_profile", server, size)
        spec["profile_out"] = str(Path(spec["work"]) / "extract_pnadc.pstats")
        try:
            run = run_worker(spec, Path(spec["work"]), label="profile", size=size, server_pid=server.proc.pid)
            self.results.profile = run.extra | {"size": size}
        except BenchmarkError as exc:
            self.failed("profile", size, 0, exc)
        shutil.rmtree(spec["lake"], ignore_errors=True)

    def scaling(self, server: Any, size: int) -> None:
        for rep in range(self.plan.scale_repeat):
            run = self.measure("ours", OURS, size, server, rep, ["scaling"])
            if run is not None:
                self.drop_lake(run)

    def run(self) -> Results:
        t0 = time.time()
        self.results.started_at = time.strftime("%Y-%m-%d %H:%M:%S %Z")
        plan = self.plan
        for size in plan.sizes:
            self.log(f"size {size:,}")
            path, info = servers.seeded_store(self.work, size, log=self.log)
            self.results.seeding[str(size)] = info
            e2e_here = size == plan.e2e_size and ("e2e" in plan.sections or "storage" in plan.sections)
            with servers.serving(path) as server:
                if e2e_here:
                    self.e2e(
                        server, size, scaling_too="scaling" in plan.sections and size in plan.scale_sizes
                    )
                if "extraction" in plan.sections and size in plan.extract_sizes:
                    self.extraction(server, size)
                if "extraction" in plan.sections and size == plan.profile_size:
                    self.anatomy(server, size)
                if "scaling" in plan.sections and size in plan.scale_sizes and not e2e_here:
                    self.scaling(server, size)
        self.results.machine["load_average_end"] = list(os.getloadavg())
        self.results.finished_at = time.strftime("%Y-%m-%d %H:%M:%S %Z")
        self.results.duration_s = time.time() - t0
        return self.results


def with_overrides(plan: Plan, **changes: Any) -> Plan:
    return replace(plan, **{k: v for k, v in changes.items() if v is not None})
