"""The local Spark JVM's class archive (flows/spark/class_cache.py): keyed, built whole, mapped by the JVM."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from flows.spark import class_archives, class_cache


@pytest.fixture
def fake_jars(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    jars = tmp_path / "jars"
    jars.mkdir()
    (jars / "a.jar").write_bytes(b"a")
    monkeypatch.setattr(class_cache, "_jars", lambda: jars)
    return jars


def test_another_jar_set_or_java_looks_for_another_archive(
    fake_jars: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = class_cache.archive_path(tmp_path)
    assert first is not None and first.parent == tmp_path
    assert class_cache.archive_path(tmp_path) == first  # stable
    (fake_jars / "a.jar").write_bytes(b"a changed jar")
    second = class_cache.archive_path(tmp_path)
    assert second != first
    (fake_jars / "b.jar").write_bytes(b"b")
    assert class_cache.archive_path(tmp_path) not in (first, second)
    other_java = tmp_path / "java"
    other_java.write_text("#!/bin/sh\n")
    monkeypatch.setattr(class_cache, "_java", lambda: other_java)
    assert class_cache.archive_path(tmp_path) not in (first, second)
    monkeypatch.setattr(class_cache, "_java", lambda: None)
    assert class_cache.archive_path(tmp_path) is None  # no Java: nothing to look for


def test_the_options_map_an_archive_only_when_it_is_built_local_and_wanted(
    fake_jars: Path, tmp_path: Path
) -> None:
    assert class_cache.jvm_options("local[*]", directory=tmp_path) == ""  # not built yet
    archive = class_cache.archive_path(tmp_path)
    assert archive is not None
    archive.write_bytes(b"built")
    options = class_cache.jvm_options("local[*]", directory=tmp_path).split()
    assert f"-XX:SharedArchiveFile={archive}" in options
    assert "-Xlog:cds=off" in options  # a refused archive never prints
    assert class_cache.jvm_options("local[*]", enabled=False, directory=tmp_path) == ""
    assert class_cache.jvm_options("k8s://https://api:443", directory=tmp_path) == ""  # the image's JVMs


def test_nothing_in_the_way_of_the_archive_fails_a_session(fake_jars: Path, tmp_path: Path) -> None:
    """Only a speed-up: a path Spark's launcher would split, or a cache folder that cannot be read, means a
    session without it."""
    spaced = tmp_path / "a folder"
    spaced.mkdir()
    archive = class_cache.archive_path(spaced)
    assert archive is not None
    archive.write_bytes(b"built")
    assert class_cache.jvm_options("local[*]", directory=spaced) == ""
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0)
    try:
        if os.access(locked, os.R_OK | os.X_OK):  # root reads any folder: make the lookup itself fail
            (fake_jars / "gone.jar").symlink_to(tmp_path / "missing.jar")
        assert class_cache.jvm_options("local[*]", directory=locked / "cache") == ""
    finally:
        locked.chmod(0o755)


def test_a_build_removes_the_archives_no_jvm_can_map_any_more(
    fake_jars: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Each is ~180 MB: one per checkout and PySpark version piled up in the cache folder. What `.ci/setup`
    runs (`python -m flows.spark.class_cache`) removes them, and keeps whatever it cannot be sure of."""
    cache = tmp_path / "cache"
    cache.mkdir()
    monkeypatch.setenv("VAMOSJUNTOS_SPARK_CLASS_CACHE_DIR", str(cache))
    monkeypatch.setenv("VAMOSJUNTOS_SPARK_CLASS_CACHE", "true")

    def built_here(jars: Path) -> Path:
        monkeypatch.setattr(class_cache, "_jars", lambda: jars)
        archive = class_cache.archive_path(cache)
        assert archive is not None
        if not archive.exists():
            archive.write_bytes(b"built")
        assert class_cache.build(cache) == archive  # built: nothing to train, the record is written
        return archive

    def checkout(name: str) -> Path:
        jars = tmp_path / name / "jars"
        jars.mkdir(parents=True)
        (jars / "a.jar").write_bytes(b"a")
        return jars

    other_jars, upgraded_jars = checkout("other-checkout"), checkout("upgraded")
    gone = built_here(other_jars)  # another checkout, then deleted
    upgraded = built_here(upgraded_jars)  # then its jars change: never mapped again
    elsewhere = built_here(checkout("elsewhere"))  # built on another machine sharing the folder
    record = elsewhere.with_suffix(".json")
    record.write_text(record.read_text().replace(socket.gethostname(), "another-host"))
    broken = cache / "spark-111111111111111111111111.jsa"  # its record unreadable: nothing to go by
    broken.write_bytes(b"built")
    broken.with_suffix(".json").write_text("{not json")
    unknown = cache / "spark-000000000000000000000000.jsa"  # no record: built before records were kept
    unknown.write_bytes(b"built")
    current = built_here(fake_jars)  # this checkout's, in use
    old_partial = cache / f"{current.name}.123.partial"  # a build interrupted two days ago
    old_partial.write_bytes(b"half")
    two_days_ago = old_partial.stat().st_mtime - 2 * class_archives.STALE_PARTIAL_S
    os.utime(old_partial, (two_days_ago, two_days_ago))
    building = cache / f"{current.name}.456.partial"  # a build under way
    building.write_bytes(b"half")
    (upgraded_jars / "a.jar").write_bytes(b"a newer a")
    shutil.rmtree(other_jars.parent)
    before = {p.name for p in cache.iterdir()}

    assert class_cache.main([]) == 0

    said = capsys.readouterr().out
    for path in (gone, upgraded, old_partial):
        assert f"removed {path}" in said, said
    left = before - {gone.name, gone.with_suffix(".json").name, upgraded.name}
    left -= {upgraded.with_suffix(".json").name, old_partial.name}
    assert {p.name for p in cache.iterdir()} == left
    assert {current.name, elsewhere.name, broken.name, unknown.name, building.name} <= left
    assert class_archives.prune(cache) == []  # nothing more to remove


def test_stale_archives_go_even_when_the_build_then_fails(
    fake_jars: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A build failing for want of disk space must not keep the space the stale archives hold."""
    cache = tmp_path / "cache"
    cache.mkdir()
    monkeypatch.setenv("VAMOSJUNTOS_SPARK_CLASS_CACHE_DIR", str(cache))
    monkeypatch.setenv("VAMOSJUNTOS_SPARK_CLASS_CACHE", "true")
    stale = class_cache.archive_path(cache)
    assert stale is not None
    stale.write_bytes(b"built")
    class_archives.write_record(stale, class_cache._java(), fake_jars)
    (fake_jars / "a.jar").write_bytes(b"an upgraded a")  # this archive can never be mapped again

    def no_space(partial: Path, rows: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(class_cache, "_train_in_a_child", no_space)
    assert class_cache.main([]) == 1
    assert list(cache.iterdir()) == []


@pytest.mark.integration
def test_a_built_archive_is_mapped_by_the_next_local_session(tmp_path: Path) -> None:
    """Built by a real training run, then a fresh session's JVM loads Spark's classes from it."""
    cache = tmp_path / "cache"
    archive = class_cache.build(cache, rows=300)
    assert archive.is_file() and archive.stat().st_size > 10 << 20
    # nothing partial left; the record says what it was built for
    assert {p.name for p in cache.iterdir()} == {archive.name, archive.with_suffix(".json").name}
    assert class_cache.build(cache) == archive  # built once

    loads = tmp_path / "class-load.log"
    script = textwrap.dedent(
        f"""
        import flows.spark.session as s
        from flows.settings import Settings
        s.JVM_OPTIONS += " -Xlog:class+load=info:file={loads}"
        spark = s.spark_session(Settings(_env_file=None, spark_master="local[1]"), "mapped")
        spark.range(10).selectExpr("sum(id)").collect()
        spark.stop()
        """
    )
    env = {
        **os.environ,
        "VAMOSJUNTOS_SPARK_CLASS_CACHE": "true",
        "VAMOSJUNTOS_SPARK_CLASS_CACHE_DIR": str(cache),
    }
    subprocess.run([sys.executable, "-c", script], env=env, check=True, capture_output=True, timeout=300)
    # Spark's own classes, not the ones it generates or defines at run time (lambdas, Janino's code)
    spark_lines = [
        line
        for line in loads.read_text().splitlines()
        if " org.apache.spark." in line and "$$Lambda" not in line and "source: __" not in line
    ]
    from_archive = [line for line in spark_lines if "shared objects file (top)" in line]
    assert len(from_archive) > 0.8 * len(spark_lines), (len(from_archive), len(spark_lines))
    assert any(" org.apache.spark.SparkContext source: shared objects file" in line for line in from_archive)

    # A dump cut short (the first 20 MB of a real archive) crashes a JVM that maps it: never put in place.
    def cut_short(partial: Path, rows: int) -> None:
        with archive.open("rb") as whole:
            partial.write_bytes(whole.read(20 << 20))

    elsewhere = tmp_path / "elsewhere"
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(class_cache, "_train_in_a_child", cut_short)
        with pytest.raises(RuntimeError, match="could not map"):
            class_cache.build(elsewhere)
    assert list(elsewhere.iterdir()) == []
