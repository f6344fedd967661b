"""The ``slurm`` kind: an sbatch script rendered from a template, submitted with ``sbatch``.

With two or more partitions the users' habit is built in: the same job goes to every partition, held; the job
ids are written next to the script; the jobs are released; the first one to start takes the run directory's
``race_winner`` (an atomic ``mkdir`` on the shared filesystem), cancels the others with ``scancel`` and runs, and
any other that started anyway stands down without running anything.
"""

from __future__ import annotations

import shlex
import subprocess
from pathlib import Path

from dataengine.errors import DataEngineError
from dataengine.hooks.config import TEMPLATES, HookConfig
from dataengine.hooks.render import substitute

RACE_GUARD = """if mkdir {run_dir}/race_winner 2>/dev/null; then
  echo "$SLURM_JOB_ID" > {run_dir}/race_winner/job_id
  for job in $(cat {run_dir}/race_jobs); do
    if [ "$job" != "$SLURM_JOB_ID" ]; then scancel "$job" || true; fi
  done
else
  echo "job $SLURM_JOB_ID: another partition's job started first; standing down"
  exit 0
fi"""


def render_script(hook: HookConfig, variables: dict[str, str], stages: list[list[str]], env: dict[str, str],
                  run_dir: Path, log: Path, workdir: Path) -> str:
    template_path = TEMPLATES / hook.script_template
    if not template_path.is_file():
        template_path = Path(hook.script_template)
    if not template_path.is_file():
        raise DataEngineError(f"hook {hook.name!r}: sbatch template {hook.script_template} not found")
    race = len(hook.partitions) > 1
    values = {
        **variables,
        "job_name": f"{hook.name}-{variables['tag']}",
        "log": str(log),
        "run_dir": str(run_dir),
        "workdir": str(workdir),
        "quoted_run_dir": shlex.quote(str(run_dir)),
        "quoted_workdir": shlex.quote(str(workdir)),
        "sbatch_directives": "\n".join(f"#SBATCH {option}" for option in hook.sbatch),
        "race_note": f"Submitted to partitions {', '.join(hook.partitions)}; the first to start cancels the others."
                     if race else "",
        "race_guard": RACE_GUARD.format(run_dir=shlex.quote(str(run_dir))) if race else "",
        "env_exports": "\n".join(f"export {k}={shlex.quote(v)}" for k, v in env.items()),
        "command": "\n".join(shlex.join(stage) for stage in stages),  # the evaluation stage too, when the hook has one
    }
    return substitute(template_path.read_text(), values, f"sbatch template {template_path}")


def _sbatch(script: Path, partition: str | None, hold: bool) -> str:
    command = ["sbatch", "--parsable", *(["--hold"] if hold else []),
               *([f"--partition={partition}"] if partition else []), str(script)]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        raise DataEngineError(f"sbatch failed ({result.stderr.strip() or result.returncode}): check the partition "
                              f"and the #SBATCH options of {script}")
    return result.stdout.strip().split(";")[0]


def submit(hook: HookConfig, script: Path, run_dir: Path) -> list[str]:
    """Submit; returns the job ids (one per partition when racing)."""
    if len(hook.partitions) <= 1:
        return [_sbatch(script, hook.partitions[0] if hook.partitions else None, hold=False)]
    job_ids = []
    try:
        for partition in hook.partitions:
            job_ids.append(_sbatch(script, partition, hold=True))
    except DataEngineError:
        if job_ids:
            subprocess.run(["scancel", *job_ids], capture_output=True)
        raise
    (run_dir / "race_jobs").write_text("\n".join(job_ids) + "\n")
    released = subprocess.run(["scontrol", "release", ",".join(job_ids)], capture_output=True, text=True)
    if released.returncode != 0:
        raise DataEngineError(f"scontrol release {','.join(job_ids)} failed ({released.stderr.strip()}): "
                              "release the held jobs by hand")
    return job_ids
