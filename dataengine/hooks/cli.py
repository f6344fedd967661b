"""``dataengine hooks status`` and ``dataengine hooks run --version OWNER/NAME@TAG [--dry-run]``."""

from __future__ import annotations

import argparse
import shlex
import time
from pathlib import Path

from so101_dataengine.base.errors import DataEngineError


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("hooks", help="retrain hooks fired per dataset version (dataengine.toml)")
    p.add_argument("--config", type=Path, default=Path("dataengine.toml"), help="project config (./dataengine.toml)")
    actions = p.add_subparsers(dest="hooks_command", required=True)
    status = actions.add_parser("status", help="the ledger: every hook run, its version, times, status, jobs, "
                                               "evaluated success, log")
    status.set_defaults(run=_run_status)
    run = actions.add_parser("run", help="fire hooks for a published version by hand (again)")
    run.add_argument("--version", required=True, help="OWNER/NAME@TAG (or @v3.0 for the newest)")
    run.add_argument("--hook", default=None, help="only this hook (default: every hook of the repo)")
    run.add_argument("--registry", type=Path, default=None)
    run.add_argument("--dry-run", action="store_true", help="print the commands / sbatch scripts, launch nothing")
    run.set_defaults(run=_run_hooks)


def _load(args: argparse.Namespace):
    from so101_dataengine.hooks.config import load_hooks

    return load_hooks(args.config, args.workspace)


def _run_hooks(args: argparse.Namespace) -> None:
    from so101_dataengine.base.preflight import check_repo_id
    from so101_dataengine.hooks.fire import describe_run
    from so101_dataengine.hooks.ledger import Ledger
    from so101_dataengine.hooks.render import event_from_registry
    from so101_dataengine.hooks.runner import launch_hook, plan, render_slurm_script, triggered
    from so101_dataengine.publish.cli import registry_of

    hooks = _load(args)
    if "@" not in args.version:
        raise DataEngineError(f"--version {args.version!r}: write OWNER/NAME@TAG (see 'dataengine versions')")
    repo_id, ref = args.version.rsplit("@", 1)
    check_repo_id(repo_id)
    event = event_from_registry(registry_of(args), repo_id, ref)
    selected = [h for h in hooks.hooks if (h.name == args.hook if args.hook else triggered(h, event))]
    if not selected:
        raise DataEngineError(f"no hook {'named ' + args.hook if args.hook else 'for ' + repo_id} in {args.config}")
    for hook in selected:
        if args.dry_run:
            launch = plan(hook, event, f"{repo_id}@{event.tag}:{hook.name}:dry-run", hooks.root)
            print(f"# hook {hook.name} ({hook.kind}) for {repo_id} {event.tag}")
            print(render_slurm_script(launch) if hook.kind == "slurm" else "\n".join(map(shlex.join, launch.stages)))
            continue
        print(describe_run(launch_hook(hook, event, Ledger(hooks.ledger), manual=True, root=hooks.root)))


def _run_status(args: argparse.Namespace) -> None:
    from rich.console import Console
    from rich.table import Table

    from so101_dataengine.hooks.ledger import Ledger

    runs = Ledger(_load(args).ledger).runs()
    if not runs:
        print("no hook runs yet")
        return
    table = Table()
    for column in ("version", "hook", "start", "end", "status", "exit", "jobs", "success (95 % CI)", "log / reason"):
        table.add_column(column, no_wrap=column == "success (95 % CI)")
    stamp = lambda t: time.strftime("%m-%d %H:%M:%S", time.localtime(t)) if t else "-"  # noqa: E731
    for r in runs:
        table.add_row(f"{r.repo_id}@{r.tag}", r.hook + (" (manual)" if r.manual else ""), stamp(r.start), stamp(r.end),
                      r.status, "-" if r.exit_status is None else str(r.exit_status), ",".join(r.job_ids) or "-",
                      r.success(), r.reason or r.log)
    Console(width=200).print(table)
