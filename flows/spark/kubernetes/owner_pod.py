"""The flow-run pod that starts a Spark Job owns it: when the pod goes, the garbage collector takes it."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from flows.spark.kubernetes.names import OWNER_POD_ENV


@dataclass(frozen=True)
class OwnerPod:
    """The flow-run pod that starts a Spark Job, as the downward API tells it (see OWNER_POD_ENV)."""

    name: str
    uid: str
    namespace: str | None = None

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> OwnerPod | None:
        """The pod this process runs in; None outside a flow-run pod (a laptop, a test, a local run)."""
        env = os.environ if environ is None else environ
        name, uid = env.get(OWNER_POD_ENV["name"]), env.get(OWNER_POD_ENV["uid"])
        if not name or not uid:
            return None
        return cls(name, uid, env.get(OWNER_POD_ENV["namespace"]) or None)

    def reference(self) -> dict[str, Any]:
        # blockOwnerDeletion: a foreground deletion of the pod waits for the Job (and so its pods) to go.
        return {
            "apiVersion": "v1",
            "kind": "Pod",
            "name": self.name,
            "uid": self.uid,
            "blockOwnerDeletion": True,
        }
