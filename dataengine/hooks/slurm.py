"""The ``slurm`` kind: an sbatch script rendered from a template, submitted with ``sbatch``.

With two or more partitions the users' habit is built in: the same job goes to every partition, held; the job
ids are written next to the script; the jobs are released; the first one to start takes the run directory's
``race_winner`` (an atomic ``mkdir`` on the shared filesystem), cancels the others with ``scancel`` and runs, and
any other that started anyway stands down without running anything.

Nothing in a rendered script can be turned into a command (a directory named ``proj $(touch X)``, a newline in a
variable): every ``{name}`` on a shell line is replaced by its shell-quoted value (one word, whatever it holds),
and a ``{name}`` inside quotes of the template is refused (the value is quoted already, and quotes around quotes
undo them). ``#SBATCH`` lines are read by Slurm itself, not a shell: a value there must hold no whitespace, quote,
``\\``, ``#`` or control character (refused with one line naming the hook and the key), and the log path is never
put there: ``#SBATCH --output=job-%j.log`` is relative, and the script is submitted from its run directory (the
job's working directory, a job attribute, not a parsed line), so a run directory with a space, quotes or a
newline still gets its log. On comment lines a value must hold no newline.
"""

from __future__ import annotations

import re
import shlex
import subprocess
from pathlib import Path

from so101_dataengine.base.errors import DataEngineError
from so101_dataengine.base.files import reading
from so101_dataengine.hooks.config import TEMPLATES, HookConfig, sbatch_value_problem
from so101_dataengine.hooks.render import _PLACEHOLDER

LOG = "job-%j.log"
"""The job's log, relative to its run directory: sbatch is run there, so the ``#SBATCH`` line holds no path."""

CODE = ("sbatch_directives", "race_guard", "env_exports", "command", "quoted_run_dir", "quoted_workdir")
"""Placeholders whose values are script text this module built (everything in them quoted already)."""

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
                  run_dir: Path, workdir: Path) -> str:
    template_path = TEMPLATES / hook.script_template
    if not template_path.is_file():
        template_path = Path(hook.script_template)
    if not template_path.is_file():
        raise DataEngineError(f"hook {hook.name!r}: sbatch template {hook.script_template} not found")
    race = len(hook.partitions) > 1
    for option in hook.sbatch:  # checked when the config was read; again here, where it matters
        if sbatch_value_problem(option):
            raise DataEngineError(f"hook {hook.name!r}: sbatch option {option!r} {sbatch_value_problem(option)}: "
                                  "write it without spaces, quotes, '\\' or '#'")
    values = {
        **variables,
        "job_name": f"{hook.name}-{variables['tag']}",
        "log": LOG,
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
    with reading(template_path, f"fix hook {hook.name!r}'s script_template (a UTF-8 sbatch script)", "not UTF-8 text"):
        template = template_path.read_text(encoding="utf-8")
    return substitute_script(template, values, hook.name, f"sbatch template {template_path}")


def _quoted_spans(line: str) -> list[tuple[int, int]]:
    """The (start, end) offsets of the single- and double-quoted stretches of a bash line (backslash escapes
    outside single quotes); an unterminated quote runs to the end of the line."""
    spans, quote, start, index = [], None, 0, 0
    while index < len(line):
        char = line[index]
        if char == "\\" and quote != "'":
            index += 2
            continue
        if quote is None and char in "'\"":
            quote, start = char, index
        elif char == quote:
            spans.append((start, index))
            quote = None
        index += 1
    if quote is not None:
        spans.append((start, len(line)))
    return spans


def substitute_script(text: str, values: dict[str, str], hook: str, where: str) -> str:
    """``{name}`` -> its value, made safe for the line it is on: shell-quoted on a shell line, checked for Slurm
    on an ``#SBATCH`` line, checked for newlines on a comment line; the script text of :data:`CODE` as it is."""
    lines = []
    for number, line in enumerate(text.split("\n"), 1):
        directive, comment = line.startswith("#SBATCH"), line.lstrip().startswith("#")
        spans = [] if comment else _quoted_spans(line)

        def replace(match: re.Match) -> str:
            key = match.group(1)
            if key not in values:
                raise DataEngineError(f"{where}: unknown variable {{{key}}}; known: {', '.join(sorted(values))}")
            value = values[key]
            if key in CODE:
                return value
            fix = (f"give {key} a value without them (vars.{key})" if key not in _BUILT else
                   "give its directory a name without them" if key in ("run_dir", "workdir") else
                   f"rename it ({key} comes from the hook's name, repo id or the version)")
            if directive:
                problem = sbatch_value_problem(value)
                if problem:
                    raise DataEngineError(f"hook {hook!r}: {{{key}}} = {value!r} {problem} and is on an #SBATCH line "
                                          f"({where}, line {number}), which Slurm reads itself: {fix}, or move it "
                                          "to a shell line")
                return value
            if comment:
                if "\n" in value or "\r" in value:
                    raise DataEngineError(f"hook {hook!r}: {{{key}}} = {value!r} holds a newline and is on a comment "
                                          f"line ({where}, line {number}): {fix}, or move it to a shell line")
                return value
            if any(start < match.start() < end for start, end in spans):
                raise DataEngineError(f"{where}, line {number}: {{{key}}} is inside quotes; every value is "
                                      "shell-quoted already (one word, whatever it holds): remove the quotes around "
                                      f"{{{key}}} (hook {hook!r})")
            return shlex.quote(value)

        lines.append(_PLACEHOLDER.sub(replace, line))
    return "\n".join(lines)


_BUILT = ("job_name", "log", "run_dir", "workdir", "race_note", "repo_id", "tag", "sequence", "episodes",
          "new_episodes", "hook", "python", "owner", "name", "out_dir", "dataset_root")


def _sbatch(script: Path, partition: str | None, hold: bool) -> str:
    """Submit from the script's directory (the run directory): the job's working directory, where its relative
    ``#SBATCH --output`` goes."""
    command = ["sbatch", "--parsable", *(["--hold"] if hold else []),
               *([f"--partition={partition}"] if partition else []), str(script)]
    try:
        result = subprocess.run(command, capture_output=True, text=True, cwd=script.parent)
    except OSError as error:
        raise DataEngineError(f"cannot run sbatch ({error.strerror}): run on a Slurm login node, or use "
                              "kind = \"command\"") from None
    if result.returncode != 0:
        raise DataEngineError(f"sbatch failed ({result.stderr.strip() or result.returncode}): check the partition "
                              f"and the #SBATCH options of {script}")
    return result.stdout.strip().split(";")[0]


def submit(hook: HookConfig, script: Path, run_dir: Path) -> list[str]:
    """Submit; returns the job ids (one per partition when racing)."""
    if len(hook.partitions) <= 1:
        return [_sbatch(script.resolve(), hook.partitions[0] if hook.partitions else None, hold=False)]
    job_ids = []
    try:
        for partition in hook.partitions:
            job_ids.append(_sbatch(script.resolve(), partition, hold=True))
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
