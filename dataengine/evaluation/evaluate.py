"""``dataengine eval``: every policy on the same held-out scenes, with intervals and a paired test against the first.

Each policy is one ordinary rollout run (``RUN/runs/<name>``, the episode store), so an evaluation resumes the way
a rollout does: run the same command again and only missing episodes are simulated, and a finished policy is not
rolled out twice. Episode k of every policy uses scene seed ``seed + k`` (default ``so101_dataengine.base.seeds.EVAL_SEED``,
disjoint from the demos' and the rollouts' seeds), so results are paired scene by scene. ``eval.json`` is the one
result file (schema in docs/evaluation.md); ``report.html`` shows it to a person.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console
from rich.table import Table

from so101_dataengine.base.configs import to_jsonable
from so101_dataengine.base.errors import DataEngineError
from so101_dataengine.base.executors import ExecutorConfig
from so101_dataengine.base.files import read_json_object, write_atomic
from so101_dataengine.base.preflight import check_at_least, check_episodes, check_new_output_dir, check_seed
from so101_dataengine.base.seeds import EVAL_SEED, overlapping_ranges
from so101_dataengine.base.workspace import Workspace
from so101_dataengine.evaluation.stats import PairedCounts, mcnemar_exact_p, paired_difference_interval, wilson_interval
from so101_dataengine.rollouts.config import RolloutConfig
from so101_dataengine.scenes.outcome import Outcome
from so101_dataengine.scenes.pick_place import PickPlaceConfig

SCHEMA = "dataengine.eval/1"
RESULT_FILE = "eval.json"


@dataclass
class EvalConfig:
    """``dataengine eval``: which policies, on which scenes, where the results go."""

    policies: list[str] = field(default_factory=list)
    """What ``dataengine rollout --policy`` takes: checkpoint paths, ``act`` / ``diffusion`` (the newest trained),
    ``scripted``. The first is the baseline the others are compared with."""
    run: Path | None = None
    """A ``lerobot-train`` output directory: evaluate every checkpoint it saved (a sweep over training steps)."""
    n: int = 200
    """Episodes per policy. 200 gives a 95 % interval of about +-6 points at 80 % success."""
    seed: int = EVAL_SEED
    out: Path | None = None
    """Default ``<workspace>/evals/eval-<time>``; an earlier evaluation's is resumed, another non-empty one refused."""
    device: str | None = None
    num_envs: int | None = None
    gallery: int = 3
    """Frame strips per failure type in the report."""
    executor: ExecutorConfig = field(default_factory=ExecutorConfig)
    scene: PickPlaceConfig = field(default_factory=lambda: PickPlaceConfig(image_size=None))


@dataclass(frozen=True)
class Candidate:
    """One policy to evaluate: what rollout takes, a label for people, a directory name, its training step."""

    policy: str
    label: str
    step: int | None = None


@dataclass
class PolicyResult:
    name: str
    label: str
    policy: dict
    """The policy's identity (kind, path, sha256), as recorded in its run's manifest."""
    step: int | None
    episodes: int
    successes: int
    success_rate: float
    ci95: tuple[float, float]
    outcomes: dict[str, int]
    pick_rate: float
    drop_rate: float
    """Dropped during transport, of the episodes that picked the cube up."""
    mean_success_steps: float | None
    run_dir: str
    per_episode: list[str]
    """Outcome of episode k (scene seed ``seed + k``), for paired analysis."""


@dataclass
class Comparison:
    """``policy`` against ``baseline`` on the same scenes: difference of success rates (policy - baseline)."""

    baseline: str
    policy: str
    difference: float
    ci95: tuple[float, float]
    mcnemar_p: float
    only_baseline: int
    only_policy: int


@dataclass
class EvalResult:
    schema: str
    n: int
    seed: int
    out: str
    policies: list[PolicyResult]
    comparisons: list[Comparison]
    seconds: float

    def write(self, directory: Path) -> Path:
        path = Path(directory) / RESULT_FILE
        write_atomic(path, json.dumps(to_jsonable(dataclasses.asdict(self)), indent=2))
        return path


def checkpoints_of_run(run: Path) -> list[Candidate]:
    """Every checkpoint a lerobot-train run saved (``checkpoints/<step>/pretrained_model``, the step zero-padded),
    in step order."""
    root = Path(run) / "checkpoints"
    saved = sorted((int(p.name), p / "pretrained_model") for p in root.iterdir()
                   if p.name.isdigit() and (p / "pretrained_model" / "config.json").is_file()) if root.is_dir() else []
    if not saved:
        raise DataEngineError(f"{run} holds no saved checkpoint (checkpoints/<step>/pretrained_model): "
                              "pass the --output_dir of a lerobot-train run, or --policy PATH")
    return [Candidate(str(path), f"step {step}", step) for step, path in saved]


def _candidates(config: EvalConfig) -> list[Candidate]:
    if bool(config.policies) == (config.run is not None):
        raise DataEngineError("give either --policy (one or more) or --run TRAIN_OUTPUT_DIR")
    if config.run is not None:
        return checkpoints_of_run(config.run)
    if len(set(config.policies)) != len(config.policies):
        raise DataEngineError("a --policy is given twice: each policy once")
    return [Candidate(p, _label(p)) for p in config.policies]


def _check_numbers(config: EvalConfig) -> None:
    """Every number in its range before any work: a typo'd ``--n`` would otherwise fill memory listing episodes."""
    check_episodes("--n", config.n)
    check_seed("--seed", config.seed, config.n)
    check_at_least("--gallery", config.gallery, 0, "frame strips per failure type in the report")


def _is_earlier_eval(directory: Path) -> bool:
    """Whether ``directory`` holds an evaluation to resume: a policy's run (``runs/*/manifest.json``, written before
    its first episode, so a first evaluation killed early counts) or its ``eval.json``."""
    if any(p.is_file() for p in Path(directory).glob("runs/*/manifest.json")):
        return True
    try:
        return read_json_object(Path(directory) / RESULT_FILE, "").get("schema") == SCHEMA
    except DataEngineError:  # missing, or a file of someone else's that has the same name
        return False


def _check_out(out: Path) -> None:
    """``--out`` is new, empty, or an earlier evaluation (resumed). Any other directory is not ours: eval.json and
    report.html would replace a user's files, and in a dataset the next publish would ship them."""
    if out.is_dir() and any(out.iterdir()):
        if not _is_earlier_eval(out):
            raise DataEngineError(f"--out {out} is not empty and holds no earlier evaluation (no {RESULT_FILE}, no "
                                  "runs/*/manifest.json): choose a new --out, or an earlier eval's --out to resume it")
        return
    check_new_output_dir(out)


def _label(policy: str) -> str:
    """``RUN @ STEP`` for a lerobot-train checkpoint (``RUN/checkpoints/STEP/pretrained_model``), else as given."""
    path = Path(policy)
    if path.name == "pretrained_model" and path.parent.parent.name == "checkpoints":
        return f"{path.parent.parent.parent.name} @ {path.parent.name}"
    return policy


def _run_name(identity: dict, step: int | None) -> str:
    """A directory name from the policy's identity (its content hash), so re-running the command finds its run."""
    kind = re.sub(r"[^A-Za-z0-9_.=-]+", "-", identity["kind"]).strip("-.")[:40] or "policy"
    digest = (identity.get("sha256") or "")[:10]
    return "-".join(part for part in (f"step{step:06d}" if step is not None else "", kind, digest) if part)


def _rollout_config(config: EvalConfig, policy: str, out: Path, own_size: bool = False) -> RolloutConfig:
    """The rollout of one policy; ``own_size``: the policy brings its image size, so ``--image-size`` (meant for
    policies without one, like the scripted expert) does not apply to it."""
    scene = dataclasses.replace(config.scene, image_size=None) if own_size else config.scene
    return RolloutConfig(policy=policy, n=config.n, seed=config.seed, out=out, device=config.device,
                         num_envs=config.num_envs, resume=(out / "manifest.json").is_file(),
                         executor=config.executor, scene=scene)


def _result(name: str, candidate: Candidate, store_summary, store) -> PolicyResult:
    metas = {i: store.read_meta(i) for i in store.completed_ids()}
    per_episode = [metas[i]["metrics"]["outcome"] for i in sorted(metas)]
    successes = per_episode.count(Outcome.SUCCESS.value)
    steps = store_summary.mean_success_steps
    return PolicyResult(
        name=name, label=candidate.label, policy=store.manifest["policy"], step=candidate.step,
        episodes=len(per_episode), successes=successes, success_rate=successes / max(len(per_episode), 1),
        ci95=wilson_interval(successes, len(per_episode)), outcomes=dict(store_summary.outcomes),
        pick_rate=store_summary.pick_rate, drop_rate=store_summary.drop_rate,
        mean_success_steps=None if math.isnan(steps) else steps, run_dir=str(store.root), per_episode=per_episode)


def compare(baseline: PolicyResult, other: PolicyResult) -> Comparison:
    """The paired difference ``other - baseline`` with Newcombe's interval and McNemar's exact p-value."""
    success = Outcome.SUCCESS.value
    counts = PairedCounts.of([o == success for o in other.per_episode], [o == success for o in baseline.per_episode])
    return Comparison(baseline=baseline.name, policy=other.name,
                      difference=other.success_rate - baseline.success_rate,
                      ci95=paired_difference_interval(counts), mcnemar_p=mcnemar_exact_p(counts.only_a, counts.only_b),
                      only_baseline=counts.only_b, only_policy=counts.only_a)


def evaluate(config: EvalConfig, workspace: Workspace, console: Console | None = None) -> EvalResult:
    """Roll out every policy on the same ``n`` scenes (resuming what is done), then compare and report."""
    from so101_dataengine.evaluation.report import write_report
    from so101_dataengine.formats.store import EpisodeStore
    from so101_dataengine.rollouts.run import resolve_policy, rollout

    console = console or Console(stderr=True)
    _check_numbers(config)
    candidates = _candidates(config)
    if overlap := overlapping_ranges(config.seed, config.n):
        console.print(f"note: seeds {config.seed}..{config.seed + config.n - 1} overlap the {' and '.join(overlap)} "
                      f"seed range: a policy may have been trained on these scenes (default --seed {EVAL_SEED})")
    out = Path(config.out or workspace.root / "evals" / time.strftime("eval-%Y%m%d-%H%M%S"))
    resolved = []  # every policy is checked (loadable, fits the scene) before any is rolled out
    for candidate in candidates:
        _, identity, size = resolve_policy(_rollout_config(config, candidate.policy, out), workspace)
        resolved.append((candidate, _run_name(identity, candidate.step), size is not None))
    _check_out(out)  # before resolving: a link is refused, not followed out of the workspace
    out = out.resolve()  # dask workers may run elsewhere
    start = time.perf_counter()
    results = []
    for index, (candidate, name, own_size) in enumerate(resolved, 1):
        console.print(f"eval {index}/{len(resolved)}: {candidate.label} -> {out / 'runs' / name}")
        summary = rollout(_rollout_config(config, candidate.policy, out / "runs" / name, own_size), workspace, console)
        results.append(_result(name, candidate, summary, EpisodeStore.open(out / "runs" / name)))
    comparisons = [compare(results[0], other) for other in results[1:]]
    result = EvalResult(SCHEMA, config.n, config.seed, str(out), results, comparisons, time.perf_counter() - start)
    result.write(out)
    report = write_report(out, result, config.gallery)
    print_eval(console, result)
    console.print(f"eval: {out / RESULT_FILE}, report {report}")
    return result


def _percent(value: float) -> str:
    return f"{100 * value:.1f}"


def print_eval(console: Console, result: EvalResult) -> None:
    table = Table(title=f"dataengine eval: {result.n} scenes from seed {result.seed}")
    for column in ("policy", "success % (95 % CI)", "never picked / dropped / missed / timeout", "pick %", "drop %",
                   "steps"):
        table.add_column(column, justify="left" if column == "policy" else "right")
    for p in result.policies:
        failures = " / ".join(str(p.outcomes.get(o.value, 0)) for o in Outcome if o is not Outcome.SUCCESS)
        steps = "-" if p.mean_success_steps is None else f"{p.mean_success_steps:.0f}"
        table.add_row(p.label, f"{_percent(p.success_rate)} ({_percent(p.ci95[0])}-{_percent(p.ci95[1])})",
                      failures, _percent(p.pick_rate), _percent(p.drop_rate), steps)
    console.print(table)
    labels = {p.name: p.label for p in result.policies}
    for c in result.comparisons:
        console.print(f"{labels[c.policy]} vs {labels[c.baseline]}: {100 * c.difference:+.1f} points "
                      f"(95 % CI {100 * c.ci95[0]:+.1f} .. {100 * c.ci95[1]:+.1f}), McNemar exact p = {c.mcnemar_p:.3g} "
                      f"({c.only_policy} scenes only it solved, {c.only_baseline} only the baseline)", highlight=False)
