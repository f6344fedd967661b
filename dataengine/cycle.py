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
from dataclasses import dataclass, fields
from pathlib import Path

from dataengine.errors import DataEngineError
from dataengine.files import read_toml, write_atomic


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
    """The ``[cycle]`` table of the config file ``path`` (read as ``document``), checked."""
    table = document.get("cycle")
    known = {f.name for f in fields(CycleConfig)}
    if not table or "repo_id" not in table:
        raise DataEngineError(f"{path} has no [cycle] table with a repo_id: add one (see README)")
    unknown = sorted(set(table) - known)
    if unknown:
        raise DataEngineError(f"unknown key(s) {', '.join(unknown)} in [cycle] of {path}: "
                              f"use {', '.join(sorted(known))}")
    return CycleConfig(**table)


def _seed(cycles: Path, name: str, config: CycleConfig) -> int:
    """This round's first scene seed: fixed when the round starts (``cycle.json``), after every earlier round's
    seeds, so no two rounds roll out the same scenes."""
    own = cycles / name / "cycle.json"
    if own.is_file():
        return json.loads(own.read_text())["seed"]
    rounds = [json.loads(p.read_text()) for p in cycles.glob("*/cycle.json")]
    seed = max((r["seed"] + r["n"] for r in rounds), default=config.seed)
    own.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(own, json.dumps({"seed": seed, "n": config.n}))
    return seed


def _base(config: CycleConfig) -> Path | None:
    """The newest published version, so every version holds all earlier ones' episodes plus this round's; the
    configured base (e.g. the expert demos) for the first round, or when publishing to the Hub."""
    from dataengine.publish.publish import default_registry
    from dataengine.publish.registry import LocalRegistry

    registry = LocalRegistry(default_registry().resolve())
    versions = registry.versions(config.repo_id) if config.target == "local" else []
    if versions:
        print(f"cycle: base = the newest version {config.repo_id} {versions[-1].tag}")
        return registry.version_path(config.repo_id, versions[-1].tag)
    return Path(config.base) if config.base else None


def run_cycle(config_path: Path, name: str, workspace, workers: int | None = None) -> None:
    """Run (or finish) cycle ``name``; prints what each stage did."""
    from curation.config import load_curate_config
    from curation.curate import curate
    from dataengine.config import RolloutConfig
    from dataengine.executors import ExecutorConfig
    from dataengine.hooks.cli import fire_and_report
    from dataengine.publish.publish import PublishConfig, publish
    from dataengine.rollout import rollout
    from scenes.pick_place import PickPlaceConfig

    document = read_toml(config_path, "write a [cycle] table with at least repo_id (see README)")
    config = cycle_config(document, config_path)
    root = Path(workspace.root) / "cycles" / name
    run, dataset = root / "rollout", root / "dataset"
    seed = _seed(root.parent, name, config)
    seeds = f"seeds {seed}..{seed + config.n - 1}"
    print(f"cycle {name}: rollout of {config.n} episodes ({config.policy}, {seeds}) -> {run}")
    rollout(RolloutConfig(policy=config.policy, n=config.n, seed=seed, out=run,
                          resume=run.is_dir() and any(run.iterdir()), executor=ExecutorConfig(workers=workers),
                          scene=PickPlaceConfig(image_size=config.image_size)), workspace)
    if (dataset / "meta" / "info.json").is_file():
        print(f"cycle {name}: curated dataset already written: {dataset}")
    else:
        curate_config = load_curate_config(config_path)
        curate_config.runs, curate_config.out, curate_config.repo_id = [run], dataset, config.repo_id
        curate_config.base = _base(config)
        curate_config.classifier = Path(config.classifier) if config.classifier else None
        curate_config.verdict.use_sim_outcome = config.use_sim_outcome
        curate_config.workers = workers
        curate(curate_config)
    result = publish(PublishConfig(dataset=dataset, repo_id=config.repo_id, target=config.target,
                                   message=config.message or f"cycle {name}"))
    state = "published" if result.created else "unchanged, already published as"
    print(f"cycle {name}: {state} {result.repo_id} {result.tag} ({result.manifest.total_episodes} episodes)")
    _record_version(root / "cycle.json", result.repo_id, result.tag, result.manifest.total_episodes)
    if "hooks" in document:
        fire_and_report(config_path, result, workspace.root)
    print_trend(root.parent, config, config_path, workspace.root)


def _record_version(state: Path, repo_id: str, tag: str, episodes: int) -> None:
    """The round's version goes into its ``cycle.json`` (next to its seed), for the trend over rounds."""
    version = {"repo_id": repo_id, "tag": tag, "episodes": episodes}
    round_state = json.loads(state.read_text())
    if any(round_state.get(k) != v for k, v in version.items()):
        write_atomic(state, json.dumps({**round_state, **version}))


def trend(cycles: Path, repo_id: str, ledger_file: Path) -> list[str]:
    """One line per round that published a version of ``repo_id``, in seed order (the order the rounds ran):
    its name, tag, episodes, and the evaluated success of every hook evaluated on any round ("-" where not yet)."""
    from dataengine.hooks.ledger import Ledger

    rounds = sorted(((json.loads(p.read_text()), p.parent.name) for p in cycles.glob("*/cycle.json")),
                    key=lambda r: r[0]["seed"])
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
    from dataengine.hooks.config import ledger_path

    lines = trend(cycles, config.repo_id, ledger_path(config_path, workspace_root))
    print(f"cycle trend over {len(lines)} round(s) of {config.repo_id} (evaluated success, 95 % CI):")
    for line in lines:
        print(f"  {line}")
