"""The ledger of hook runs: an append-only JSON-lines file of events, folded per run.

A run is (repo id, version tag, hook name, attempt); its events (``started``, ``finished``, ``preflight_failed``,
``submitted``) carry start and end times, exit status, reason, log path and Slurm job ids. Appends happen under a
lock, and "has this hook fired for this version?" is answered under the same lock, so a publish retried (or two
publishes at once) fires each hook once per version.

A hook with ``eval = {...}`` ends with an evaluation stage that writes ``RUN_DIR/eval/eval.json``
(``dataengine eval``'s one result file); reading the runs folds its success rate, 95 % interval and episode count
into the run (``HookRun.evaluation``), the same way a Slurm job's exit status is read from its run dir.
"""

from __future__ import annotations

import contextlib
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from so101_dataengine.base.errors import DataEngineError
from so101_dataengine.base.files import reading
from so101_dataengine.base.locks import exclusive_lock

EVAL_DIR = "eval"
"""The evaluation stage's ``--out``, inside the run's directory."""


@dataclass
class HookRun:
    run_id: str
    repo_id: str
    tag: str
    hook: str
    kind: str
    status: str
    """running, succeeded, failed, preflight_failed, submitted (slurm), or the job's end state from its run dir."""
    start: float
    end: float | None = None
    exit_status: int | None = None
    reason: str = ""
    log: str = ""
    run_dir: str = ""
    job_ids: list[str] = field(default_factory=list)
    manual: bool = False
    evaluation: dict | None = None
    """``{"success_rate", "ci95": [lo, hi], "successes", "episodes", "seed", "eval": path}`` once the run's evaluation
    stage wrote ``RUN_DIR/eval/eval.json``; None before (or without ``eval``)."""

    def success(self) -> str:
        """``81.0 % [75.0-85.9], n=200``, or ``-`` when not evaluated."""
        return format_success(self.evaluation)


class Ledger:
    def __init__(self, path: Path):
        """Refuses a path that exists but is no file: ``runs()`` would read a directory as "no runs yet" and
        ``append()`` fail on it with a traceback, after the hook ran."""
        self.path = Path(path)
        if self.path.exists() and not self.path.is_file():
            raise DataEngineError(f"the hook ledger {self.path} is not a file: remove or rename it, or point "
                                  "ledger = ... in dataengine.toml at a file")

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        with exclusive_lock(self.path.with_name(self.path.name + ".lock"), "hook launch",
                            "the ledger's path (ledger = ... in dataengine.toml)", on_wait=lambda _: None):
            yield

    def append(self, run: HookRun) -> None:
        """One event, one line. After a line torn by a crash (no newline at the end) the event starts a new line,
        so it is never glued onto the torn one."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a+b") as f:
            torn = f.tell() > 0 and (f.seek(-1, 2), f.read(1))[1] != b"\n"
            f.write((b"\n" if torn else b"") + json.dumps(run.__dict__).encode() + b"\n")

    def runs(self) -> list[HookRun]:
        """The latest state of every run, in start order; a Slurm job's end is read from its run dir. A line that
        is not a whole event (torn by a crash, edited by hand) is one error line naming it."""
        if not self.path.is_file():
            return []
        fix = ("delete that line (the ledger keeps each run's other events; 'dataengine hooks run' fires a hook "
               "again)")
        with reading(self.path, fix, "not UTF-8 text"):
            lines = self.path.read_text().splitlines()
        latest: dict[str, HookRun] = {}
        for number, line in enumerate(lines, start=1):
            if line.strip():
                with reading(self.path, fix, f"line {number} is not a JSON event"):
                    event = json.loads(line)
                try:
                    run = HookRun(**event)
                except TypeError:  # not an object, or not a hook run's fields
                    raise DataEngineError(f"{self.path} is damaged (line {number} is not a hook run event): "
                                          f"{fix}") from None
                latest[run.run_id] = run
        runs = sorted(latest.values(), key=lambda r: r.start)
        for run in runs:
            _read_job_end(run)
            read_evaluation(run)
        return runs

    def evaluated(self, repo_id: str, tag: str) -> dict[str, HookRun]:
        """Per hook name, its newest evaluated run on this version (manual re-runs included)."""
        return {r.hook: r for r in self.runs() if (r.repo_id, r.tag) == (repo_id, tag) and r.evaluation}

    def fired(self, repo_id: str, tag: str, hook: str) -> HookRun | None:
        return next((r for r in self.runs() if (r.repo_id, r.tag, r.hook) == (repo_id, tag, hook)), None)

    def next_run_id(self, repo_id: str, tag: str, hook: str) -> str:
        attempts = sum(1 for r in self.runs() if (r.repo_id, r.tag, r.hook) == (repo_id, tag, hook))
        return f"{repo_id}@{tag}:{hook}:{attempts + 1}"


def _read_job_end(run: HookRun) -> None:
    """A Slurm job writes ``exit_status`` into its run dir when it ends (the sbatch script's EXIT trap)."""
    marker = Path(run.run_dir) / "exit_status" if run.run_dir else None
    if run.status == "submitted" and marker is not None and marker.is_file():
        text = marker.read_text(errors="replace").strip()
        run.exit_status = int(text) if text.lstrip("-").isdigit() else -1  # a damaged marker: the job failed
        run.end = marker.stat().st_mtime
        run.status = "succeeded" if run.exit_status == 0 else "failed"


def read_evaluation(run: HookRun) -> None:
    """``dataengine eval`` writes ``eval.json`` atomically, at its end: present means the evaluation is complete."""
    path = Path(run.run_dir) / EVAL_DIR / "eval.json" if run.run_dir else None
    if path is None or not path.is_file():
        return
    try:
        result = json.loads(path.read_text())
        policy = result["policies"][0]
        run.evaluation = {"success_rate": policy["success_rate"], "ci95": list(policy["ci95"]),
                          "successes": policy["successes"], "episodes": policy["episodes"],
                          "seed": result.get("seed"), "eval": str(path)}
    except (ValueError, KeyError, IndexError, TypeError):
        run.evaluation = None  # not an eval.json of this schema: shown as not evaluated


def format_success(evaluation: dict | None) -> str:
    if not evaluation:
        return "-"
    low, high = evaluation["ci95"]
    return f"{100 * evaluation['success_rate']:.1f} % [{100 * low:.1f}-{100 * high:.1f}], n={evaluation['episodes']}"


def now() -> float:
    return time.time()
