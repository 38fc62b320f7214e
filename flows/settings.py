"""The one settings object: read once at the edge (CLI, flow entry), then passed in."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from flows.layout import ZONES, Zone

IBGE_API = "https://servicodados.ibge.gov.br/api/v1/localidades"
REAL_COLLECTION_SIZE = 368_210
# The generated documents' `_id`s number them in an ObjectId's 3-byte counter (flows/generator.py).
MAX_SEED_ROWS = 2**24
SeedRows = Annotated[int, Field(ge=0, le=MAX_SEED_ROWS)]  # a count of documents to generate
# A seed is recorded beside the documents (a BSON integer) and typed in the UI's form (a JavaScript number):
# 32 bits, as numpy's legacy seeds, are plenty and fit both.
MAX_SEED = 2**32 - 1
Seed = Annotated[int, Field(ge=0, le=MAX_SEED)]


class Settings(BaseSettings):
    """Every knob of the pipeline, from `VAMOSJUNTOS_*` environment variables or a `.env` file."""

    model_config = SettingsConfigDict(
        env_prefix="VAMOSJUNTOS_",
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        hide_input_in_errors=True,  # a refused value may be a secret (a URL with its token)
    )

    # --- lake -------------------------------------------------------------------------------
    lake_root: str = Field("./lakehouse", description="Local folder or s3://bucket[/prefix] of the zones.")
    # In the cloud each zone is its own bucket; unset zones live under lake_root/<zone>.
    raw_root: str | None = None
    processing_root: str | None = None
    consumer_root: str | None = None
    s3_endpoint_url: str | None = Field(None, description="Custom S3 endpoint (e.g. moto, MinIO).")
    # Longer than any writer may stage a run (the longest flow-run deadline is 4 h): a run folder whose
    # stager left its marker this long ago is a crash's leftover, and the next commit removes it.
    lake_stale_staging_s: int = Field(86_400, ge=0, description="Age after which an uncommitted run is junk.")
    lake_keep_runs: int = Field(
        2,
        ge=0,
        description="How many of each unit's newest committed runs stay in the lake (besides the current one "
        "and the one it replaced, always kept): how far back a rollback can go (flows/ops/rollback.py).",
    )
    aws_region: str = "us-east-1"

    # --- sources ----------------------------------------------------------------------------
    mongo_uri: SecretStr | None = Field(None, description="Unset: start the embedded SecantusDB server.")
    mongo_database: str = "ibge"
    mongo_collection: str = "pnadc20203"
    mongo_batch_size: int = Field(50_000, ge=1, description="Documents per raw part file.")
    mongo_server_selection_timeout_ms: int = Field(5_000, ge=100)
    mongo_connect_timeout_ms: int = Field(
        30_000,
        ge=100,
        description="Connect and heartbeat timeout. A heartbeat that times out makes pymongo cancel the "
        "running cursor; a busy server (SecantusDB building a 2M-document answer) can take 20 s to answer.",
    )
    mongo_reconnects: int = Field(3, ge=0, description="In-run cursor reopenings after a dropped connection.")
    mongo_reconnect_backoff_s: float = Field(2.0, ge=0, description="First wait before reopening (doubles).")
    mongo_encoder_workers: int | None = Field(
        None,
        ge=0,
        description="Processes decoding and encoding the PNAD batches beside the stream; 0: in the "
        "extraction's own process. Unset: 2 given 2 CPUs or more (within the cgroup's quota), else 0.",
    )
    ibge_base_url: str = IBGE_API
    ibge_source: Literal["api", "snapshot", "auto"] = "auto"
    ibge_connect_timeout_s: float = 5.0
    ibge_read_timeout_s: float = 30.0
    ibge_max_retries: int = Field(5, ge=0)
    ibge_backoff_base_s: float = Field(0.5, ge=0, description="First retry wait (doubles, jittered).")
    ibge_retry_budget_s: float = Field(60.0, gt=0, description="Upper bound on the time spent retrying.")

    # --- embedded local defaults ------------------------------------------------------------
    seed_rows: SeedRows = REAL_COLLECTION_SIZE
    seed: Seed = 20203

    # --- spark ------------------------------------------------------------------------------
    spark_runner: Literal["local", "kubernetes"] = "local"
    spark_master: str = "local[*]"
    spark_remote: SecretStr | None = Field(
        None,
        description="Local mode: the steps run on this running Spark Connect server (the URL `vamosjuntos "
        "spark-server` prints, with its token) instead of a JVM each run starts cold. A secret.",
    )
    spark_class_cache: bool = Field(
        True, description="Local mode: map the JVM class archive `python -m flows.spark.class_cache` built."
    )
    spark_class_cache_dir: str | None = Field(None, description="Where it is kept (~/.cache/vamosjuntos).")
    spark_driver_memory: str = "2g"
    spark_shuffle_partitions: int = Field(8, ge=1)
    spark_image: str = "vamosjuntos/spark:latest"
    k8s_namespace: str = "vamosjuntos"
    k8s_api_url: str | None = Field(None, description="Unset: in-cluster configuration.")
    spark_service_account: str = "spark-driver"
    spark_driver_cpu: str = "1"
    spark_driver_memory_k8s: str = "2g"
    spark_executor_cpu: str = "1"
    spark_executor_memory: str = "2g"
    spark_max_executors: int = Field(4, ge=1)
    spark_job_ttl_s: int = Field(600, ge=0)
    spark_job_deadline_s: int = Field(3600, ge=60)

    # --- data quality -----------------------------------------------------------------------
    max_quarantine_share: float = Field(0.01, ge=0, le=1, description="Gate fails above this share.")

    # --- catalog and queries ----------------------------------------------------------------
    engine: Literal["duckdb", "athena"] = "duckdb"
    answer_engine: Literal["duckdb", "athena"] | None = Field(
        None,
        description="The engine that answers the questions; unset: `engine`. Publishing follows `engine`, so "
        "engine=athena with answer_engine=duckdb declares the Glue tables and answers with DuckDB over the "
        "same consumer zone (e.g. where Athena cannot run).",
    )
    glue_database: str = "vamosjuntos"
    athena_workgroup: str = "vamosjuntos"
    athena_endpoint_url: str | None = None
    glue_endpoint_url: str | None = None

    @field_validator("mongo_uri")
    @classmethod
    def _mongo_uri_is_a_uri(cls, value: SecretStr | None) -> SecretStr | None:
        """Set but empty (`VAMOSJUNTOS_MONGO_URI=` in a .env, or `=$VAR` of a variable not set) is a
        mistake, not a wish for the embedded stand-in: running on generated documents instead of the real
        source would be worse than stopping."""
        if value is not None and not value.get_secret_value().startswith(("mongodb://", "mongodb+srv://")):
            raise ValueError(
                "not a MongoDB URI (mongodb://… or mongodb+srv://…); unset it to use the embedded MongoDB"
            )
        return value

    @model_validator(mode="after")
    def _spark_remote_is_for_local_runs(self) -> Settings:
        """A Spark Connect server runs local steps on a local lake: it reads the lake's paths on its own
        machine, with its own S3 settings, fixed when it started. (Messages never repeat the URL: its
        token.)"""
        if self.spark_remote is None:
            return self
        remote = self.spark_remote.get_secret_value()
        if not remote.startswith("sc://"):
            raise ValueError(
                "VAMOSJUNTOS_SPARK_REMOTE must be a Spark Connect URL: sc://localhost:port/;token=…"
            )
        params = dict(p.split("=", 1) for p in remote.split(";")[1:] if "=" in p)
        host = urlsplit(remote.split(";", 1)[0]).hostname
        if "token" in params and params.get("use_ssl", "").lower() != "true" and host != "localhost":
            raise ValueError(
                "VAMOSJUNTOS_SPARK_REMOTE: with a token, PySpark's client speaks TLS to any host not "
                "spelled `localhost`, and `vamosjuntos spark-server` speaks plain gRPC on the loopback: use "
                "the URL it prints, sc://localhost:PORT/;token=…"
            )
        if self.spark_runner != "local" or self.spark_master.startswith("k8s://"):
            raise ValueError(
                "VAMOSJUNTOS_SPARK_REMOTE is for local runs; on Kubernetes each step is a Job with its own "
                "driver: unset it there."
            )
        if not self.is_local_lake:
            raise ValueError(
                "VAMOSJUNTOS_SPARK_REMOTE needs a local lake (the server reads it on its own machine, with "
                "its own S3 settings): unset it for an s3:// lake."
            )
        return self

    @model_validator(mode="after")
    def _athena_reads_s3(self) -> Settings:
        """Athena reads the consumer zone where Glue says it is: on S3. Said before a run starts, not when
        it publishes."""
        consumer = self.zone_root("consumer")
        if "athena" in (self.engine, self.answer_engine) and not consumer.startswith("s3://"):
            raise ValueError(
                "VAMOSJUNTOS_ENGINE=athena (or VAMOSJUNTOS_ANSWER_ENGINE) needs the consumer zone on S3, "
                "but it is a local folder. Set VAMOSJUNTOS_CONSUMER_ROOT=s3://<consumer bucket> (or "
                "VAMOSJUNTOS_LAKE_ROOT=s3://...), or VAMOSJUNTOS_ENGINE=duckdb to query locally."
            )
        return self

    def zone_root(self, zone: Zone) -> str:
        root = getattr(self, f"{zone}_root") or f"{self.lake_root.rstrip('/')}/{zone}"  # raw_root, …
        return root if "://" in root else str(Path(root).resolve())

    @property
    def is_local_lake(self) -> bool:
        return all("://" not in self.zone_root(z) for z in ZONES)

    @property
    def local_mongo_path(self) -> Path:
        """Where the embedded MongoDB-protocol server keeps its data (under a local lake root)."""
        if "://" in self.lake_root:
            return Path(".vamosjuntos/mongo").resolve()
        return (Path(self.lake_root) / "_mongo").resolve()


def is_ours(exc: ValidationError) -> bool:
    """A refusal of our Settings (Prefect's settings class has the same name)."""
    return exc.title == Settings.__name__ and all(
        not e["loc"] or e["loc"][0] in Settings.model_fields for e in exc.errors()
    )


def invalid_settings(exc: ValidationError) -> str:
    """What is wrong with the settings, one line per variable, named as the user sets it; never the value
    (it may be a secret)."""
    prefix = Settings.model_config.get("env_prefix", "")
    lines = []
    for error in exc.errors():
        message = error["msg"].removeprefix("Value error, ")
        field = ".".join(str(part) for part in error["loc"])
        lines.append(f"  {prefix}{field.upper()}: {message}" if field else f"  {message}")
    return "the settings are not valid (VAMOSJUNTOS_* variables, or a .env file here):\n" + "\n".join(lines)
