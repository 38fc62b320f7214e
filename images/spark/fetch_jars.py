"""Fetch the jars of images/spark/jars.txt from Maven Central into a directory, each checked against its pin.

    python fetch_jars.py [--list JARS_TXT] [--cache DIR] OUT_DIR

Used by the Spark image's `jars` stage (OUT_DIR /jars, no cache) and by `.ci/spark-jars` (OUT_DIR PySpark's
jars/ in .venv, cache ~/.cache/vamosjuntos/jars). A download is kept only when its SHA-256 equals the pinned
one and its SHA-1 equals the `.sha1` Maven Central publishes; a cached jar is checked against the pin
again every time it is used, so a jar changed after download is refused, not installed. Standard library
only: it runs in the image's build stage before anything is installed.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import os
import re
import shutil
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

MAVEN = os.environ.get("MAVEN_REPOSITORY", "https://repo1.maven.org/maven2")
DEFAULT_LIST = Path(__file__).with_name("jars.txt")
_LINE = re.compile(
    r"^(?P<group>[\w.-]+):(?P<artifact>[\w.-]+):(?P<version>[\w.-]+)\s+(?P<sha256>[0-9a-f]{64})$"
)


class JarError(SystemExit):
    """A jar that cannot be trusted or a list that cannot be read (exits non-zero with the message)."""


@dataclass(frozen=True)
class Jar:
    group: str
    artifact: str
    version: str
    sha256: str

    @property
    def file_name(self) -> str:
        return f"{self.artifact}-{self.version}.jar"

    @property
    def url(self) -> str:
        return f"{MAVEN}/{self.group.replace('.', '/')}/{self.artifact}/{self.version}/{self.file_name}"


def read_list(path: Path = DEFAULT_LIST) -> list[Jar]:
    """The jars of a list file: `group:artifact:version  sha256` per line, `#` comments."""
    jars = []
    for number, raw in enumerate(path.read_text().splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        match = _LINE.match(line)
        if not match:
            raise JarError(
                f"{path}:{number}: expected 'group:artifact:version  <sha256, 64 lowercase hex>', got {raw!r}"
            )
        jars.append(Jar(**match.groupdict()))
    if not jars:
        raise JarError(f"{path}: lists no jar")
    return jars


def digest_of(path: Path, algorithm: str) -> str:
    digest = hashlib.new(algorithm, usedforsecurity=False) if algorithm == "sha1" else hashlib.new(algorithm)
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def verify(jar: Jar, path: Path, what: str) -> None:
    actual = digest_of(path, "sha256")
    if actual != jar.sha256:
        raise JarError(
            f"checksum mismatch for {what} {path}: sha256 {actual}, pinned {jar.sha256} in jars.txt. "
            "The file is not the jar that was pinned: do not use it. Delete it to download it again; if the "
            "fresh download is refused too, find out why before changing the pin (docs/kubernetes.md)."
        )


def _get(url: str, out: BinaryIO, attempts: int = 3) -> None:
    """GET `url` into `out`; a dropped connection or a 5xx is tried again, anything else is final."""
    for attempt in range(1, attempts + 1):
        out.seek(0)
        out.truncate()
        try:
            with urllib.request.urlopen(url, timeout=60) as response:
                shutil.copyfileobj(response, out, 1 << 20)
            return
        except urllib.error.HTTPError as exc:
            if exc.code < 500 or attempt == attempts:
                raise JarError(f"could not download {url}: HTTP {exc.code} {exc.reason}") from exc
        except OSError as exc:  # URLError, timeouts, resets
            if attempt == attempts:
                raise JarError(f"could not download {url} ({attempts} attempts): {exc}") from exc
        time.sleep(2**attempt)


def download(jar: Jar, directory: Path) -> Path:
    """Download into `directory`, keeping the file only if both checksums agree (written aside, renamed)."""
    published = io.BytesIO()
    _get(f"{jar.url}.sha1", published)
    published_sha1 = published.getvalue().decode().split()[0].lower()
    fd, name = tempfile.mkstemp(prefix=f".{jar.file_name}.", dir=directory)
    partial = Path(name)
    try:
        with os.fdopen(fd, "wb") as out:
            _get(jar.url, out)
        verify(jar, partial, "the download of")
        sha1 = digest_of(partial, "sha1")
        if sha1 != published_sha1:
            raise JarError(
                f"checksum mismatch for {jar.file_name}: its sha1 {sha1} is not the {published_sha1} "
                f"Maven Central publishes at {jar.url}.sha1, though its sha256 matches the pin"
            )
        partial.chmod(0o644)  # mkstemp makes it 0600: the image's non-root user must read it
        target = directory / jar.file_name
        partial.replace(target)
        return target
    finally:
        partial.unlink(missing_ok=True)


def fetch(jar: Jar, directory: Path) -> Path:
    """The verified jar in `directory`: the one already there (checked again) or a fresh download."""
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / jar.file_name
    if target.exists():
        verify(jar, target, "the cached")
        print(f"{jar.file_name}: sha256 {jar.sha256} OK (cached)", flush=True)
        return target
    target = download(jar, directory)
    print(f"{jar.file_name}: sha256 {jar.sha256} OK (downloaded)", flush=True)
    return target


def install(jar: Jar, source: Path, out: Path) -> Path:
    """Put a verified jar into `out`: a hard link to it where possible (the bundle is ~690 MB), else a copy.

    A file already there is kept only if it is that jar (same file, or the pinned SHA-256)."""
    target = out / jar.file_name
    if target.exists() and (target.samefile(source) or digest_of(target, "sha256") == jar.sha256):
        return target
    aside = out / f".{jar.file_name}.{os.getpid()}.partial"
    aside.unlink(missing_ok=True)
    try:
        try:
            os.link(source, aside)
        except OSError:
            shutil.copyfile(source, aside)
        aside.replace(target)
    finally:
        aside.unlink(missing_ok=True)
    return target


def remove_other_versions(jars: list[Jar], out: Path) -> list[Path]:
    """Other versions of the listed artifacts in `out` (left by an earlier list): two on a classpath clash."""
    keep = {jar.file_name for jar in jars}
    stale = [
        path
        for jar in jars
        for path in out.glob(f"{jar.artifact}-*.jar")
        if path.name not in keep and re.fullmatch(rf"{re.escape(jar.artifact)}-\d[\w.-]*\.jar", path.name)
    ]
    for path in stale:
        path.unlink()
        print(f"removed {path.name} (not in the list)", flush=True)
    return stale


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path, help="where the jars go (e.g. PySpark's jars/ directory)")
    parser.add_argument("--list", type=Path, default=DEFAULT_LIST, help="the jar list (default: jars.txt)")
    parser.add_argument("--cache", type=Path, help="keep downloads here and reuse them (default: none)")
    args = parser.parse_args(argv)
    jars = read_list(args.list)
    args.out.mkdir(parents=True, exist_ok=True)
    for jar in jars:
        fetched = fetch(jar, args.cache or args.out)
        if args.cache:
            install(jar, fetched, args.out)
    remove_other_versions(jars, args.out)


if __name__ == "__main__":
    main(sys.argv[1:])
