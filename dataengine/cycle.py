"""``dataengine cycle``: one round of the loop, rollout -> curate -> publish -> hooks, from one ``dataengine.toml``.

Each stage writes where the next one reads (the episode store, then the LeRobot v3 dataset), under
``<workspace>/cycles/<name>/``, so a cycle killed at any point is finished by running the same command again:
the rollout resumes, a finished curated dataset is reused, publishing the same content makes no new version, and
hooks fire once per version. Each round's dataset is the newest published version plus the round's accepted
episodes, so versions grow (and a hook's ``min_new_episodes`` sees the growth). The ``[cycle]`` table names the
policy, the episode count and the repo id; ``[curate]`` and ``[[hooks]]`` are the tables ``dataengine curate
--config`` and ``dataengine publish`` read from the same file. A cycle ends with the trend over rounds: per round
its version, episodes and the evaluated success of every hook with ``eval`` (from each round's ``cycle.json`` and
the hook ledger; run it again later to see evaluations that ended since, e.g. of Slurm jobs).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from so101_dataengine.base.errors import DataEngineError
from so101_dataengine.base.files import write_atomic
from so101_dataengine.base.preflight import (
    NAME_CHARS,
    check_episodes,
    check_image_size,
    check_name,
    check_positive,
    check_repo_id,
    check_seed,
    check_table,
)
from so101_dataengine.base.project_file import read_project_file
from so101_dataengine.formats.v3_dataset import is_v3_dataset

TARGETS = ("local", "hub")


@dataclass
class CycleConfig:
    """The ``[cycle]`` table."""

    repo_id: str
    policy: str = "act"
    """What ``dataengine rollout --policy`` takes: ``act`` (the newest trained), a checkpoint, ``scripted``..."""
    n: int = 1000
    seed: int = 1_000_000
    """The first round's first scene seed; each later round starts after the seeds of all earlier rounds (demos
    use 0, 1, ...)."""
    base: str | None = None
    """A dataset whose episodes come first in the first round's dataset (e.g. the expert demos); later rounds
    start from the newest published version, so the dataset grows round by round."""
    classifier: str | None = None
    """The success classifier's artifact; without it ``use_sim_outcome`` must be set (simulation only)."""
    use_sim_outcome: bool = False
    image_size: int | None = None
    target: str = "local"
    message: str = ""


def cycle_config(document: dict, path: Path) -> CycleConfig:
    """The ``[cycle]`` table of the config file ``path`` (read as ``document``), checked: every key known and of
    its field's type, the repo id a Hub repo id, counts in range, the classifier present."""
    table = document.get("cycle")
    if not isinstance(table, dict) or "repo_id" not in table:
        raise DataEngineError(f"{path} has no [cycle] table with a repo_id: add one (see README)")
    check_table(CycleConfig, table, f"[cycle] of {path}")
    config = CycleConfig(**table)
    check_repo_id(config.repo_id)
    where = f"[cycle] of {path}"
    check_episodes(f"{where}: n", config.n)
    if config.seed < 0:
        raise DataEngineError(f"{where}: seed must be an integer >= 0, got {config.seed}")
    check_seed(f"{where}: seed", config.seed, config.n)  # and the round's last seed fits 64 bits
    if config.image_size is not None:
        check_image_size(f"{where}: image_size", config.image_size)
    if not config.policy:
        raise DataEngineError(f"{where}: policy is empty: write e.g. policy = \"act\" (or a checkpoint path)")
    if config.target not in TARGETS:
        raise DataEngineError(f"{where}: unknown target {config.target!r}: use {' or '.join(TARGETS)}")
    if config.classifier is not None and config.use_sim_outcome:
        raise DataEngineError(f"{where}: classifier and use_sim_outcome exclude each other: choose one verdict")
    if config.classifier is not None and not Path(config.classifier).exists():
        raise DataEngineError(f"{where}: classifier artifact {config.classifier} does not exist: train one "
                              "('dataengine classifier train') or fix the path")
    if config.base is not None and not Path(config.base).exists():
        raise DataEngineError(f"{where}: base dataset {config.base} does not exist: fix the path or remove base")
    return config


def check_cycle(document: dict, path: Path, name: str, workspace_root: Path) -> CycleConfig:
    """Every check ``dataengine cycle`` makes before it writes anything: the round's name, ``[cycle]``,
    ``[curate]``, every ``[[hooks]]`` table and every hook's templates (rendered against a stand-in version), and
    the rounds already in the workspace. Raises the first problem; writes nothing."""
    from so101_dataengine.curation.config import CurateConfig, load_curate_config
    from so101_dataengine.hooks.config import load_hooks
    from so101_dataengine.hooks.runner import check_hook

    check_name(name, "cycle name", f"name rounds with {NAME_CHARS} only, e.g. round2 (it becomes "
               "<workspace>/cycles/NAME)")
    config = cycle_config(document, path)
    curate = document.get("curate", {})
    check_table(CurateConfig, curate, f"[curate] of {path}")
    curate_config = load_curate_config(path)
    if curate_config.verdict.enabled and config.classifier is None and not config.use_sim_outcome:
        raise DataEngineError(f"[cycle] of {path}: curate needs a success verdict: set classifier = ARTIFACT (or "
                              "use_sim_outcome = true for a simulation-only dataset)")
    hooks = load_hooks(path, workspace_root)
    for hook in hooks.hooks:
        check_hook(hook, root=hooks.root)
    _rounds(Path(workspace_root) / "cycles")
    return config


def check_policy(config: CycleConfig, workspace) -> None:
    """The rollout's policy resolves (``act``: a trained one in the workspace; a path: a checkpoint), before the
    round writes anything."""
    from so101_dataengine.rollouts.config import RolloutConfig
    from so101_dataengine.rollouts.run import resolve_policy

    resolve_policy(RolloutConfig(policy=config.policy, n=config.n), workspace)


def _round(path: Path) -> dict:
    """A round's ``cycle.json``, checked (a damaged one is one error line naming it, not a crash later)."""
    try:
        state = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise DataEngineError(f"{path} is unreadable ({error}): restore it or remove that round's directory") from None
    integer = lambda v: isinstance(v, int) and not isinstance(v, bool)  # noqa: E731
    if not isinstance(state, dict) or not integer(state.get("seed")) or not integer(state.get("n")):
        raise DataEngineError(f"{path} is not a round's state (an object with integer seed and n): restore it "
                              "or remove that round's directory")
    return state


def _rounds(cycles: Path) -> list[tuple[dict, str]]:
    return [(_round(p), p.parent.name) for p in sorted(cycles.glob("*/cycle.json"))]


def _seed(cycles: Path, name: str, config: CycleConfig) -> int:
    """This round's first scene seed: fixed when the round starts (``cycle.json``), after every earlier round's
    seeds, so no two rounds roll out the same scenes."""
    own = cycles / name / "cycle.json"
    if own.is_file():
        return _round(own)["seed"]
    seed = max((r["seed"] + r["n"] for r, _ in _rounds(cycles)), default=config.seed)
    own.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(own, json.dumps({"seed": seed, "n": config.n}))
    return seed


def _base(config: CycleConfig, registry_root: Path) -> Path | None:
    """The newest published version, so every version holds all earlier ones' episodes plus this round's; the
    configured base (e.g. the expert demos) for the first round, or when publishing to the Hub."""
    from so101_dataengine.publish.registry import LocalRegistry

    registry = LocalRegistry(registry_root.resolve())
    versions = registry.versions(config.repo_id) if config.target == "local" else []
    if versions:
        print(f"cycle: base = the newest version {config.repo_id} {versions[-1].tag}")
        return registry.version_path(config.repo_id, versions[-1].tag)
    return Path(config.base) if config.base else None


def run_cycle(config_path: Path, name: str, workspace, workers: int | None = None) -> None:
    """Run (or finish) cycle ``name``; prints what each stage did."""
    from so101_dataengine.base.executors import ExecutorConfig
    from so101_dataengine.curation.config import load_curate_config
    from so101_dataengine.curation.curate import curate
    from so101_dataengine.hooks.fire import fire_and_report
    from so101_dataengine.publish.publish import PublishConfig, publish
    from so101_dataengine.rollouts.config import RolloutConfig
    from so101_dataengine.rollouts.run import rollout
    from so101_dataengine.scenes.pick_place import PickPlaceConfig

    document = read_project_file(config_path, "write a [cycle] table with at least repo_id (see README)")
    config = check_cycle(document, config_path, name, workspace.root)  # everything, before anything is written
    if workers is not None:
        check_positive("--workers", workers)
    check_policy(config, workspace)
    root = Path(workspace.root) / "cycles" / name
    run, dataset = root / "rollout", root / "dataset"
    seed = _seed(root.parent, name, config)
    seeds = f"seeds {seed}..{seed + config.n - 1}"
    print(f"cycle {name}: rollout of {config.n} episodes ({config.policy}, {seeds}) -> {run}")
    rollout(RolloutConfig(policy=config.policy, n=config.n, seed=seed, out=run,
                          resume=run.is_dir() and any(run.iterdir()), executor=ExecutorConfig(workers=workers),
                          scene=PickPlaceConfig(image_size=config.image_size)), workspace)
    if is_v3_dataset(dataset):
        print(f"cycle {name}: curated dataset already written: {dataset}")
    else:
        curate_config = load_curate_config(config_path)
        curate_config.runs, curate_config.out, curate_config.repo_id = [run], dataset, config.repo_id
        curate_config.base = _base(config, workspace.registry())
        curate_config.classifier = Path(config.classifier) if config.classifier else None
        curate_config.verdict.use_sim_outcome = config.use_sim_outcome
        curate_config.workers = workers
        curate(curate_config)
    result = publish(PublishConfig(dataset=dataset, repo_id=config.repo_id, target=config.target,
                                   message=config.message or f"cycle {name}", registry=workspace.registry()))
    state = "published" if result.created else "unchanged, already published as"
    print(f"cycle {name}: {state} {result.repo_id} {result.tag} ({result.manifest.total_episodes} episodes)")
    _record_version(root / "cycle.json", result.repo_id, result.tag, result.manifest.total_episodes)
    if "hooks" in document:
        fire_and_report(config_path, result, workspace.root)
    print_trend(root.parent, config, config_path, workspace.root)


def _record_version(state: Path, repo_id: str, tag: str, episodes: int) -> None:
    """The round's version goes into its ``cycle.json`` (next to its seed), for the trend over rounds."""
    version = {"repo_id": repo_id, "tag": tag, "episodes": episodes}
    round_state = _round(state)
    if any(round_state.get(k) != v for k, v in version.items()):
        write_atomic(state, json.dumps({**round_state, **version}))


def trend(cycles: Path, repo_id: str, ledger_file: Path) -> list[str]:
    """One line per round that published a version of ``repo_id``, in seed order (the order the rounds ran):
    its name, tag, episodes, and the evaluated success of every hook evaluated on any round ("-" where not yet)."""
    from so101_dataengine.hooks.ledger import Ledger

    rounds = sorted(_rounds(cycles), key=lambda r: r[0]["seed"])
    rounds = [(state, name) for state, name in rounds if state.get("repo_id") == repo_id and "tag" in state]
    ledger = Ledger(ledger_file)
    evaluated = {state["tag"]: ledger.evaluated(repo_id, state["tag"]) for state, _ in rounds}
    hooks = list(dict.fromkeys(hook for runs in evaluated.values() for hook in runs))
    width = max((len(name) for _, name in rounds), default=0)
    lines = []
    for state, name in rounds:
        runs = evaluated[state["tag"]]
        success = "  ".join(f"{hook} {runs[hook].success() if hook in runs else '-'}" for hook in hooks)
        lines.append(f"{name:<{width}}  {state['tag']}  {state['episodes']:>6} episodes  {success or 'no evaluations'}")
    return lines


def print_trend(cycles: Path, config: CycleConfig, config_path: Path, workspace_root: Path) -> None:
    from so101_dataengine.hooks.config import ledger_path

    lines = trend(cycles, config.repo_id, ledger_path(config_path, workspace_root))
    print(f"cycle trend over {len(lines)} round(s) of {config.repo_id} (evaluated success, 95 % CI):")
    for line in lines:
        print(f"  {line}")
