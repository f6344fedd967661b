"""``dataengine rollout``: a policy drives ``n`` seeded episodes, distributed over a dask cluster, into a store.

The run is split into chunks of episode ids (dask tasks). Progress is read from the store itself (every finished
episode is a directory with its outcome), so it is live whatever the cluster. ``--resume`` re-submits only the
episodes that are missing; the manifest guarantees it is the same run (policy hash, seeds, n, scene).
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import json
import math
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from rich.console import Console
from rich.table import Table

from so101_dataengine.base.configs import to_jsonable
from so101_dataengine.base.errors import DataEngineError
from so101_dataengine.base.executors import check_scheduler, dask_client, wait_all
from so101_dataengine.base.files import write_atomic
from so101_dataengine.base.locks import exclusive_lock
from so101_dataengine.base.preflight import check_episodes, check_image_size, check_positive, check_seed
from so101_dataengine.base.progress import progress_bar
from so101_dataengine.base.workspace import Workspace
from so101_dataengine.formats.store import LOCK, EpisodeStore
from so101_dataengine.rollouts.capacity import Capacity, gpu_count, measure_policy_memory, plan
from so101_dataengine.rollouts.config import RolloutConfig
from so101_dataengine.rollouts.engine import ChunkResult, ChunkTask, PolicySpec, run_chunk
from so101_dataengine.rollouts.lerobot_policy import DRIVES, inspect_checkpoint, policy_type
from so101_dataengine.rollouts.policies import FAULTY_KIND, checkpoint_sha256
from so101_dataengine.scenes.faulty_expert import FaultMix
from so101_dataengine.scenes.outcome import Outcome
from so101_dataengine.scenes.pick_place import DEFAULT_IMAGE_SIZE
from so101_dataengine.scenes.render import get_preset

_COMPATIBLE_KEYS = ("n", "seed", "policy", "scene")
"""Manifest entries that must match for ``--resume`` to continue a run."""


@dataclass(frozen=True)
class RolloutSummary:
    run_dir: Path
    episodes: int
    outcomes: dict[str, int]
    pick_rate: float
    drop_rate: float
    mean_success_steps: float
    env_steps: int
    seconds: float
    phase_seconds: dict[str, float] = dataclasses.field(default_factory=dict)
    """Workers' time by phase, summed over tasks (see ``so101_dataengine.rollouts.engine.ChunkResult``)."""
    capacity: Capacity | None = None
    classifier: dict | None = None
    """With ``--classifier``: scored and accepted episodes, and how many accepted ones the simulator calls a
    success (precision) and how many successes were accepted (recall)."""

    @property
    def success_rate(self) -> float:
        return self.outcomes.get(Outcome.SUCCESS.value, 0) / max(self.episodes, 1)

    @property
    def env_steps_per_second(self) -> float:
        return self.env_steps / self.seconds if self.seconds > 0 else 0.0


def resolve_policy(config: RolloutConfig, workspace: Workspace) -> tuple[PolicySpec, dict, int | None]:
    """The worker recipe, the policy's identity for the manifest, and the image size it needs (None: any).
    ``--policy``: ``scripted``, ``scripted-faulty[:MIX]``, a trained type (``act``, ``diffusion``: the newest of
    the workspace) or a checkpoint directory, fully inspected here, before any work."""
    kind, _, mix = config.policy.partition(":")
    if config.policy == "scripted" or kind == FAULTY_KIND:
        spec = PolicySpec(kind, faults=FaultMix.parse(mix) if kind == FAULTY_KIND else None)
        return spec, to_jsonable(spec.build().identity), None
    if config.policy in DRIVES:
        checkpoint = workspace.newest_policy(config.policy)
    else:
        checkpoint = Path(config.policy).resolve()
    if not checkpoint.is_dir():
        raise DataEngineError(f"policy {config.policy!r} is not 'act', 'scripted' or a checkpoint directory "
                              f"({', '.join(DRIVES)}: the newest trained of that type; also "
                              f"'{FAULTY_KIND}[:MIX]')")
    image_size = inspect_checkpoint(checkpoint)
    kind = policy_type(checkpoint)
    spec = PolicySpec(kind, str(checkpoint.resolve()), config.device, config.temporal_ensemble_coeff,
                      config.n_action_steps)
    identity = {"kind": kind, "path": str(checkpoint.resolve()), "sha256": checkpoint_sha256(checkpoint)}
    return spec, identity, image_size


def check_numbers(config: RolloutConfig) -> None:
    """Every number of the command in its range, before anything starts (a negative seed or a 0-pixel scene would
    otherwise fail on a worker, or worse, a 0 fall back silently to a default; a typo'd ``--n 1000000000000``
    would list a trillion episode ids and be killed for memory)."""
    check_episodes("--n", config.n)
    check_seed("--seed", config.seed, config.n)
    for flag, value in (("--num-envs", config.num_envs), ("--chunk-size", config.chunk_size), ("--lanes", config.lanes),
                        ("--workers", config.executor.workers), ("--n-action-steps", config.n_action_steps)):
        if value is not None:
            check_positive(flag, value)
    if config.scene.image_size is not None:
        check_image_size("--image-size", config.scene.image_size)
    if config.temporal_ensemble_coeff is not None and not config.temporal_ensemble_coeff >= 0:
        raise DataEngineError(f"--temporal-ensemble must be a coefficient >= 0 (e.g. 0.01), got "
                              f"{config.temporal_ensemble_coeff}")


def _image_size(requested: int | None, policy_size: int | None) -> int:
    """The policy's input size wins; an explicit, different request is an error, not a silent resize."""
    if policy_size is not None and requested is not None and requested != policy_size:
        raise DataEngineError(
            f"the scene renders {requested} px but the policy was trained on {policy_size} px: drop --image-size"
        )
    return policy_size or requested or DEFAULT_IMAGE_SIZE


@contextlib.contextmanager
def _opened_store(out: Path, manifest: dict, resume: bool) -> Iterator[EpisodeStore]:
    """The run's store, held by this process alone for the block: a second rollout of the same ``--out`` (two
    ``--resume`` at once) is refused, since its clean-up would delete the first one's episodes in progress."""
    store = EpisodeStore.open(out) if resume else EpisodeStore.create(out, manifest)
    with exclusive_lock(out / LOCK, f"rollout into {out}", "--out", wait=False):
        if resume:
            previous = store.manifest
            differing = [k for k in _COMPATIBLE_KEYS if to_jsonable(previous.get(k)) != to_jsonable(manifest[k])]
            if differing:
                raise DataEngineError(f"{out} belongs to another run ({', '.join(differing)} differ): use a new --out, "
                                      "or the same settings")
            store.remove_partials()
            for episode_id in store.completed_ids():  # a damaged episode is named (with its fix) before any work
                store.check(episode_id)
        yield store


def rollout(config: RolloutConfig, workspace: Workspace, console: Console | None = None) -> RolloutSummary:
    console = console or Console(stderr=True)
    check_numbers(config)
    check_scheduler(config.executor.scheduler)  # before the run directory exists
    get_preset(config.scene.render_preset)
    spec, identity, policy_size = resolve_policy(config, workspace)
    scene = dataclasses.replace(config.scene, image_size=_image_size(config.scene.image_size, policy_size))
    if config.resume and config.out is None:
        raise DataEngineError("--resume needs --out: the run directory to continue")
    out = Path(config.out or workspace.new_rollout_dir()).resolve()  # dask workers may run elsewhere
    manifest = {"run_id": uuid.uuid4().hex, "n": config.n, "seed": config.seed, "policy": identity, "scene": to_jsonable(scene),
                "config": to_jsonable(config), "created": time.time()}
    classifier = _check_classifier(config.classifier, scene.image_size)
    with _opened_store(out, manifest, config.resume) as store:
        done = set(store.completed_ids())
        missing = [i for i in range(config.n) if i not in done]
        start = time.perf_counter()
        env_steps, seconds, capacity = 0, {}, None
        if missing:
            with dask_client(config.executor) as client:
                capacity = _plan_capacity(client, config, spec, scene, len(missing))
                console.print(f"capacity: {capacity.describe()}")
                chunk = config.chunk_size or capacity.num_envs
                tasks = [ChunkTask(str(out), tuple(missing[i : i + chunk]), config.seed, spec, scene, capacity.num_envs,
                                   config.jpeg_quality, capacity.lanes, classifier)
                         for i in range(0, len(missing), chunk)]
                env_steps, seconds = _run_tasks(client, tasks, config, store, console, already=len(done))
        summary = summarize(store, env_steps, time.perf_counter() - start, seconds, capacity)
        write_atomic(out / "summary.json", json.dumps(to_jsonable(dataclasses.asdict(summary)), indent=2))
        print_summary(console, summary)
        return summary


def _check_classifier(path: Path | None, image_size: int) -> str | None:
    """The artifact's absolute path (workers may run elsewhere), checked before any rollout starts."""
    if path is None:
        return None
    from so101_dataengine.classifier.artifact import read_artifact_config

    artifact, _training = read_artifact_config(Path(path))  # a one-line error for what is not an artifact
    if artifact.frame_size != image_size:
        raise DataEngineError(f"the classifier {path} was trained on {artifact.frame_size} px frames, this run renders "
                              f"{image_size} px: pass a classifier trained on {image_size} px rollouts")
    return str(Path(path).resolve())


def _plan_capacity(client, config: RolloutConfig, spec: PolicySpec, scene, episodes: int) -> Capacity:
    """Workers, lanes and environments per worker: given, or chosen by the batch-size ladder (``so101_dataengine.rollouts.capacity``)."""
    workers = len(client.scheduler_info()["workers"])
    embedded = config.executor.scheduler is None
    memory = {} if config.num_envs else client.submit(measure_policy_memory, spec, scene.image_size, pure=False).result()
    gpus = max(1, gpu_count()) if memory else 1
    return plan(memory, scene.image_size, episodes, workers, config.lanes, config.num_envs,
                workers_per_gpu=math.ceil(workers / gpus) if embedded else 1)


def _run_tasks(client, tasks: list[ChunkTask], config: RolloutConfig, store: EpisodeStore, console: Console,
               already: int) -> tuple[int, dict[str, float]]:
    """Run the tasks on dask with a live progress bar read from the store; returns env-steps done now and where
    the workers' time went (summed over tasks)."""
    outcomes: collections.Counter[str] = collections.Counter()
    seen = set(store.completed_ids())
    env_steps = 0
    start = time.perf_counter()
    with progress_bar(console, "rollout") as progress:
        bar = progress.add_task("rollout", total=config.n, completed=already, status="")

        def poll() -> None:
            nonlocal env_steps
            for episode_id in sorted(set(store.completed_ids()) - seen):
                seen.add(episode_id)
                meta = store.read_meta(episode_id)
                outcomes[meta["metrics"]["outcome"]] += 1
                env_steps += meta["length"]
            rate = outcomes[Outcome.SUCCESS.value] / max(sum(outcomes.values()), 1)
            speed = env_steps / max(time.perf_counter() - start, 1e-9)
            progress.update(bar, completed=len(seen), status=f"success {rate:.0%}  {speed:,.0f} env-steps/s")

        results = wait_all(client.map(run_chunk, tasks, pure=False, retries=config.executor.retries), poll)
    total = ChunkResult()
    for result in results:
        total.add(result)
    return env_steps, dict(total.seconds)


def summarize(store: EpisodeStore, env_steps: int, seconds: float, phase_seconds: dict[str, float] | None = None,
              capacity: Capacity | None = None) -> RolloutSummary:
    metas = [store.read_meta(i) for i in store.completed_ids()]
    outcomes = collections.Counter(m["metrics"]["outcome"] for m in metas)
    picked = sum(m["metrics"]["picked"] for m in metas)
    success_steps = [m["metrics"]["steps"] for m in metas if m["metrics"]["outcome"] == Outcome.SUCCESS.value]
    return RolloutSummary(
        run_dir=store.root,
        episodes=len(metas),
        outcomes=dict(outcomes),
        pick_rate=picked / max(len(metas), 1),
        drop_rate=outcomes.get(Outcome.DROPPED_DURING_TRANSPORT.value, 0) / max(picked, 1),
        mean_success_steps=sum(success_steps) / len(success_steps) if success_steps else float("nan"),
        env_steps=env_steps,
        seconds=seconds,
        phase_seconds=phase_seconds or {},
        capacity=capacity,
        classifier=_classifier_summary(store, metas),
    )


def _classifier_summary(store: EpisodeStore, metas: list[dict]) -> dict | None:
    scored = [(m, verdict) for m in metas if (verdict := store.read_verdict(m["episode_id"])) is not None]
    if not scored:
        return None
    accepted = [m for m, verdict in scored if verdict.success]
    true_accepted = sum(m["metrics"]["outcome"] == Outcome.SUCCESS.value for m in accepted)
    successes = sum(m["metrics"]["outcome"] == Outcome.SUCCESS.value for m, _ in scored)
    return {"version": scored[0][1].classifier, "scored": len(scored), "accepted": len(accepted),
            "precision": true_accepted / len(accepted) if accepted else None,
            "recall": true_accepted / successes if successes else None}


_FAILURE_LABELS = {
    Outcome.NEVER_PICKED_UP: "never picked",
    Outcome.DROPPED_DURING_TRANSPORT: "dropped",
    Outcome.MISSED_GOAL: "missed goal",
    Outcome.TIMEOUT: "timeout",
}


def print_summary(console: Console, s: RolloutSummary) -> None:
    table = Table(title=f"dataengine rollout -> {s.run_dir}", show_header=False)
    rows = [("episodes", str(s.episodes)), ("success", f"{s.success_rate:.1%}")]
    rows += [(label, str(s.outcomes.get(o.value, 0))) for o, label in _FAILURE_LABELS.items()]
    rows += [("pick rate", f"{s.pick_rate:.1%}"), ("drop rate (of picked)", f"{s.drop_rate:.1%}"),
             ("mean steps of successes", "-" if math.isnan(s.mean_success_steps) else f"{s.mean_success_steps:.0f}"),
             ("env-steps/s", f"{s.env_steps_per_second:,.0f}")]
    if s.classifier:
        c = s.classifier
        judged = ", ".join(f"{name} {c[name]:.1%}" for name in ("precision", "recall") if c[name] is not None)
        rows.append((f"classifier {c['version']}", f"accepts {c['accepted']} of {c['scored']} ({judged})"))
    if s.phase_seconds:
        rows.append(("worker seconds", ", ".join(f"{k} {v:,.1f}" for k, v in s.phase_seconds.items())))
    for name, value in rows:
        table.add_row(name, value)
    console.print(table)
