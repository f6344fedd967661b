"""Publishing fires hooks: after ``dataengine publish`` or a cycle's publish, run the version's hooks and say
what each did, in one line per run."""

from __future__ import annotations

from pathlib import Path

from so101_dataengine.hooks.config import load_hooks
from so101_dataengine.hooks.render import event_from_publish
from so101_dataengine.hooks.runner import fire_hooks


def fire_and_report(config_path: Path, result, workspace: Path | None = None) -> None:
    """After ``dataengine publish``: fire the version's hooks and print one line per run."""
    for run in fire_hooks(load_hooks(config_path, workspace), event_from_publish(result)):
        print(describe_run(run))


def describe_run(run) -> str:
    extra = f" jobs {','.join(run.job_ids)}" if run.job_ids else ""
    reason = f": {run.reason}" if run.reason else ""
    evaluated = f", evaluated {run.success()}" if run.evaluation else ""
    return f"hook {run.hook} {run.tag}: {run.status}{evaluated}{extra}{reason} (log {run.log or '-'})"
