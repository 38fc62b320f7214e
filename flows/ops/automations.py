"""The project's Prefect automations (flows/ops/automations.yaml), applied idempotently by name.

    python -m flows.ops.automations webhook-block --url https://hooks.example.com/…   # once: where alerts go
    python -m flows.ops.automations apply                                              # after every change

`prefect automation create --from-file` creates a second copy on every call; `apply` creates what is
missing and updates what exists (matched by name), so applying twice leaves one automation of each name.
Both talk to the server in PREFECT_API_URL.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from uuid import UUID

import yaml
from prefect.client.orchestration import SyncPrefectClient, get_client
from prefect.events.schemas.automations import AutomationCore
from prefect.exceptions import ObjectNotFound
from prefect.settings import get_current_settings

from flows.errors import ConfigurationError

DECLARED = Path(__file__).with_name("automations.yaml")
DEFAULT_BLOCK = "custom-webhook/vamosjuntos-alerts"  # <block type slug>/<block name>


@dataclass(frozen=True)
class Applied:
    name: str
    id: UUID
    action: str  # created | updated
    duplicates_removed: int = 0


def declared(path: Path = DECLARED, notify_block_id: UUID | None = None) -> list[AutomationCore]:
    """The automations the file declares; a `send-notification` naming no block notifies `notify_block_id`."""
    data = yaml.safe_load(path.read_text())
    specs: list[dict[str, Any]] = data["automations"] if isinstance(data, dict) else data
    automations = []
    for spec in specs:
        for action in spec.get("actions", []):
            if action.get("type") == "send-notification" and "block_document_id" not in action:
                if notify_block_id is None:
                    raise ConfigurationError(f"automation {spec.get('name')!r} notifies: give a block")
                action["block_document_id"] = str(notify_block_id)
        automations.append(AutomationCore.model_validate(spec))
    return automations


def block_id(client: SyncPrefectClient, block: str) -> UUID:
    """The id of the block document `<block type slug>/<name>`, or a clear error naming how to create it."""
    slug, sep, name = block.partition("/")
    if not sep or not slug or not name:
        raise ConfigurationError(f"block {block!r} is not written <type slug>/<name>, e.g. {DEFAULT_BLOCK}")
    try:
        return client.read_block_document_by_name(name, block_type_slug=slug, include_secrets=False).id
    except ObjectNotFound:
        raise ConfigurationError(
            f"no {slug} block named {name!r} on {client.api_url}: create it first "
            "(python -m flows.ops.automations webhook-block --url …, or the UI's Blocks page)"
        ) from None


def apply(
    client: SyncPrefectClient, path: Path = DECLARED, block: str | None = DEFAULT_BLOCK
) -> list[Applied]:
    """Create each declared automation, or update the one of its name; extra copies of a name are deleted."""
    automations = declared(path, block_id(client, block) if block else None)
    applied = []
    for automation in automations:
        existing = client.read_automations_by_name(automation.name)  # newest first
        if not existing:
            applied.append(Applied(automation.name, client.create_automation(automation), "created"))
            continue
        keep, *extra = existing
        client.update_automation(keep.id, automation)
        for duplicate in extra:  # e.g. left by `prefect automation create --from-file` run twice
            client.delete_automation(duplicate.id)
        applied.append(Applied(automation.name, keep.id, "updated", len(extra)))
    return applied


def save_webhook_block(url: str, name: str) -> UUID:
    """A Custom Webhook notification block that POSTs JSON {text, subject, body} (`text` as Slack's)."""
    from prefect.blocks.notifications import CustomWebhookNotificationBlock

    block = CustomWebhookNotificationBlock(
        name=name,
        url=url,
        json_data={"text": "{{subject}}\n{{body}}", "subject": "{{subject}}", "body": "{{body}}"},
    )
    return block.save(name, overwrite=True)


def _server_url() -> str:
    url = get_current_settings().api.url
    if not url:
        raise ConfigurationError(
            "PREFECT_API_URL is not set: automations live on a Prefect server; point PREFECT_API_URL at it"
        )
    return url


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m flows.ops.automations", description="Prefect alerts.")
    commands = parser.add_subparsers(dest="command", required=True)
    apply_cmd = commands.add_parser("apply", help="create or update the declared automations (by name)")
    apply_cmd.add_argument("--file", type=Path, default=DECLARED, help="declarations (default: %(default)s)")
    apply_cmd.add_argument(
        "--block", default=DEFAULT_BLOCK, help="notification block, <type slug>/<name> (default: %(default)s)"
    )
    hook = commands.add_parser("webhook-block", help="save the Custom Webhook block the alerts post to")
    hook.add_argument("--url", required=True, help="where to POST the alert (JSON: text, subject, body)")
    hook.add_argument("--name", default=DEFAULT_BLOCK.partition("/")[2], help="name (default: %(default)s)")
    args = parser.parse_args(argv)
    try:
        server = _server_url()
        if args.command == "webhook-block":
            save_webhook_block(args.url, args.name)
            print(f"saved custom-webhook/{args.name} on {server}")  # not the URL: it may hold a token
            return 0
        with get_client(sync_client=True) as client:
            for a in apply(client, args.file, args.block):
                extra = f", {a.duplicates_removed} duplicate(s) removed" if a.duplicates_removed else ""
                print(f"{a.action} {a.name} ({a.id}){extra}")
        print(f"on {server}")
        return 0
    except ConfigurationError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
