"""The Glue tables as a `publish` run shows them: a log line per table, the `glue-tables` table artifact and
the `glue-ddl` Markdown artifact (the same declarations as Athena DDL, docs/cloud-query.md)."""

from __future__ import annotations

from typing import Any

from prefect import get_run_logger
from prefect.artifacts import create_markdown_artifact, create_table_artifact

from flows import catalog
from flows.lake import Lake
from flows.settings import Settings


def glue_artifacts(settings: Settings, lake: Lake, tables: list[dict[str, Any]]) -> None:
    """In a flow run: what publishing declared in the Glue Data Catalog."""
    for t in tables:
        get_run_logger().info("%s %s at %s", t["action"], t["table"], t["location"])
    create_table_artifact(
        key="glue-tables", table=tables, description=f"Glue Data Catalog tables in {settings.glue_database}"
    )
    create_markdown_artifact(
        key="glue-ddl",
        markdown=catalog.describe(catalog.table_specs(lake), settings.glue_database),
        description="The Glue declarations as Athena DDL",
    )
