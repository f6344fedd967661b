"""``dataengine cycle``: one round of the loop, rollout -> curate -> publish -> hooks, from one ``dataengine.toml``.

Each stage writes where the next one reads (the episode store, then the LeRobot v3 dataset), under
``<workspace>/cycles/<name>/``, so a cycle killed at any point is finished by running the same command again:
the rollout resumes, a finished curated dataset is reused, publishing the same content makes no new version, and
hooks fire once per version. The ``[cycle]`` table names the policy, the episode count and the repo id; ``[curate]``
and ``[[hooks]]`` are the tables ``dataengine curate --config`` and ``dataengine publish`` read from the same file.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, fields
from pathlib import Path

from dataengine.errors import DataEngineError


@dataclass
class CycleConfig:
    """The ``[cycle]`` table."""

    repo_id: str
    policy: str = "act"
    """What ``dataengine rollout --policy`` takes: ``act`` (the newest trained), a checkpoint, ``scripted``..."""
    n: int = 1000
    seed: int = 1_000_000
    """Episode k uses scene seed ``seed + k``: give each cycle its own range (demos use 0, 1, ...)."""
    base: str | None = None
    """A dataset whose episodes come first in the curated one (e.g. the expert demos)."""
    classifier: str | None = None
    """The success classifier's artifact; without it ``use_sim_outcome`` must be set (simulation only)."""
    use_sim_outcome: bool = False
    image_size: int | None = None
    target: str = "local"
    message: str = ""


def load_cycle_config(path: Path) -> CycleConfig:
    if not path.is_file():
        raise DataEngineError(f"{path} not found: write a [cycle] table with at least repo_id (see README)")
    try:
        table = tomllib.loads(path.read_text()).get("cycle")
    except tomllib.TOMLDecodeError as error:
        raise DataEngineError(f"{path} is not valid TOML ({error}): fix the file") from None
    known = {f.name for f in fields(CycleConfig)}
    if not table or "repo_id" not in table:
        raise DataEngineError(f"{path} has no [cycle] table with a repo_id: add one (see README)")
    unknown = sorted(set(table) - known)
    if unknown:
        raise DataEngineError(f"unknown key(s) {', '.join(unknown)} in [cycle] of {path}: use {', '.join(sorted(known))}")
    return CycleConfig(**table)


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

    config = load_cycle_config(config_path)
    root = Path(workspace.root) / "cycles" / name
    run, dataset = root / "rollout", root / "dataset"
    print(f"cycle {name}: rollout of {config.n} episodes ({config.policy}) -> {run}")
    rollout(RolloutConfig(policy=config.policy, n=config.n, seed=config.seed, out=run,
                          resume=run.is_dir() and any(run.iterdir()), executor=ExecutorConfig(workers=workers),
                          scene=PickPlaceConfig(image_size=config.image_size)), workspace)
    if (dataset / "meta" / "info.json").is_file():
        print(f"cycle {name}: curated dataset already written: {dataset}")
    else:
        curate_config = load_curate_config(config_path)
        curate_config.runs, curate_config.out, curate_config.repo_id = [run], dataset, config.repo_id
        curate_config.base = Path(config.base) if config.base else None
        curate_config.classifier = Path(config.classifier) if config.classifier else None
        curate_config.verdict.use_sim_outcome = config.use_sim_outcome
        curate_config.workers = workers
        curate(curate_config)
    result = publish(PublishConfig(dataset=dataset, repo_id=config.repo_id, target=config.target,
                                   message=config.message or f"cycle {name}"))
    state = "published" if result.created else "unchanged, already published as"
    print(f"cycle {name}: {state} {result.repo_id} {result.tag} ({result.manifest.total_episodes} episodes)")
    if "hooks" in tomllib.loads(config_path.read_text()):
        fire_and_report(config_path, result, workspace.root)
