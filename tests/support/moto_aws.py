"""moto's server (S3 and STS) on a loopback port, reached the way a Spark pod in EKS reaches AWS: IRSA.

IRSA is a web-identity token file plus a role ARN; the AWS SDKs exchange them at STS
(AssumeRoleWithWebIdentity) for short-lived keys. Here STS is moto's, named by `AWS_ENDPOINT_URL_STS`,
which both botocore (s3fs, boto3) and the AWS SDK for Java v2 in the Spark image's bundle honour. So the
Spark image's `WebIdentityTokenFileCredentialsProvider` runs as it does in EKS, with no access keys.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import httpx

from flows.sources.local_mongo import free_port

REGION = "us-east-1"
ROLE_ARN = "arn:aws:iam::123456789012:role/vamosjuntos-spark-driver"
# Credentials that would win over web identity in botocore's chain, or point at a real account.
NOT_IRSA = (
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_S3",
)


@dataclass(frozen=True)
class MotoAws:
    endpoint: str
    token_file: Path

    def irsa_env(self) -> dict[str, str]:
        """What the EKS pod identity webhook sets (role, token file, region), plus moto as STS."""
        return {
            "AWS_REGION": REGION,
            "AWS_DEFAULT_REGION": REGION,
            "AWS_ROLE_ARN": ROLE_ARN,
            "AWS_WEB_IDENTITY_TOKEN_FILE": str(self.token_file),
            "AWS_STS_REGIONAL_ENDPOINTS": "regional",
            "AWS_ENDPOINT_URL_STS": self.endpoint,
        }

    def s3(self) -> Any:
        return boto3.client("s3", endpoint_url=self.endpoint, region_name=REGION)

    def keys(self, bucket: str, prefix: str = "") -> list[str]:
        pages = self.s3().get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        return sorted(o["Key"] for page in pages for o in page.get("Contents", []))

    def assumed_role_sessions(self) -> list[str]:
        """Session names of every AssumeRoleWithWebIdentity moto's STS answered (who used IRSA).

        Read from the server's own state: ThreadedMotoServer runs in this process."""
        from moto.sts.models import sts_backends

        account = ROLE_ARN.split(":")[4]
        return [role.session_name for role in sts_backends[account]["aws"].assumed_roles]


@contextmanager
def moto_aws(token_dir: Path, buckets: Iterable[str] = ()) -> Iterator[MotoAws]:
    """A fresh moto server with `buckets`; the caller puts `irsa_env()` in the environment it runs with."""
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one line per request otherwise
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    try:
        # moto keeps its state per process, not per server: start from an empty account every time.
        httpx.post(f"{endpoint}/moto-api/reset", timeout=30).raise_for_status()
        token_dir.mkdir(parents=True, exist_ok=True)
        token_file = token_dir / "token"
        # moto's STS does not check the token's signature; EKS projects a signed JWT here.
        token_file.write_text("eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJzeXN0ZW06c2VydmljZWFjY291bnQifQ.c2ln")
        aws = MotoAws(endpoint, token_file)
        s3 = boto3.client(
            "s3", endpoint_url=endpoint, region_name=REGION, aws_access_key_id="x", aws_secret_access_key="x"
        )
        for bucket in buckets:
            s3.create_bucket(Bucket=bucket)
        yield aws
    finally:
        server.stop()
