"""Human labels: a plain JSON-lines file, one label per line, keyed by run id and episode id.

```
{"run_id": "3f2a...", "episode_id": 12, "success": false, "source": "human", "by": "ana", "time": 1764000000.0, "run_dir": "/data/rollouts/r1"}
```
The run id is the episode store's ``manifest.json`` ``run_id`` (stable if the directory moves; ``run_dir`` is a
hint for people). The file only grows: relabelling appends a line and the last line for an episode wins, so no
judgement is ever lost. A review page comes later; it will write the same lines.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from so101_dataengine.base.errors import DataEngineError
from so101_dataengine.base.files import write_atomic
from so101_dataengine.formats.store import EpisodeStore

HUMAN = "human"


@dataclass(frozen=True)
class Label:
    run_id: str
    episode_id: int
    success: bool
    source: str = HUMAN
    by: str | None = None
    time: float = 0.0
    run_dir: str | None = None


def read_labels(path: Path) -> dict[tuple[str, int], Label]:
    """The current label of every labelled episode (the last line for it wins)."""
    path = Path(path)
    if not path.is_file():
        raise DataEngineError(f"labels file {path} does not exist: create it with 'dataengine classifier label'")
    labels: dict[tuple[str, int], Label] = {}
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            raw = json.loads(line)
            if not isinstance(raw.get("success"), bool):  # bool("no") is True: only JSON true / false is a verdict
                raise ValueError(f"success must be true or false, got {json.dumps(raw.get('success'))}")
            if isinstance(raw.get("episode_id"), bool) or not isinstance(raw.get("episode_id"), int):
                raise ValueError(f"episode_id must be an integer, got {json.dumps(raw.get('episode_id'))}")
            label = Label(run_id=str(raw["run_id"]), episode_id=raw["episode_id"], success=raw["success"],
                          source=str(raw.get("source", HUMAN)), by=raw.get("by"), time=float(raw.get("time", 0.0)),
                          run_dir=raw.get("run_dir"))
        except (json.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError) as error:
            raise DataEngineError(f"{path} line {number} is not a label ({type(error).__name__}: {error}): "
                                  f'expected {{"run_id": ..., "episode_id": N, "success": true|false}}') from None
        labels[(label.run_id, label.episode_id)] = label
    return labels


def parse_episode_ids(text: str) -> list[int]:
    """``"0,3-5"`` -> ``[0, 3, 4, 5]``."""
    ids: list[int] = []
    try:
        for part in text.split(","):
            first, _, last = part.strip().partition("-")
            ids.extend(range(int(first), int(last or first) + 1))
    except ValueError:
        raise DataEngineError(f"--episodes {text!r}: use ids and ranges like 0,3-5") from None
    return ids


def add_labels(path: Path, run_dir: Path, episode_ids: list[int], success: bool, by: str | None) -> list[Label]:
    """Append labels for episodes of a run (which must exist in it); the file is rewritten atomically."""
    store = EpisodeStore.open(run_dir)
    run_id = store.manifest["run_id"]
    known = set(store.completed_ids())
    unknown = [i for i in episode_ids if i not in known]
    if unknown:
        raise DataEngineError(f"run {run_dir} has no episode {', '.join(map(str, unknown[:5]))} "
                              f"(it has {len(known)} episodes, ids {min(known, default=0)}-{max(known, default=-1)})")
    now = time.time()
    new = [Label(run_id, i, success, HUMAN, by, now, str(Path(run_dir).resolve())) for i in episode_ids]
    path = Path(path)
    old = path.read_text() if path.is_file() else ""
    if old and not old.endswith("\n"):
        old += "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, old + "".join(json.dumps(asdict(label)) + "\n" for label in new))
    return new
