"""Template variables of a version, and ``{name}`` substitution in argv items and sbatch scripts.

``{name}`` is replaced; bash's ``${NAME}`` is left alone, so scripts need no escaping. An unknown name is an
error naming the known ones (a typo must not launch a run with a literal ``{stpes}``).
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from pathlib import Path

from so101_dataengine.base.errors import DataEngineError

_PLACEHOLDER = re.compile(r"(?<!\$)\{(\w+)\}")


@dataclass(frozen=True)
class VersionEvent:
    """A published version, as the hooks see it."""

    repo_id: str
    tag: str
    sequence: int
    episodes: int
    previous_episodes: int
    dataset_root: Path | None
    """The version's directory in the local registry; None when it is only on the Hub."""

    @property
    def new_episodes(self) -> int:
        return self.episodes - self.previous_episodes


def event_from_registry(registry, repo_id: str, ref: str) -> VersionEvent:
    """A version of the local registry (``ref``: tag, ``v3.0`` or number), e.g. for ``hooks run``."""
    version = registry.resolve(repo_id, ref)
    parent = registry.resolve(repo_id, version.parent) if version.parent else None
    return VersionEvent(repo_id, version.tag, version.sequence, version.total_episodes,
                        parent.total_episodes if parent else 0, registry.version_path(repo_id, version.tag))


def event_from_publish(result) -> VersionEvent:
    """The version a ``publish()`` call made (or found already published)."""
    return VersionEvent(result.repo_id, result.tag, result.manifest.sequence, result.manifest.total_episodes,
                        result.previous_episodes, Path(result.location) if result.target == "local" else None)


def version_vars(event: VersionEvent, hook_name: str) -> dict[str, str]:
    return {"repo_id": event.repo_id, "tag": event.tag, "sequence": str(event.sequence),
            "episodes": str(event.episodes), "new_episodes": str(event.new_episodes), "hook": hook_name,
            "python": sys.executable, "owner": event.repo_id.split("/")[0], "name": event.repo_id.split("/")[1]}


def substitute(text: str, variables: dict[str, str], where: str) -> str:
    def replace(match: re.Match) -> str:
        if match.group(1) not in variables:
            raise DataEngineError(f"{where}: unknown variable {{{match.group(1)}}}; known: {', '.join(sorted(variables))}")
        return variables[match.group(1)]

    return _PLACEHOLDER.sub(replace, text)
