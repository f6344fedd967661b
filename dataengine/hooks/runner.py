"""Fire the hooks of a new version: trigger, preflight, launch, ledger. ``fire_hooks`` is the step as a function."""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from so101_dataengine.base.workspace import Workspace
from so101_dataengine.hooks import slurm
from so101_dataengine.hooks.config import HookConfig, HooksFile
from so101_dataengine.hooks.ledger import EVAL_DIR, HookRun, Ledger, now, read_evaluation
from so101_dataengine.hooks.preflight import preflight
from so101_dataengine.hooks.render import VersionEvent, substitute, version_vars

DOWNLOAD_ROOT = Path("~/.cache/dataengine/datasets")
"""Where ``resolve_by_tag`` hooks let lerobot download a version: one directory per (repo id, tag), never shared
between versions (lerobot's own cache is one directory per repo id, whatever the revision)."""


@dataclass
class Launch:
    """What a hook would run for a version: resolved variables, programs, environment, directories."""

    hook: HookConfig
    variables: dict[str, str]
    stages: list[list[str]]
    env: dict[str, str]
    out_dir: Path
    run_dir: Path


def plan(hook: HookConfig, event: VersionEvent, run_id: str, root: Path | None = None) -> Launch:
    """What ``hook`` runs for ``event``. ``root``: the workspace root a relative ``out_dir`` is under (None: the
    default workspace), so runs land in the workspace whatever the current directory."""
    base = version_vars(event, hook.name)
    written = Path(substitute(hook.out_dir, {**hook.vars, **base}, f"hook {hook.name!r} out_dir")).expanduser()
    out_dir = Path(root or Workspace.default().root) / written  # an absolute out_dir replaces the root
    if hook.resolve_by_tag or event.dataset_root is None:
        dataset_root = DOWNLOAD_ROOT.expanduser() / event.repo_id / event.tag
    else:
        dataset_root = event.dataset_root
    variables = {**hook.vars, **base, "out_dir": str(out_dir.resolve()), "dataset_root": str(dataset_root)}
    where = f"hook {hook.name!r}"
    argvs = [*hook.stages[:-1], [*hook.stages[-1], *hook.extra_args]]
    stages = [[substitute(arg, variables, where) for arg in stage] for stage in argvs]
    env = {k: substitute(v, variables, where) for k, v in hook.env.items()}
    run_dir = out_dir.resolve() / "runs" / run_id.rsplit(":", 1)[-1]
    if hook.eval is not None:
        stages.append(eval_stage(hook, variables, run_dir))
    return Launch(hook, variables, stages, env, out_dir.resolve(), run_dir)


def eval_stage(hook: HookConfig, variables: dict[str, str], run_dir: Path) -> list[str]:
    """The program after the hook's own: ``dataengine eval`` of the trained checkpoint into ``RUN_DIR/eval``, run
    where the training ran (same machine, same GPU; a line of the sbatch script for Slurm)."""
    where = f"hook {hook.name!r} eval"
    checkpoint = substitute(hook.eval.checkpoint, variables, f"{where} checkpoint")
    return [variables["python"], "-m", "so101_dataengine.cli", "eval", "--policy", checkpoint, "--n", str(hook.eval.n),
            "--seed", str(hook.eval.seed), "--out", str(run_dir / EVAL_DIR),
            *(substitute(arg, variables, f"{where} args") for arg in hook.eval.args)]


def triggered(hook: HookConfig, event: VersionEvent) -> bool:
    return hook.repo_id == event.repo_id and event.new_episodes >= hook.min_new_episodes


def _run_command(launch: Launch, record: HookRun, ledger: Ledger) -> HookRun:
    env = {**os.environ, **launch.env}
    exit_status, failed = 0, ""
    with open(record.log, "ab") as log:
        for index, stage in enumerate(launch.stages):
            log.write(f"$ {' '.join(stage)}\n".encode())
            log.flush()
            try:
                exit_status = subprocess.run(stage, stdout=log, stderr=subprocess.STDOUT, env=env,
                                             cwd=launch.run_dir).returncode
            except OSError as error:  # program not found / not executable
                log.write(f"cannot start {stage[0]}: {error}\n".encode())
                exit_status = 127
            if exit_status != 0:
                is_eval = launch.hook.eval is not None and index == len(launch.stages) - 1
                failed = "the evaluation" if is_eval else stage[0] if len(launch.stages) == 1 else "a stage"
                break
    record.end, record.exit_status = now(), exit_status
    record.status = "succeeded" if exit_status == 0 else "failed"
    if exit_status != 0:
        record.reason = f"{failed} exited with {exit_status}"
    ledger.append(record)
    read_evaluation(record)
    return record


def render_slurm_script(launch: Launch) -> str:
    return slurm.render_script(launch.hook, launch.variables, launch.stages, launch.env, launch.run_dir, Path.cwd())


def check_hook(hook: HookConfig, repo_id: str | None = None, root: Path | None = None) -> None:
    """Everything about ``hook`` that can be wrong before a version exists: its templates' variables, its sbatch
    script. Renders against a stand-in version (writes nothing); raises the error its first launch would."""
    probe = VersionEvent(repo_id or hook.repo_id, "ds-0001-000000000000", 1, 1, 0, None)
    launch = plan(hook, probe, f"{probe.repo_id}@{probe.tag}:{hook.name}:check", root)
    if hook.kind == "slurm":
        render_slurm_script(launch)


def launch_hook(hook: HookConfig, event: VersionEvent, ledger: Ledger, manual: bool = False,
                root: Path | None = None) -> HookRun | None:
    """Preflight, then run (command: until it ends) or submit (slurm); every outcome goes into the ledger.

    Unless ``manual``, returns None without launching if the hook already fired for this version (checked under
    the ledger's lock, so concurrent publishes cannot both launch it). ``root``: as for :func:`plan`."""
    with ledger.locked():
        if not manual and ledger.fired(event.repo_id, event.tag, hook.name) is not None:
            return None
        run_id = ledger.next_run_id(event.repo_id, event.tag, hook.name)
        launch = plan(hook, event, run_id, root)
        script_text = render_slurm_script(launch) if hook.kind == "slurm" else None  # a bad value: nothing written
        record = HookRun(run_id=run_id, repo_id=event.repo_id, tag=event.tag, hook=hook.name, kind=hook.kind,
                         status="running", start=now(), run_dir=str(launch.run_dir), manual=manual)
        reason = preflight(hook, launch.out_dir, {**os.environ, **launch.env})
        if reason:
            record.status, record.end, record.reason = "preflight_failed", now(), reason
            ledger.append(record)
            return record
        launch.run_dir.mkdir(parents=True, exist_ok=True)
        record.log = str(launch.run_dir / ("hook.log" if hook.kind == "command" else slurm.LOG))
        if hook.kind == "slurm":
            script = launch.run_dir / "job.sbatch"
            script.write_text(script_text)
            try:
                record.job_ids = slurm.submit(hook, script, launch.run_dir)
                record.status = "submitted"
            except Exception as error:
                record.status, record.end, record.reason = "failed", now(), str(error)
            ledger.append(record)
            return record
        ledger.append(record)  # "running" is visible to `hooks status` while it runs
    return _run_command(launch, record, ledger)


def fire_hooks(hooks: HooksFile, event: VersionEvent, say: Callable[[str], None] = print) -> list[HookRun]:
    """Launch every hook this version triggers and that has not fired for it yet (a retried publish fires none)."""
    ledger = Ledger(hooks.ledger)
    runs = []
    for hook in hooks.hooks:
        if not triggered(hook, event):
            continue
        say(f"hook {hook.name}: {event.repo_id} {event.tag} ({hook.kind}) ...")
        run = launch_hook(hook, event, ledger, root=hooks.root)
        if run is None:
            say(f"hook {hook.name}: already fired for {event.tag}; 'dataengine hooks run --version "
                f"{event.repo_id}@{event.tag} --hook {hook.name}' fires it again")
            continue
        runs.append(run)
    return runs
