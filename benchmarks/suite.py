"""The plan of a benchmark run and its execution, size by size (one seeded server per size)."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from benchmarks import cli, servers
from benchmarks.cpu import CpuLedger
from benchmarks.machine import machine_info, speed_probe
from benchmarks.measure import BenchmarkError, Run, run_command, run_worker
from benchmarks.plan import (
    DATE,
    DRAIN,
    EXTRACT,
    EXTRACT_IN_PROCESS,
    FLOW,
    FLOW_SERVER,
    FLOW_WARM,
    ORIGINAL,
    OURS,
    Plan,
    Results,
)
from benchmarks.sampler import Sampler, tree_of
from flows.layout import ZONES


# --- running --------------------------------------------------------------------------------
def _dir_bytes(path: Path, pattern: str = "*") -> int:
    return sum(p.stat().st_size for p in path.rglob(pattern) if p.is_file()) if path.exists() else 0


def _parquet_rows(path: Path) -> int:
    import pyarrow.parquet as pq

    return sum(pq.ParquetFile(p).metadata.num_rows for p in path.rglob("*.parquet"))


def _rep(rep: int) -> str:
    return "first run" if rep < 0 else f"rep {rep + 1}"  # -1: the running servers' first run


class Runner:
    def __init__(self, plan: Plan, work: Path, log: Any = print, save_to: Path | None = None) -> None:
        self.plan = plan
        self.save_to = save_to  # the results so far are saved there after each contestant
        self.work = work
        self.log = log
        self.results = Results(plan=asdict(plan), machine=machine_info())
        self.counter = 0
        self.t0 = time.time()
        self.servers = contextlib.ExitStack()  # the running Prefect and Spark servers, once needed
        self.prefect: servers.Prefect | None = None
        self.spark: servers.Spark | None = None

    def prefect_server(self) -> servers.Prefect:
        """The harness's `prefect server start` (its own PREFECT_HOME, no contestant's)."""
        if self.prefect is None:
            self.log("  starting `prefect server start` (once, for every run against a running server)")
            self.prefect = self._start(
                "prefect server start", servers.prefect_server_with_pid, "prefect-server"
            )
        return self.prefect

    def spark_server(self) -> servers.Spark:
        """The harness's `vamosjuntos spark-server` (started once, stopped with the Prefect server)."""
        if self.spark is None:
            self.log("  starting `vamosjuntos spark-server` (once, for every run against running servers)")
            self.spark = self._start("vamosjuntos spark-server", servers.spark_server, "spark-server")
        return self.spark

    def _start(self, name: str, server: Any, folder: str) -> Any:
        """A server for the contestants that need it, started once; its start-up time goes with the results.
        A server that does not start fails those contestants (each recorded, at once), not the whole run."""
        if name in self.results.servers.get("failed", []):
            raise BenchmarkError(f"{name} did not start (see the first failure)")
        t0 = time.perf_counter()
        try:
            running = self.servers.enter_context(server(self.work / folder))
        except Exception as exc:
            self.results.servers.setdefault("failed", []).append(name)
            raise BenchmarkError(f"{name} did not start: {exc}") from exc
        self.results.servers[f"{name} start_s"] = time.perf_counter() - t0
        return running

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

    def failed(
        self, label: str, size: int, rep: int, exc: BenchmarkError, speed: float | None = None
    ) -> None:
        """A contestant that fails is recorded and reported; the other measurements go on."""
        self.log(f"  {label} at {size:,} ({_rep(rep)}) FAILED: {str(exc).splitlines()[0]}")
        self.results.failures.append(
            {
                "label": label,
                "size": size,
                "repetition": rep,
                "error": str(exc),
                "wall_s": exc.wall_s,  # how far it got: its time and peak until it failed
                "peak_mem": exc.peak_mem,
                "speed_probe_s": speed,  # a machine gone slow is a likely cause of a timeout
            }
        )

    def measure(
        self, task: str, label: str, size: int, server: Any, rep: int, sections: list[str], **more: Any
    ) -> Run | None:
        spec = self._spec(task, server, size, **more)
        load = os.getloadavg()[0]
        speed = speed_probe()
        self.log(f"  {label:<34} size {size:>9,}  {_rep(rep)} ...")
        try:
            run = self._run(task, label, size, server, rep, spec)
        except BenchmarkError as exc:
            self.failed(label, size, rep, exc, speed)
            shutil.rmtree(spec["lake"], ignore_errors=True)
            self._save()
            return None
        run.extra["sections"] = sections
        run.extra["load1_before"] = load
        run.extra["speed_probe_s"] = speed
        lake = Path(spec["lake"])
        run.extra["lake"] = str(lake)
        run.extra["disk"] = {z: _dir_bytes(lake / z) for z in ZONES}
        self.log(
            f"  {label:<34} size {size:>9,}  {_rep(rep)}: {run.wall_s:7.1f} s, "
            f"peak {run.peak_mem / 2**20:7.0f} MB (server {run.server_peak_mem / 2**20:.0f} MB; "
            + (
                f"Spark server {spark / 2**20:.0f} MB; "
                if (spark := run.extra.get("spark_server_peak_mem"))
                else ""
            )
            + f"speed probe {speed:.2f} s)"
        )
        self.results.runs.append(run.as_dict())
        self._save()
        return run

    def _save(self) -> None:
        """What was measured so far, saved after every contestant: a run stopped midway keeps it."""
        if self.save_to:
            self.results.save(self.save_to)

    def _run(self, task: str, label: str, size: int, server: Any, rep: int, spec: dict[str, Any]) -> Run:
        """One contestant in its own process, sampled; BenchmarkError if it (or a server it needs) fails."""
        work, pid = Path(spec["work"]), server.proc.pid if server else None
        if task != "cli":
            return run_worker(
                spec,
                work,
                label=label,
                size=size,
                repetition=rep,
                server_pid=pid,
                timeout_s=self.plan.timeout_s,
            )
        # `vamosjuntos run` as a user runs it; the running servers are their own processes, like MongoDB's.
        prefect = self.prefect_server() if label in (FLOW_SERVER, FLOW_WARM) else None
        spark = self.spark_server() if label == FLOW_WARM else None
        home = self.work / "prefect-home"
        database = (self.work / "prefect-server" if prefect else home) / "prefect.db"
        env = cli.environment(spec["lake"], server.uri, home, prefect.api_url if prefect else None, work)
        if spark:
            env["VAMOSJUNTOS_SPARK_REMOTE"] = spark.remote
        # The Spark server does the steps' Spark work outside the run's tree: its PSS and CPU are read apart.
        beside = Sampler(spark.pid, fresh=False) if spark else None
        if beside:
            beside.start()
        # The running Prefect server's CPU while it serves the run: its processes outlive the run, so a read
        # before and one after count it (one that dies meanwhile fails the run, whose API it is).
        bookkeeper = CpuLedger(prefect.pid, fresh=False) if prefect else None
        try:
            if bookkeeper:
                bookkeeper.read(tree_of(bookkeeper.root_pid))
            run = run_command(
                cli.command(DATE),
                work,
                task=task,
                label=label,
                size=size,
                repetition=rep,
                server_pid=pid,
                env=env,
                timeout_s=self.plan.timeout_s,
                marks=lambda t0, t1: cli.flow_marks(database, t0, t1, lake=spec["lake"]),
            )
        finally:
            samples = beside.stop() if beside else []
        if samples:
            run.extra["spark_server_peak_mem"] = max(s[1] for s in samples)
            run.extra["spark_server_start_mem"] = samples[0][1]
        if beside:
            run.cpu["spark_server"] = sum(beside.cpu_seconds().values())
        if bookkeeper:
            bookkeeper.read(tree_of(bookkeeper.root_pid))
            run.cpu["prefect_server"] = sum(bookkeeper.by_kind().values())
        try:
            run.extra["answers"] = cli.answers(spec["lake"])
        except Exception as exc:  # the run is measured; only the comparison of its answers is lost
            self.log(f"  {label}: its answers could not be read back: {exc}")
        return run

    def drop_lake(self, run: Run) -> None:
        shutil.rmtree(run.extra["lake"], ignore_errors=True)

    # --- the sections, for one size served by one server ------------------------------------
    def e2e(self, server: Any, size: int, scaling_too: bool) -> None:
        plan = self.plan
        reps = plan.reps(size)
        contestants = [("ours", OURS, {}), ("baseline", ORIGINAL, {})]
        extra: list[tuple[int, tuple[str, str, dict[str, Any]]]] = []
        flow_reps = min(plan.flow_repeat, reps) if plan.with_flow else 0
        if flow_reps:
            self._warm_prefect()
            for rep in range(flow_reps):
                extra += [(rep, ("cli", FLOW, {})), (rep, ("cli", FLOW_SERVER, {}))]
                if plan.with_spark_server:
                    extra.append((rep, ("cli", FLOW_WARM, {})))
            self._first_run(server, size, FLOW_WARM if plan.with_spark_server else FLOW_SERVER)
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
                run_sections = sections if label in (OURS, ORIGINAL) else ["e2e"]
                run = self.measure(task, label, size, server, rep, run_sections, **more)
                if run is None:
                    continue
                if task == "baseline":
                    self._baseline_output(run, keep=rep == reps - 1)
                if label == OURS and rep == reps - 1 and "storage" in self.plan.sections:
                    self.storage(run)
                self.drop_lake(run)

    def _first_run(self, server: Any, size: int, label: str) -> None:
        """The running servers' first run, measured apart (section "first"): fresh, they start what later
        runs find started (the Spark server's JVM compiles the steps' code, Prefect's server its first
        queries), so the repetitions measure them as a user meets them from their second run on."""
        run = self.measure("cli", label, size, server, -1, ["first"])
        if run is not None:
            self.drop_lake(run)
        elif label == FLOW_WARM and self.prefect is not None:
            # The Spark server failed (its contestants are reported failed): the Prefect server still
            # serves its first run apart, as it would have in that one.
            self._first_run(server, size, FLOW_SERVER)

    def _baseline_output(self, run: Run, keep: bool) -> None:
        """What the original way wrote (rows, bytes) goes with its run; `keep`: the storage section's."""
        out = Path(run.extra["out_dir"])
        run.extra["rows_out"] = _parquet_rows(out)
        run.extra["raw_json_bytes"] = Path(run.extra["raw_file"]).stat().st_size
        run.extra["parquet_bytes"] = _dir_bytes(out, "*.parquet")
        self.results.runs[-1] = run.as_dict()
        if keep:
            self.results.baseline_storage = {
                "raw_json_bytes": run.extra["raw_json_bytes"],
                "parquet_bytes": run.extra["parquet_bytes"],
                "parquet_files": len(list(out.rglob("*.parquet"))),
                "rows_out": run.extra["rows_out"],
            }

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
        contestants = [
            ("extract_ours", EXTRACT),
            ("extract_drain", DRAIN),
            ("extract_ours_in_process", EXTRACT_IN_PROCESS),
        ]
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
        """Ours and the original way at one size, alternating which goes first; `vamosjuntos run` (the
        default ephemeral API) too at the plan's flow sizes."""
        contestants = [("ours", OURS), ("baseline", ORIGINAL)]
        if self.plan.with_flow and size in self.plan.flow_sizes:
            self._warm_prefect()
            contestants.append(("cli", FLOW))
        for rep in range(self.plan.scale_repeat):
            for task, label in contestants if rep % 2 == 0 else contestants[::-1]:
                run = self.measure(
                    task, label, size, server, rep, ["scaling"] if task != "cli" else ["large"]
                )
                if run is None:
                    continue
                if task == "baseline":
                    self._baseline_output(run, keep=False)
                self.drop_lake(run)

    def run(self) -> Results:
        self.t0 = time.time()
        self.results.started_at = time.strftime("%Y-%m-%d %H:%M:%S %Z")
        with self.servers:
            self._sizes()
        self._finish()
        return self.results

    def _finish(self) -> None:
        self.results.machine["load_average_end"] = list(os.getloadavg())
        self.results.finished_at = time.strftime("%Y-%m-%d %H:%M:%S %Z")
        self.results.duration_s = time.time() - self.t0

    def stopped(self, reason: str) -> None:
        """The run ends before its plan does (a signal, an error): its results say so, and when."""
        self.results.stopped = reason
        self._finish()

    def _sizes(self) -> None:
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
                    # Only the end-to-end runs use the running Prefect server: stopped now, it adds no
                    # background work to the measurements that follow.
                    self.servers.close()
                    self.prefect, self.spark = None, None
                if "extraction" in plan.sections and size in plan.extract_sizes:
                    self.extraction(server, size)
                if "extraction" in plan.sections and size == plan.profile_size:
                    self.anatomy(server, size)
                if "scaling" in plan.sections and size in plan.scale_sizes and not e2e_here:
                    self.scaling(server, size)
