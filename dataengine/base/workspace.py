"""The workspace: where the engine keeps what it makes by default (training runs, rollout runs, the registry of
published versions) and its index of trained policies, so ``--policy act`` means "the newest ACT checkpoint the
engine trained".

Default ``./outputs``; override with ``--workspace`` or ``DATAENGINE_WORKSPACE``. The registry is
``<workspace>/registry`` unless ``--registry`` or ``DATAENGINE_REGISTRY`` puts it elsewhere (a shared disk), so
``--workspace`` moves every command's outputs, publish's and cycle's included.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

from so101_dataengine.base.errors import DataEngineError

POLICY_INDEX = "policies.jsonl"


@dataclass(frozen=True)
class Workspace:
    root: Path

    @classmethod
    def default(cls) -> "Workspace":
        return cls(Path(os.environ.get("DATAENGINE_WORKSPACE", "outputs")))

    @classmethod
    def from_option(cls, path: Path | None) -> "Workspace":
        """The workspace of ``--workspace PATH``, else the default."""
        return cls(Path(path)) if path else cls.default()

    def registry(self, override: Path | None = None) -> Path:
        """The local registry's root: ``override`` (``--registry``), else ``$DATAENGINE_REGISTRY``, else
        ``<workspace>/registry``."""
        if override:
            return Path(override)
        if "DATAENGINE_REGISTRY" in os.environ:
            return Path(os.environ["DATAENGINE_REGISTRY"])
        return self.root / "registry"

    def new_train_dir(self, policy: str) -> Path:
        return self.root / "train" / f"{policy}-{time.strftime('%Y%m%d-%H%M%S')}"

    def new_rollout_dir(self) -> Path:
        return self.root / "rollouts" / time.strftime("run-%Y%m%d-%H%M%S")

    def record_policy(self, kind: str, checkpoint: Path) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        line = json.dumps({"kind": kind, "checkpoint": str(Path(checkpoint).resolve()), "time": time.time()})
        with open(self.root / POLICY_INDEX, "a") as f:
            f.write(line + "\n")

    def newest_policy(self, kind: str) -> Path:
        index = self.root / POLICY_INDEX
        entries = [json.loads(line) for line in index.read_text().splitlines() if line] if index.is_file() else []
        existing = [e for e in entries if e["kind"] == kind and Path(e["checkpoint"]).is_dir()]
        if not existing:
            raise DataEngineError(
                f"no trained {kind} policy in workspace {self.root}: run 'dataengine train --policy {kind} ...' "
                "or pass --policy PATH to a checkpoint's pretrained_model directory"
            )
        return Path(max(existing, key=lambda e: e["time"])["checkpoint"])
