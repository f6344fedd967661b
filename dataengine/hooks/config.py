"""``dataengine.toml``: the project's hooks, each a name, a trigger and a kind (``command`` or ``slurm``).

```toml
ledger = "outputs/hooks/ledger.jsonl"      # optional; default <workspace>/hooks/ledger.jsonl

[[hooks]]
name = "act"
template = "act"                  # a shipped template (act, smolvla, pi0, pi05, hlrp) or a .toml path; keys here win
repo_id = "me/so101_pick_place"   # trigger: a new version of this repo ...
min_new_episodes = 0              # ... that grew by at least this many episodes
out_dir = "hooks/{hook}/{tag}"         # the default; relative: under the workspace
vars = { device = "cpu", steps = "100" }
eval = { n = 200 }                # optional: evaluate the trained policy after training (see HookEval)
```
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, fields
from pathlib import Path

from so101_dataengine.base.errors import DataEngineError
from so101_dataengine.base.files import read_toml
from so101_dataengine.base.preflight import NAME_CHARS, check_name, check_table, repo_id_problem
from so101_dataengine.base.project_file import read_project_file
from so101_dataengine.base.seeds import EVAL_SEED
from so101_dataengine.base.workspace import Workspace

TEMPLATES = Path(__file__).parent / "templates"
KINDS = ("command", "slurm")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_VAR_NAME = re.compile(r"[A-Za-z0-9_]+")


def sbatch_value_problem(value: str) -> str | None:
    """Why ``value`` cannot go on an ``#SBATCH`` line (None: it can). Slurm reads those lines itself, no shell: it
    splits at whitespace, takes ``"`` and ``\\`` as quoting, ``#`` as the start of a comment, and a newline ends the
    directive (the rest would become a shell line). ``$``, backticks and the like are no problem there: bash never
    runs a ``#`` line and Slurm does not expand them."""
    for char in value:
        if not char.isascii() or not char.isprintable() or char.isspace():
            return "holds a space, a newline, a control or a non-ASCII character"
        if char in "\"'\\#":
            return f"holds {char!r}, which Slurm reads as quoting or a comment there"
    return None


@dataclass(frozen=True)
class HookEval:
    """``eval = { n = 200 }``: when the hook's programs succeed, one more stage evaluates the trained policy,
    ``{python} -m so101_dataengine.cli eval --policy CHECKPOINT --n N --seed SEED --out RUN_DIR/eval [ARGS]``, where the
    training ran (its machine, its GPU); the ledger reads ``RUN_DIR/eval/eval.json`` into the run."""

    n: int
    """Episodes (scenes ``seed .. seed + n - 1``, the same for every version, so rounds are comparable)."""
    seed: int = EVAL_SEED
    """First scene seed; default the held-out evaluation range (``so101_dataengine.base.seeds``)."""
    checkpoint: str = "{out_dir}/train/checkpoints/last/pretrained_model"
    """The trained policy, templated like ``argv`` (where the shipped templates' lerobot-train saves its last)."""
    args: list[str] = field(default_factory=list)
    """More ``dataengine eval`` flags, templated too, e.g. ``["--num-envs", "64"]``."""


def _hook_eval(value, hook: str) -> HookEval:
    where = f"hook {hook!r}: eval"
    if not isinstance(value, dict):
        raise DataEngineError(f"{where} must be a table like eval = {{ n = 200 }}, got {value!r}")
    known = [f.name for f in fields(HookEval)]
    unknown = sorted(set(value) - set(known))
    if unknown:
        raise DataEngineError(f"{where}: unknown key(s) {', '.join(unknown)}; allowed: {', '.join(known)}")
    if "n" not in value:
        raise DataEngineError(f"{where} has no 'n': say how many episodes, e.g. eval = {{ n = 200 }}")
    evaluation = HookEval(**value)

    def integer(x) -> bool:
        return isinstance(x, int) and not isinstance(x, bool)

    if not integer(evaluation.n) or evaluation.n < 1:
        raise DataEngineError(f"{where}: n must be a positive integer (episodes), got {evaluation.n!r}")
    if not integer(evaluation.seed) or evaluation.seed < 0:
        raise DataEngineError(f"{where}: seed must be an integer >= 0, got {evaluation.seed!r}")
    if not isinstance(evaluation.checkpoint, str) or not evaluation.checkpoint:
        raise DataEngineError(f"{where}: checkpoint must be a non-empty path template, got {evaluation.checkpoint!r}")
    if not isinstance(evaluation.args, list) or not all(isinstance(a, str) for a in evaluation.args):
        raise DataEngineError(f"{where}: args must be a list of strings (dataengine eval flags), "
                              f"got {evaluation.args!r}")
    return evaluation


@dataclass
class HookConfig:
    name: str
    repo_id: str
    kind: str = "command"
    stages: list[list[str]] = field(default_factory=list)
    """Programs run in order (argv lists, templated, never through a shell); ``argv = [...]`` is one stage."""
    extra_args: list[str] = field(default_factory=list)
    """Appended to the last stage (templated too), e.g. ``["--policy.chunk_size=50"]`` on top of a template."""
    min_new_episodes: int = 0
    out_dir: str = "hooks/{hook}/{tag}"
    """Where the hook's runs go, templated; a relative one is under the workspace (``--workspace``, default
    ./outputs), beside the default ledger, whatever the current directory."""
    vars: dict[str, str] = field(default_factory=dict)
    """Extra template variables (e.g. steps, device), on top of the version's."""
    env: dict[str, str] = field(default_factory=dict)
    checkpoint_gb: float = 0.0
    checkpoints: int = 1
    """Preflight needs ``checkpoint_gb * checkpoints`` GB free under ``out_dir``."""
    weights: list[str] = field(default_factory=list)
    """Model weights the run loads: local paths, or Hub model ids that must be in the Hub cache when offline."""
    resolve_by_tag: bool = False
    """True: ``{dataset_root}`` is a new, empty directory per version, so lerobot fetches ``--dataset.revision``
    itself (from the Hub, or ``dataengine serve``); False: the local registry's version directory when there is one."""
    sbatch: list[str] = field(default_factory=list)
    """Extra ``#SBATCH`` options (slurm kind), e.g. ``--gres=gpu:1``."""
    partitions: list[str] = field(default_factory=list)
    """Slurm partitions; two or more: submit to all, the first job to start cancels the others."""
    script_template: str = "slurm.sbatch"
    eval: HookEval | None = None
    """Evaluate the trained policy when the programs succeed (``eval = { n = 200 }``); None: no evaluation."""


@dataclass
class HooksFile:
    hooks: list[HookConfig]
    ledger: Path
    path: Path
    root: Path
    """The workspace's root: a relative ``out_dir`` is under it (``so101_dataengine.hooks.runner.plan``)."""


def _template(name: str, base: Path) -> dict:
    path = TEMPLATES / f"{name}.toml" if (TEMPLATES / f"{name}.toml").is_file() else base / name
    if not path.is_file():
        shipped = sorted(p.stem for p in TEMPLATES.glob("*.toml"))
        raise DataEngineError(f"hook template {name!r} not found: use one of {', '.join(shipped)} or a .toml path")
    return read_toml(path, "")  # found above; a malformed one is one error line naming it


def _hook(table, base: Path) -> HookConfig:
    if not isinstance(table, dict):
        raise DataEngineError(f"each [[hooks]] entry must be a table, got {table!r}: write [[hooks]] tables")
    table = dict(table)
    if "name" in table:  # first: every later message names the hook
        check_name(table["name"], "hook name", f"name hooks with {NAME_CHARS} only (it becomes a directory)")
    if "template" in table:
        if not isinstance(table["template"], str):
            raise DataEngineError(f"hook {table.get('name', '?')!r}: template must be a string, "
                                  f"got {table['template']!r}: write e.g. template = \"act\"")
        template = _template(table.pop("template"), base)
        if "argv" in table or "stages" in table:  # the hook's own programs replace the template's
            template = {k: v for k, v in template.items() if k not in ("argv", "stages")}
        own_vars = table.get("vars", {})
        if not isinstance(own_vars, dict):
            raise DataEngineError(f"hook {table.get('name', '?')!r}: vars must be a table of strings, got "
                                  f"{own_vars!r}: write e.g. vars = {{ steps = \"100\" }}")
        table = {**template, **table, "vars": {**template.get("vars", {}), **own_vars}}
    if "argv" in table:
        table["stages"] = [table.pop("argv")]
    known = {f.name for f in fields(HookConfig)}
    unknown = sorted(set(table) - known)
    name = table.get("name", "?")
    where = f"hook {name!r}"
    if unknown:
        raise DataEngineError(f"{where}: unknown key(s) {', '.join(unknown)}; allowed: {', '.join(sorted(known))}")
    for required in ("name", "repo_id"):
        if required not in table:
            raise DataEngineError(f"{where} has no {required!r}: add it to its [[hooks]] table")
    if isinstance(table.get("vars"), dict):  # numbers and booleans are fine as variables: they are text in argv
        table["vars"] = {k: str(v).lower() if isinstance(v, bool) else str(v) if isinstance(v, (int, float)) else v
                         for k, v in table["vars"].items()}
    if "stages" in table and not (isinstance(table["stages"], list) and table["stages"] and all(
            isinstance(s, list) and s and all(isinstance(a, str) for a in s) for s in table["stages"])):
        raise DataEngineError(f"{where}: 'argv' (or 'stages') must be a non-empty list of strings, "
                              "one program and its arguments (no shell)")
    check_table(HookConfig, table, where, skip=("eval",))
    hook = HookConfig(**table)
    problem = repo_id_problem(hook.repo_id)
    if problem:
        raise DataEngineError(f"{where}: repo_id {hook.repo_id!r} {problem}: write OWNER/NAME with {NAME_CHARS} "
                              "only (e.g. lab/so101_pick_place)")
    if hook.kind not in KINDS:
        raise DataEngineError(f"{where}: unknown kind {hook.kind!r}; use one of {', '.join(KINDS)}")
    if not hook.stages:
        raise DataEngineError(f"{where}: 'argv' (or 'stages') must be a non-empty list of strings, "
                              "one program and its arguments (no shell)")
    for key, value, least in (("min_new_episodes", hook.min_new_episodes, 0), ("checkpoints", hook.checkpoints, 1),
                              ("checkpoint_gb", hook.checkpoint_gb, 0)):
        if value < least:
            raise DataEngineError(f"{where}: {key} must be at least {least}, got {value}")
    for key in hook.env:
        if not _ENV_NAME.fullmatch(key):
            raise DataEngineError(f"{where}: env key {key!r} is not an environment variable name: use letters, "
                                  "digits and '_', not starting with a digit (e.g. HF_HOME)")
    for key in hook.vars:
        if not _VAR_NAME.fullmatch(key):
            raise DataEngineError(f"{where}: vars key {key!r} cannot be a {{name}} placeholder: use ASCII letters, "
                                  "digits and '_' (e.g. batch_size)")
    for option in hook.sbatch:
        problem = sbatch_value_problem(option)
        if problem or not option.startswith("-"):
            raise DataEngineError(f"{where}: sbatch option {option!r} {problem or 'is not an option'}: write each "
                                  "option as its own list item, e.g. sbatch = [\"--gres=gpu:1\", \"--time=48:00:00\"], "
                                  "without spaces, quotes, '\\' or '#'")
    for partition in hook.partitions:
        if not re.fullmatch(r"[A-Za-z0-9_.-]+", partition):
            raise DataEngineError(f"{where}: partition {partition!r} is not a Slurm partition name: use "
                                  f"{NAME_CHARS} only, one partition per list item")
    if hook.kind == "slurm" and not ((TEMPLATES / hook.script_template).is_file()
                                     or Path(hook.script_template).is_file()):
        raise DataEngineError(f"{where}: sbatch template {hook.script_template} not found: point script_template "
                              "at an existing file (default the shipped slurm.sbatch)")
    if hook.eval is not None:
        hook.eval = _hook_eval(hook.eval, hook.name)
    return hook


def load_hooks(path: Path, workspace: Path | None = None) -> HooksFile:
    path = Path(path)
    data = read_project_file(path, "create it with [[hooks]] tables (see docs/publishing.md)")
    if not isinstance(data.get("hooks", []), list):
        raise DataEngineError(f"{path}: hooks must be [[hooks]] tables, got hooks = {data['hooks']!r}")
    if not isinstance(data.get("ledger", ""), str) or data.get("ledger") == "":
        raise DataEngineError(f"{path}: ledger must be a path string, got {data['ledger']!r}: write e.g. "
                              "ledger = \"outputs/hooks/ledger.jsonl\" (or leave it out)")
    hooks = [_hook(t, path.parent) for t in data.get("hooks", [])]
    names = [h.name for h in hooks]
    if len(set(names)) != len(names):
        raise DataEngineError(f"{path}: hook names must be unique, got {names}")
    return HooksFile(hooks, Path(data.get("ledger", default_ledger(workspace))), path,
                     Workspace.from_option(workspace).root)


def default_ledger(workspace: Path | None = None) -> Path:
    """``<workspace>/hooks/ledger.jsonl`` (workspace: ``--workspace``, else ``$DATAENGINE_WORKSPACE`` or ./outputs)."""
    return Workspace.from_option(workspace).root / "hooks" / "ledger.jsonl"


def ledger_path(config: Path, workspace: Path | None = None) -> Path:
    """The ledger ``config`` names (its ``ledger`` key) if the file exists, else the workspace's default one. A
    ``config`` that exists but is no file (a directory) is an error, not silently the default ledger."""
    if Path(config).exists() and not Path(config).is_file():
        raise DataEngineError(f"--config {config} is not a file: pass the project's dataengine.toml")
    return load_hooks(config, workspace).ledger if Path(config).is_file() else default_ledger(workspace)
