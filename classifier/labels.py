"""Human labels: a plain JSON-lines file, one label per line, keyed by run id and episode id.

```
{"run_id": "3f2a...", "episode_id": 12, "success": false, "source": "human", "by": "ana", "time": 1764000000.0, "run_dir": "/data/rollouts/r1"}
```
The run id is the episode store's ``manifest.json`` ``run_id`` (stable if the directory moves; ``run_dir`` is a
hint for people). The file only grows: relabelling appends a line and the last line for an episode wins, so no
judgement is ever lost.

This module is the file's one writer: ``dataengine classifier label`` and the review page
(``so101_dataengine.review.labelbook``) both write through :func:`append_labels` / :func:`remove_label`. Every write
is a read-modify-write of the whole file under an exclusive ``flock`` on ``.<name>.lock`` beside it
(``so101_dataengine.base.locks``; not on the file itself, which each write replaces by a rename) and lands
atomically (``write_atomic``), so two writers at once (the page and the CLI, two CLIs, two pages) never start from
the same old file and drop each other's lines, a writer that finds the lock held waits for it, and a crash leaves
the old file or the new one. The kernel releases the lock of a process that dies.
"""

from __future__ import annotations

import contextlib
import json
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterator

from so101_dataengine.base.errors import DataEngineError
from so101_dataengine.base.files import reading, write_atomic
from so101_dataengine.base.locks import exclusive_lock
from so101_dataengine.formats.store import EpisodeStore

HUMAN = "human"


class LabelConflict(DataEngineError):
    """An undo of a label that is no longer its episode's current one (a newer label must not be lost)."""


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
    path = check_labels_path(path)
    if not path.is_file():
        raise DataEngineError(f"labels file {path} does not exist: create it with 'dataengine classifier label'")
    return _parse(path, _text(path))


def check_labels_path(path: Path) -> Path:
    """``path`` unless it is a directory: a labels file is written by renaming a new file over it, which a
    directory refuses only after the lock file is made beside it (and reading one says nothing useful)."""
    path = Path(path)
    if path.is_dir():
        raise DataEngineError(f"--labels {path} is a directory: pass a file path such as {path}/labels.jsonl")
    return path


def _text(path: Path) -> str:
    with reading(path, "fix or remove the labels file", "not UTF-8 text"):
        return path.read_text()


def _parse(path: Path, text: str) -> dict[tuple[str, int], Label]:
    labels: dict[tuple[str, int], Label] = {}
    for number, line in enumerate(text.splitlines(), start=1):
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


def parse_episode_ids(text: str) -> list[range]:
    """``"0,3-5"`` -> ``[range(0, 1), range(3, 6)]``: ranges, not ids, so that a typo such as ``0-99999999999`` is
    checked against the run (:func:`add_labels`) before a hundred billion ids fill the memory."""
    spans: list[range] = []
    for part in text.split(","):
        first, _, last = part.strip().partition("-")
        try:
            span = range(int(first), int(last or first) + 1)
        except ValueError:
            raise DataEngineError(f"--episodes {text!r}: use ids and ranges like 0,3-5") from None
        if not span:
            raise DataEngineError(f"--episodes {text!r}: the range {part.strip()} ends before it starts: "
                                  "write FIRST-LAST with FIRST <= LAST, e.g. 3-5")
        spans.append(span)
    return spans


def episodes_of_run(spans: list[range], store: EpisodeStore) -> list[int]:
    """The ids of ``spans``, every one an episode of the run; a range past the run's last id is refused before it
    is expanded."""
    known = set(store.completed_ids())
    highest = max(known, default=-1)
    beyond = [span[-1] for span in spans if span[-1] > highest]
    ids = [] if beyond else [i for span in spans for i in span]
    unknown = beyond or [i for i in ids if i not in known]
    if unknown:
        raise DataEngineError(f"run {store.root} has no episode {', '.join(map(str, unknown[:5]))} "
                              f"(it has {len(known)} episodes, ids {min(known, default=0)}-{highest}): "
                              "pass --episodes among those")
    return ids


def add_labels(path: Path, run_dir: Path, episodes: list[range], success: bool, by: str | None) -> list[Label]:
    """Append labels for episodes of a run (which must exist in it), as ``dataengine classifier label`` does."""
    store = EpisodeStore.open(run_dir)
    episode_ids = episodes_of_run(episodes, store)
    now = time.time()
    new = [Label(store.manifest["run_id"], i, success, HUMAN, by, now, str(Path(run_dir).resolve()))
           for i in episode_ids]
    append_labels(path, new)
    return new


def _say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def lock_path(path: Path) -> Path:
    """The lock file of the labels file ``path``: ``.<name>.lock`` beside it."""
    return Path(path).with_name(f".{Path(path).name}.lock")


@contextlib.contextmanager
def labels_lock(path: Path, on_wait: Callable[[str], None] = _say) -> Iterator[None]:
    """Hold the labels file's lock for the block; if another process holds it, say so (``on_wait``) and wait."""
    with exclusive_lock(lock_path(path), f"write to the labels file {path}", "--labels", on_wait=on_wait):
        yield


def append_labels(path: Path, labels: list[Label], on_wait: Callable[[str], None] = _say) -> None:
    """Add ``labels`` as the file's last lines (the file and its directory are created if missing)."""
    _rewrite(Path(path), lambda lines: lines + [json.dumps(asdict(label)) for label in labels], on_wait)


def remove_label(path: Path, label: Label, on_wait: Callable[[str], None] = _say) -> Label | None:
    """Remove ``label``'s line if it is still its episode's last one (undo); the episode's label after that.

    Raises :class:`LabelConflict` if the episode was labelled again since: the newer judgement stays."""
    key, wanted = (label.run_id, label.episode_id), asdict(label)

    def without(lines: list[str]) -> list[str]:
        last = next((i for i in range(len(lines) - 1, -1, -1) if _episode(lines[i]) == key), None)
        if last is None or json.loads(lines[last]) != wanted:
            raise LabelConflict(f"episode {label.episode_id} was labelled again since (another tab or reviewer): "
                                "that newer label is kept; reload to see it")
        return lines[:last] + lines[last + 1:]

    return _rewrite(Path(path), without, on_wait).get(key)


def _rewrite(path: Path, change: Callable[[list[str]], list[str]],
             on_wait: Callable[[str], None]) -> dict[tuple[str, int], Label]:
    """Read the file's lines, ``change`` them and write the result atomically, all under the lock (so no other
    writer's line can fall between the read and the write); the labels now current."""
    with labels_lock(check_labels_path(path), on_wait):
        text = _text(path) if path.is_file() else ""
        _parse(path, text)  # never build on a file the trainer could not read
        lines = change([line for line in text.splitlines() if line.strip()])
        write_atomic(path, "".join(line + "\n" for line in lines))
        return _parse(path, "\n".join(lines))


def _episode(line: str) -> tuple[str, int]:
    raw = json.loads(line)
    return str(raw["run_id"]), raw["episode_id"]
