"""Download the S3A jars the Spark image adds to PySpark, each checked against a pinned SHA-1 (build time).

    python fetch_jars.py OUT_DIR

hadoop-aws must equal the Hadoop inside PySpark 4.3 (3.5.0); the AWS SDK v2 bundle and the analytics
accelerator are the versions hadoop-aws 3.5.0 is built against (hadoop-project-3.5.0.pom); spark-hadoop-cloud
(the S3A committer binding for Spark SQL) equals the Spark version. SHA-1 is what Maven Central publishes
(`<jar>.sha1`). A checksum given as "" is fetched from Maven Central at build time instead, which only
guards against corruption: pin it (docs/kubernetes.md, "Pinning the jars").
"""

from __future__ import annotations

import hashlib
import os
import sys
import urllib.request
from pathlib import Path

MAVEN = os.environ.get("MAVEN_REPOSITORY", "https://repo1.maven.org/maven2")


def jars() -> list[tuple[str, str, str, str]]:
    """(group path, artifact, version, sha1) from the build arguments (environment)."""
    env = os.environ
    return [
        ("org/apache/hadoop", "hadoop-aws", env["HADOOP_AWS_VERSION"], env["HADOOP_AWS_SHA1"]),
        ("software/amazon/awssdk", "bundle", env["AWS_SDK_BUNDLE_VERSION"], env["AWS_SDK_BUNDLE_SHA1"]),
        (
            "software/amazon/s3/analyticsaccelerator",
            "analyticsaccelerator-s3",
            env["ANALYTICS_ACCELERATOR_VERSION"],
            env["ANALYTICS_ACCELERATOR_SHA1"],
        ),
        (
            "org/apache/spark",
            "spark-hadoop-cloud_2.13",
            env["SPARK_VERSION"],
            env.get("SPARK_HADOOP_CLOUD_SHA1", ""),
        ),
    ]


def sha1_of(path: Path) -> str:
    digest = hashlib.sha1(usedforsecurity=False)
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def fetch(out: Path, group: str, artifact: str, version: str, expected: str) -> Path:
    name = f"{artifact}-{version}.jar"
    url = f"{MAVEN}/{group}/{artifact}/{version}/{name}"
    if not expected:
        with urllib.request.urlopen(f"{url}.sha1", timeout=60) as response:
            expected = response.read().decode().split()[0]
        print(f"WARNING: {name}: SHA-1 not pinned, using Maven Central's published {expected}", flush=True)
    target = out / name
    urllib.request.urlretrieve(url, target)
    actual = sha1_of(target)
    if actual != expected.lower():
        target.unlink()
        raise SystemExit(f"checksum mismatch for {name}: expected {expected}, got {actual}")
    print(f"{name}: sha1 {actual} OK", flush=True)
    return target


def main(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    for group, artifact, version, sha1 in jars():
        fetch(out, group, artifact, version, sha1)


if __name__ == "__main__":
    main(Path(sys.argv[1]))
