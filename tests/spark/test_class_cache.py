"""The local Spark JVM's class archive (flows/spark/class_cache.py): keyed, built whole, mapped by the JVM."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from flows.spark import class_cache


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
    fake_jars: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each is ~180 MB: one per checkout and PySpark version piled up in the cache folder."""
    cache = tmp_path / "cache"
    cache.mkdir()
    current = class_cache.archive_path(cache)
    assert current is not None
    current.write_bytes(b"built")  # built before records were kept: the next build notes what it is for
    assert class_cache.build(cache) == current
    assert current.with_suffix(".json").is_file()
    # Another checkout's archive, whose jars are then deleted with it.
    other_jars = tmp_path / "other-checkout" / "jars"
    other_jars.mkdir(parents=True)
    (other_jars / "a.jar").write_bytes(b"a")
    monkeypatch.setattr(class_cache, "_jars", lambda: other_jars)
    gone = class_cache.archive_path(cache)
    assert gone is not None and gone != current
    gone.write_bytes(b"built")
    class_cache.build(cache)
    # An upgrade: this checkout's jars change, so its old archive can never be mapped again.
    upgraded_jars = tmp_path / "upgraded" / "jars"
    upgraded_jars.mkdir(parents=True)
    (upgraded_jars / "a.jar").write_bytes(b"a")
    monkeypatch.setattr(class_cache, "_jars", lambda: upgraded_jars)
    upgraded = class_cache.archive_path(cache)
    assert upgraded is not None
    upgraded.write_bytes(b"built")
    class_cache.build(cache)
    (upgraded_jars / "a.jar").write_bytes(b"a newer a")
    unknown = cache / "spark-000000000000000000000000.jsa"  # no record: nothing says what it is for
    unknown.write_bytes(b"built")
    old_partial = cache / f"{current.name}.123.partial"  # a build interrupted yesterday
    old_partial.write_bytes(b"half")
    day_ago = old_partial.stat().st_mtime - 2 * class_cache.STALE_PARTIAL_S
    os.utime(old_partial, (day_ago, day_ago))
    building = cache / f"{current.name}.456.partial"  # a build under way
    building.write_bytes(b"half")
    (other_jars.parent / "jars" / "a.jar").unlink()
    other_jars.rmdir()

    removed = class_cache.prune(cache)

    assert sorted(removed) == sorted([gone, upgraded, old_partial])
    assert current.is_file() and unknown.is_file() and building.is_file()
    assert not gone.with_suffix(".json").exists() and not upgraded.with_suffix(".json").exists()
    assert class_cache.prune(cache) == []  # nothing more to remove


@pytest.mark.integration
def test_a_built_archive_is_mapped_by_the_next_local_session(tmp_path: Path) -> None:
    """Built by a real training run, then a fresh session's JVM loads Spark's classes from it."""
    cache = tmp_path / "cache"
    archive = class_cache.build(cache, rows=300)
    assert archive.is_file() and archive.stat().st_size > 10 << 20
    assert [p.name for p in cache.iterdir()] == [archive.name]  # nothing partial left
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
