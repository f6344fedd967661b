"""The payoff of distillation, measured end to end: does a student trained on classifier-filtered rollouts of its
own teacher beat the same student trained on the seed demos alone?

    python -m benchmarks.payoff --work /tmp/payoff                 # the GPU experiment (H200: one lease)
    python -m benchmarks.payoff --work /tmp/mini --scale mini      # the same pipeline in miniature (CPU, a test)

Base: ``base`` expert demos (the users' 40). Teacher: ACT trained on the base; it is also arm (i). Rollouts: the
teacher on new seeds, in consecutive runs whose cumulative sizes are the points of the data curve. Classifier:
trained on ``labelled`` teacher episodes of other seeds (simulator labels standing in for a person's) plus the
demos, never on evaluation seeds. Students (``Student``): a policy type, an arm and a recipe, either ``passes`` (as
many passes over its dataset as ACT (i) makes over the base, capped) or ``steps`` (ACT (i)'s steps), each
evaluated by ``dataengine eval`` on the same held-out seeds (paired against arm (i) of the same policy type):
    (i)   base only                          (ii)  base + curated (classifier + quality filters)
    (iii) base + every rollout, unfiltered   (iv)  base + rollouts the simulator calls successes (filtering's ceiling)
    (v)   as many expert demos as (ii) has episodes, of other scenes: the ceiling of adding data at this recipe
          (if (v) is no better than (ii), the recipe, not the teacher's data, is what holds the students back)
    curve: base + curated from the first k rollout runs (k = 1 .. all; all is (ii)).
A student may be trained several times with different ``--seed``s (replicates); the report pools each arm's
replicates and compares them scene by scene (``replicated_paired_difference``).

Every step is a ``dataengine`` command, run as a job with a log (``WORK/logs``) and a done-marker, so the script
resumes where it stopped; trainings run side by side on the one GPU, simulation and curation one at a time.
``WORK/payoff.json``, ``WORK/payoff.md`` and the curve ``WORK/payoff.png`` hold the results (copied to ``--out``).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from so101_dataengine.base.seeds import DEMO_SEED, ROLLOUT_SEED
from so101_dataengine.formats.v3_dataset import read_info

TINY_ACT = ("--policy.dim_model=64", "--policy.n_heads=2", "--policy.dim_feedforward=128",
            "--policy.n_encoder_layers=1", "--policy.n_decoder_layers=1", "--policy.chunk_size=10",
            "--policy.n_action_steps=5")
TINY_DIFFUSION = ("--policy.down_dims=[32,64]", "--policy.n_obs_steps=2", "--policy.horizon=8",
                  "--policy.n_action_steps=4", "--policy.num_train_timesteps=10", "--policy.diffusion_step_embed_dim=32")


@dataclass(frozen=True)
class Student:
    """One trained and evaluated policy: its type, the dataset arm it learns from, and its recipe: ``passes`` (as
    many passes over its dataset as ACT (i) makes over the base, at most ``Scale.max_steps`` steps) or ``steps``
    (exactly ACT (i)'s steps, whatever the dataset's size). ACT (i) is the teacher, the same run under both."""

    policy: str
    arm: str
    recipe: str = "passes"
    seed: int | None = None
    """lerobot-train's ``--seed`` (weights, dropout, sample order); None: lerobot's default. Replicate trainings of
    one arm differ only here; the report pools them (``group``)."""
    augment: bool = False
    """lerobot's training image transforms (``--dataset.image_transforms.enable=true``: colour jitter, sharpness and a
    small random affine shift, up to three per frame). Session 13 found the ACT students solving only scenes near
    their demos while the one Diffusion student, trained with random crops, reached farther: does ACT too, augmented?"""

    @property
    def group(self) -> str:
        """The arm and recipe, whatever the seed: replicates of one group are pooled in the report."""
        return (f"{self.policy}-{self.arm}" + ("" if self.recipe == "passes" else f"-{self.recipe}")
                + ("-aug" if self.augment else ""))

    @property
    def name(self) -> str:
        return self.group + ("" if self.seed is None else f"-seed{self.seed}")


TEACHER = Student("act", "i")


@dataclass(frozen=True)
class Scale:
    """Counts and recipe of one run of the experiment. Defaults: the GPU experiment, sized for one device lease."""

    base: int = 40
    rollout_runs: tuple[int, ...] = (250, 500, 1250)
    """Teacher rollouts, as consecutive runs: the curve's points are their cumulative sums (2,000 in all)."""
    round2_runs: tuple[int, ...] = ()
    """A second round of distillation (none by default): ``round2_teacher``, a student of round 1, rolls out these
    runs on the next seeds; arm ``ii2`` = (ii) + what the same classifier and filters keep of them."""
    round2_teacher: str = "act-ii"
    labelled: int = 100
    image_size: int = 96
    """Rendered and trained size: 96 px keeps rendering, encoding and training inside one lease."""
    steps: int = 2000
    """ACT (i)'s (the teacher's) optimizer steps: ~32 passes over the 40 demos at batch 128."""
    max_steps: int = 5000
    """The most steps of a ``passes`` student: equal passes would give (ii) ~10,000 steps and (iii) ~200,000, more
    than a lease holds; lease 1 (docs/benchmarks.md) gave every arm ``steps``, so (ii) had 6 passes to (i)'s 32."""
    batch_size: int = 128
    diffusion_batch_size: int = 64
    eval_n: int = 200
    classifier_epochs: int = 10
    students: tuple[Student, ...] = (
        TEACHER, Student("act", "ii"), Student("act", "iv"), Student("act", "c2"), Student("act", "c1"),
        Student("act", "ii", "steps"), Student("act", "iii", "steps"),
        Student("diffusion", "i"), Student("diffusion", "ii"))
    """Most important first (their evaluations start first). (iii) keeps every rollout (2,040 episodes): only the
    ``steps`` recipe fits a lease, so (ii) is trained that way too for the pair (ii) vs (iii)."""
    act_args: tuple[str, ...] = ()
    diffusion_args: tuple[str, ...] = ()
    trainings_at_once: int = 6
    sims_at_once: int = 2
    """Rollouts, curations and evaluations side by side (each spreads over every core; two keep the cores busy
    while one of them waits on the GPU or on its dask start-up)."""
    loader_workers: int = 2
    """Dataloader workers per training (the frame cache makes loading cheap; cores go to parallel trainings)."""
    uncached_arms: tuple[str, ...] = ("iii",)
    """Arms trained without the decoded-frame cache: (iii) keeps every rollout, failures running to the time limit
    (~2,000 x 350 frames x 2 cameras x 27 KB at 96 px ~ 39 GB), more than the GPU machine's disk holds beside the
    other arms' caches; its loader decodes video instead, with ``uncached_loader_workers``."""
    uncached_loader_workers: int = 8
    sim_workers: int | None = 8
    """Dask workers of each rollout, curation and evaluation (None: one per core). Two simulations side by side
    with 8 each fill the GPU machine's 16 cores; 16 each would hold ~32 worker processes (torch + lerobot + a CUDA
    context, ~2.5 GB each) beside six trainings, close to its 128 GB."""
    device: str | None = None


SCALES = {
    "gpu": Scale(),
    "mini": Scale(base=2, rollout_runs=(2, 2), round2_runs=(2,), labelled=4, image_size=64, steps=4, max_steps=8,
                  batch_size=4, students=(TEACHER, Student("act", "ii"), Student("act", "iv"), Student("act", "c1"),
                                          Student("act", "iii", "steps"), Student("act", "ii2"), Student("act", "v"),
                                          Student("act", "ii", seed=1), Student("act", "ii", augment=True),
                                          Student("diffusion", "i"),
                                          Student("diffusion", "ii")),
                  diffusion_batch_size=4, eval_n=2, classifier_epochs=1, act_args=TINY_ACT,
                  diffusion_args=TINY_DIFFUSION, trainings_at_once=2, sims_at_once=1, loader_workers=0,
                  uncached_loader_workers=0, sim_workers=2, device="cpu"),
}
SCALES["gpu-diffusion"] = dataclasses.replace(
    SCALES["gpu"], students=(TEACHER, Student("diffusion", "i"), Student("diffusion", "ii")),
    diffusion_args=("--policy.noise_scheduler_type=DDIM", "--policy.num_inference_steps=10"))
"""Diffusion's lease: DDIM with 10 denoising steps per chunk at inference (lease 1's 100 DDPM steps made one
evaluation take 310 s and hold the GPU); training is the same noise-prediction objective either way."""
SCALES["gpu-rounds"] = dataclasses.replace(
    SCALES["gpu"], rollout_runs=(500, 500), round2_runs=(500, 500), max_steps=3000,
    students=(TEACHER, Student("act", "ii"), Student("act", "ii2")))
"""Two rounds of distillation in one lease: (ii)'s student, not the demos' (i), rolls out round 2. Its critical path
holds two student trainings one after the other (teacher -> rollouts -> curate -> (ii) -> rollouts -> curate -> ii2):
3,000 steps each (~250 s alone on the H200, 12 steps/s) keeps it inside a lease; lease 2 found (ii) starved at 4.9
passes and not helped beyond ~12, and 3,000 steps give the expected ~120-episode (ii) ~16 passes."""
SCALES["gpu-replicates"] = dataclasses.replace(
    SCALES["gpu"], rollout_runs=(500, 500), max_steps=3000,
    students=(TEACHER, Student("act", "ii"), Student("act", "v"), Student("act", "i", seed=1),
              Student("act", "ii", seed=1), Student("act", "i", seed=2), Student("act", "ii", seed=2),
              Student("act", "ii", augment=True)))
"""Lease 5's question, in one lease: is the +1..+9-point gain of (ii) over (i) real, and is it the recipe or the
teacher's data that keeps students at 25-30 %? Three trainings each of (i) and (ii) (seeds: lerobot's default, 1,
2; leases 1-4 saw the same recipe move 10 points between trainings), pooled scene by scene; and (v), as many expert
demos as (ii) has episodes, at the same recipe; and (ii) with image augmentation (``Student.augment``), after
Session 13's scene-by-scene reading. 1,000 teacher rollouts and 3,000-step students (lease 4's sizes) keep the
critical path (teacher -> rollouts -> curation -> four (ii) and (v) side by side) near 1,150 s."""
LABELLED_SEED = ROLLOUT_SEED + 500_000
"""The classifier's labelled teacher episodes: rollout seeds, apart from the curated rollouts' (ROLLOUT_SEED on)."""
EXPERT_SEED = DEMO_SEED + 100_000
"""Arm (v)'s expert demos: demo seeds, apart from the base's (DEMO_SEED on, a few hundred attempts)."""


@dataclass
class Job:
    name: str
    argv: list[str] | Callable[[], list[str]]
    """The command, or what makes it when the job starts (a ``passes`` student's steps need the base's frames)."""
    needs: list[str] = field(default_factory=list)
    slot: str = "sim"
    """``sim`` (rollouts, demos, curation, evaluation: ``sims_at_once``) or ``train`` (``trainings_at_once``)."""
    fresh: Path | None = None
    """Output that a killed run of this job leaves half-made and the job cannot continue (a dataset, a training):
    removed before the job starts again. Rollouts and evaluations resume instead."""


def _cli(work: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "so101_dataengine.cli", "--workspace", str(work / "ws"), *map(str, args)]


def _checkpoint(work: Path, arm: str) -> Path:
    return work / "train" / arm / "checkpoints" / "last" / "pretrained_model"


def _run_dir(out: Path) -> list[str]:
    """``--out`` of a rollout, with ``--resume`` when a killed run of it left episodes there."""
    return ["--out", str(out), *(["--resume"] if (out / "manifest.json").is_file() else [])]


def _workers(scale: Scale) -> list[str]:
    return [] if scale.sim_workers is None else ["--workers", str(scale.sim_workers)]


@dataclass(frozen=True)
class DataArm:
    """One curated dataset: the base plus what curation keeps of these teacher rollout runs, judged by ``verdict``:
    ``classifier`` (the trained classifier and the quality filters), ``simulator`` (the simulator's outcome and the
    quality filters) or ``none`` (every filter off: every rollout is kept)."""

    runs: tuple[str, ...]
    verdict: str

    def curate_flags(self, classifier: Path) -> list[str]:
        if self.verdict == "classifier":
            return ["--classifier", str(classifier)]
        if self.verdict == "simulator":
            return ["--use-sim-outcome"]
        return [flag for step in ("verdict", "grip", "motion", "length", "duplicates") for flag in ("--no-filter", step)]


def data_arms(scale: Scale) -> dict[str, DataArm]:
    """The dataset arms in the order they are curated, the longest paths first: (ii), then (iii) (the longest
    curation, ~450 s on the H200 machine, and an uncached training), (iv), and the curve's arms ``c<runs - 1>`` ..
    ``c1``, whose smaller datasets curate and train quickly."""
    runs = tuple(f"r{k}" for k in range(len(scale.rollout_runs)))
    arms = {"ii": DataArm(runs, "classifier"), "iii": DataArm(runs, "none"), "iv": DataArm(runs, "simulator")}
    arms |= {f"c{k}": DataArm(runs[:k], "classifier") for k in range(len(runs) - 1, 0, -1)}
    if scale.round2_runs:
        arms["ii2"] = DataArm(runs + tuple(f"q{k}" for k in range(len(scale.round2_runs))), "classifier")
    return arms


def _frames(dataset: Path) -> int:
    return read_info(dataset)["total_frames"]


def _episodes(dataset: Path) -> int:
    return read_info(dataset)["total_episodes"]


def plan(work: Path, scale: Scale) -> list[Job]:
    """Every job of the experiment with what it needs first."""
    device = [] if scale.device is None else ["--device", scale.device]

    def demos(arm: str, n: int, seed: int) -> list[str]:
        return _cli(work, "demos", "--n", n, "--seed", seed, "--image-size", scale.image_size, "--vcodec", "h264",
                    "--workers", scale.sim_workers or os.cpu_count(), "--out", work / "data" / arm,
                    "--repo-id", f"local/payoff_{arm}")

    jobs = [Job("demos", demos("i", scale.base, DEMO_SEED), fresh=work / "data" / "i")]

    def train(student: Student, needs: str) -> Job:
        batch = scale.batch_size if student.policy == "act" else scale.diffusion_batch_size
        extra = scale.act_args if student.policy == "act" else scale.diffusion_args
        cached = student.arm not in scale.uncached_arms
        loaders = scale.loader_workers if cached else scale.uncached_loader_workers
        run = work / "train" / student.name

        def argv() -> list[str]:
            if student.group == TEACHER.group or student.recipe == "steps":
                budget = ["--steps", scale.steps]
            else:  # ACT (i)'s passes over the base, computed once the base exists
                passes = scale.steps * scale.batch_size / _frames(work / "data" / "i")
                budget = ["--epochs", repr(passes), "--steps", scale.max_steps]
            seed = [] if student.seed is None else [f"--seed={student.seed}"]
            augment = ["--dataset.image_transforms.enable=true"] if student.augment else []
            return _cli(work, "train", "--policy", student.policy, "--dataset", work / "data" / student.arm, *budget,
                        "--batch-size", batch, "--save-freq", scale.max_steps, "--num-workers", loaders,
                        *([] if cached else ["--no-frame-cache"]), "--out", run, *device, "--", *extra, *seed,
                        *augment)

        return Job(f"train-{student.name}", argv, [needs], "train", fresh=run)

    def evaluate(student: Student) -> Job:
        argv = _cli(work, "eval", "--policy", _checkpoint(work, student.name), "--n", scale.eval_n,
                    "--out", work / "eval" / student.name, "--gallery", 1, *device, *_workers(scale))
        return Job(f"eval-{student.name}", argv, [f"train-{student.name}"])

    students = [TEACHER, *(s for s in scale.students if s != TEACHER)]  # rollouts need the teacher in any case
    jobs += [train(s, "demos") for s in students if s.arm == "i"]
    teacher = _checkpoint(work, TEACHER.name)
    jobs.append(Job("rollout-labelled", _cli(work, "rollout", "--policy", teacher, "--n", scale.labelled, "--seed",
                                             LABELLED_SEED, *_run_dir(work / "rollouts" / "labelled"), *device,
                                             *_workers(scale)), [f"train-{TEACHER.name}"]))
    seed = ROLLOUT_SEED
    rounds = [("r", scale.rollout_runs, TEACHER.name), ("q", scale.round2_runs, scale.round2_teacher)]
    for prefix, counts, policy in rounds:  # round 2's rollouts wait for its teacher, a student of round 1
        for k, count in enumerate(counts):
            jobs.append(Job(f"rollout-{prefix}{k}", _cli(work, "rollout", "--policy", _checkpoint(work, policy), "--n",
                                                         count, "--seed", seed,
                                                         *_run_dir(work / "rollouts" / f"{prefix}{k}"), *device,
                                                         *_workers(scale)), [f"train-{policy}"]))
            seed += count
    jobs.append(Job("classifier", _cli(work, "classifier", "train", "--runs", work / "rollouts" / "labelled",
                                       "--demos", work / "data" / "i", "--out", work / "classifier",
                                       "--epochs", scale.classifier_epochs, *device),
                    ["rollout-labelled", "demos"], fresh=work / "classifier"))
    trained_arms = {s.arm for s in students}
    for arm, data in data_arms(scale).items():
        if arm not in trained_arms:
            continue
        argv = _cli(work, "curate", "--runs", *(work / "rollouts" / r for r in data.runs), "--base", work / "data" / "i",
                    *data.curate_flags(work / "classifier"), "--vcodec", "h264", "--out", work / "data" / arm,
                    "--repo-id", f"local/payoff_{arm}", *_workers(scale))
        needs = [f"rollout-{r}" for r in data.runs] + (["classifier"] if data.verdict == "classifier" else [])
        jobs.append(Job(f"curate-{arm}", argv, needs, fresh=work / "data" / arm))
        jobs += [train(s, f"curate-{arm}") for s in students if s.arm == arm]
    if "v" in trained_arms:  # as many expert episodes as (ii) ended up with, once (ii) is curated
        jobs.append(Job("demos-v", lambda: demos("v", _episodes(work / "data" / "ii"), EXPERT_SEED), ["curate-ii"],
                        fresh=work / "data" / "v"))
        jobs += [train(s, "demos-v") for s in students if s.arm == "v"]
    jobs += [evaluate(s) for s in scale.students]
    return jobs


def run_jobs(work: Path, jobs: list[Job], scale: Scale) -> list[str]:
    """Run every job whose needs are done, trainings side by side, the rest one at a time; returns failed jobs.
    A job whose done-marker exists (``WORK/done/NAME``) is not run again unless something it needs runs again;
    one that failed blocks what needs it."""
    (work / "logs").mkdir(parents=True, exist_ok=True)
    (work / "done").mkdir(exist_ok=True)
    done = {j.name for j in jobs if (work / "done" / j.name).is_file()}
    stale = True
    while stale:  # a job that must run again makes everything built on it stale (an evaluation of a new checkpoint)
        stale = {j.name for j in jobs if j.name in done and any(n not in done for n in j.needs)}
        done -= stale
    failed: set[str] = set()
    running: dict[str, tuple[subprocess.Popen, Job, float]] = {}
    limits = {"sim": scale.sims_at_once, "train": scale.trainings_at_once}
    start = time.time()
    while True:
        for name, (process, job, began) in list(running.items()):
            if process.poll() is None:
                continue
            del running[name]
            if process.returncode == 0:
                (work / "done" / name).write_text(f"{time.time() - began:.1f}\n")
                done.add(name)
            else:
                failed.add(name)
            state = "done" if process.returncode == 0 else f"FAILED ({process.returncode})"
            _say(start, f"{name} {state} in {time.time() - began:.0f} s")
        blocked = {j.name for j in jobs if any(n in failed for n in j.needs)}
        failed |= blocked - failed
        waiting = [j for j in jobs if j.name not in done | failed | set(running)]
        if not waiting and not running:
            return sorted(failed)
        for job in waiting:
            busy = sum(1 for _, j, _ in running.values() if j.slot == job.slot)
            if busy < limits[job.slot] and all(n in done for n in job.needs):
                if job.fresh is not None and job.fresh.exists():
                    shutil.rmtree(job.fresh)
                log = open(work / "logs" / f"{job.name}.log", "wb")
                argv = job.argv() if callable(job.argv) else job.argv
                running[job.name] = (subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT,
                                                      stdin=subprocess.DEVNULL), job, time.time())
                _say(start, f"{job.name} started")
        time.sleep(1.0)


def _say(start: float, message: str) -> None:
    print(f"[{time.time() - start:7.0f} s] {message}", flush=True)


def collect(work: Path, scale: Scale) -> dict:
    """Every evaluated student's result with its recipe as run (steps, passes over its data), paired against the
    (i) of its policy type, and the dataset sizes."""
    from so101_dataengine.evaluation.evaluate import PolicyResult, compare

    def loaded(name: str) -> PolicyResult | None:
        path = work / "eval" / name / "eval.json"
        if not path.is_file():
            return None
        raw = json.loads(path.read_text())["policies"][0]
        return PolicyResult(**{**raw, "ci95": tuple(raw["ci95"])})

    def episodes(arm: str) -> int | None:
        dataset = work / "data" / arm
        return _episodes(dataset) if (dataset / "meta" / "info.json").is_file() else None

    arms = ["i", *data_arms(scale), "v"]
    result = {"scale": dataclasses.asdict(scale), "datasets": {arm: episodes(arm) for arm in arms}, "students": {}}
    for student in scale.students:
        got = loaded(student.name)
        if got is None:
            continue
        config = json.loads((work / "train" / student.name / "dataengine_train.json").read_text())["config"]
        row = {"policy": student.policy, "arm": student.arm, "recipe": student.recipe, "augment": student.augment,
               "episodes_trained_on": episodes(student.arm), "steps": config["steps"],
               "passes": config["steps"] * config["batch_size"] / _frames(work / "data" / student.arm),
               "success_rate": got.success_rate, "ci95": list(got.ci95), "outcomes": got.outcomes,
               "pick_rate": got.pick_rate, "eval_n": got.episodes}
        for key, arm in (("vs_i", "i"), ("vs_round1", "ii" if student.arm == "ii2" else None)):
            before = loaded(Student(student.policy, arm).name) if arm and student.arm != arm else None
            if before is not None:
                c = compare(before, got)
                row[key] = {"difference": c.difference, "ci95": list(c.ci95), "mcnemar_p": c.mcnemar_p}
        result["students"][student.name] = row
    result["groups"] = pooled_groups(scale, {s.name: loaded(s.name) for s in scale.students})
    result["job_seconds"] = {p.name: float(p.read_text()) for p in sorted((work / "done").glob("*"))}
    for key, prefix, counts in (("teacher_rollouts", "r", scale.rollout_runs), ("round2_rollouts", "q", scale.round2_runs)):
        runs = [work / "rollouts" / f"{prefix}{k}" / "summary.json" for k in range(len(counts))]
        result[key] = [json.loads(p.read_text())["outcomes"] for p in runs if p.is_file()]
    return result


def pooled_groups(scale: Scale, results: dict) -> dict[str, dict]:
    """Each arm's evaluated replicates (``results``: student name -> its ``PolicyResult`` or None) pooled: success
    over all their episodes with the replicates' own rates (their spread is the training variance) and, against
    the pooled (i) of the same policy type, the scene-by-scene difference (``replicated_paired_difference``)."""
    from so101_dataengine.evaluation.stats import replicated_paired_difference
    from so101_dataengine.scenes.outcome import Outcome

    runs: dict[str, list[list[bool]]] = {}
    for student in scale.students:
        if (got := results.get(student.name)) is not None:
            runs.setdefault(student.group, []).append([outcome == Outcome.SUCCESS.value for outcome in got.per_episode])
    groups = {}
    for student in scale.students:
        if student.group in groups or student.group not in runs:
            continue
        mine = runs[student.group]
        row = {"replicates": len(mine), "success_rate": sum(map(sum, mine)) / sum(map(len, mine)),
               "replicate_rates": [sum(run) / len(run) for run in mine]}
        base = runs.get(Student(student.policy, "i").group)
        if student.arm != "i" and base:
            d = replicated_paired_difference(mine, base)
            row["vs_i"] = {"difference": d.difference, "ci95": list(d.ci95), "p": d.p, "i_replicates": len(base)}
        groups[student.group] = row
    return groups


def curve_figure(result: dict, path: Path) -> None:
    """Success (95 % CI) against the episodes each student was trained on: one line per policy type and recipe
    over the data curve (i, c1, ..., ii, then round 2's ii2), the unfiltered (iii) and simulator-filtered (iv) arms as markers."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(7, 4))
    rows = result["students"].values()
    for policy, recipe in sorted({(r["policy"], r["recipe"]) for r in rows}):
        group = [r for r in rows if r["policy"] == policy and (r["recipe"] == recipe or r["arm"] == "i")
                 and not r.get("augment")]
        curve = sorted((r for r in group if r["arm"] in ("i", "ii", "ii2") or r["arm"].startswith("c")),
                       key=lambda r: r["episodes_trained_on"])
        for style, members, what in (("-o", curve, "curve"), ("s", [r for r in group if r["arm"] in ("iii", "iv")],
                                                               "iii / iv")):
            if not members:
                continue
            x = [r["episodes_trained_on"] for r in members]
            y = [100 * r["success_rate"] for r in members]
            err = [[100 * (r["success_rate"] - r["ci95"][0]) for r in members],
                   [100 * (r["ci95"][1] - r["success_rate"]) for r in members]]
            axis.errorbar(x, y, yerr=err, fmt=style, capsize=3, label=f"{policy}, {recipe}: {what}")
            for xi, yi, r in zip(x, y, members):
                axis.annotate(r["arm"], (xi, yi), textcoords="offset points", xytext=(4, 4), fontsize=8)
    axis.set_xlabel("episodes in the training dataset (base + added rollouts)")
    axis.set_ylabel("success % on held-out scenes (95 % CI)")
    axis.set_ylim(0, 100)
    axis.grid(alpha=0.3)
    axis.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def markdown(result: dict) -> str:
    lines = ["| student | episodes trained on | steps (passes) | success [95 % CI] | vs (i): difference [95 % CI], "
             "McNemar p |", "|---|---:|---:|---|---|"]
    for name, row in result["students"].items():
        lo, hi = row["ci95"]
        vs = row.get("vs_i")
        versus = (f"{100 * vs['difference']:+.1f} [{100 * vs['ci95'][0]:+.1f}, {100 * vs['ci95'][1]:+.1f}], "
                  f"p = {vs['mcnemar_p']:.3g}") if vs else "-"
        lines.append(f"| {name} | {row['episodes_trained_on']} | {row['steps']} ({row['passes']:.1f}) | "
                     f"{100 * row['success_rate']:.1f} % [{100 * lo:.1f}, {100 * hi:.1f}] | {versus} |")
    if any(g["replicates"] > 1 for g in result.get("groups", {}).values()):
        lines += ["", "Replicate trainings pooled (per-scene paired difference against the pooled (i)):", "",
                  "| arm | replicates | pooled success | replicates' success | vs (i): difference [95 % CI], p |",
                  "|---|---:|---:|---|---|"]
        for group, g in result["groups"].items():
            vs = g.get("vs_i")
            versus = (f"{100 * vs['difference']:+.1f} [{100 * vs['ci95'][0]:+.1f}, {100 * vs['ci95'][1]:+.1f}], "
                      f"p = {vs['p']:.3g}") if vs else "-"
            rates = ", ".join(f"{100 * r:.1f}" for r in g["replicate_rates"])
            lines.append(f"| {group} | {g['replicates']} | {100 * g['success_rate']:.1f} % | {rates} | {versus} |")
    for name, row in result["students"].items():
        if "vs_round1" in row:
            vs = row["vs_round1"]
            lines.append(f"\n{name} vs its round-1 teacher ({row['policy']}-ii), same scenes: "
                         f"{100 * vs['difference']:+.1f} [{100 * vs['ci95'][0]:+.1f}, {100 * vs['ci95'][1]:+.1f}], "
                         f"McNemar p = {vs['mcnemar_p']:.3g}")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", type=Path, required=True, help="working directory (resumed when it exists)")
    parser.add_argument("--scale", choices=sorted(SCALES), default="gpu")
    parser.add_argument("--out", type=Path, default=None, help="also copy payoff.json / payoff.md here")
    parser.add_argument("--steps", type=int, default=None, help="override ACT (i)'s training steps")
    parser.add_argument("--report-only", action="store_true",
                        help="run nothing: collect what is finished so far into payoff.json / .md / .png")
    parser.add_argument("--policies", nargs="+", default=None, help="only these policy types (default: all of the scale)")
    args = parser.parse_args(argv)
    scale = SCALES[args.scale]
    if args.steps is not None:
        scale = dataclasses.replace(scale, steps=args.steps)
    if args.policies:
        scale = dataclasses.replace(scale, students=tuple(s for s in scale.students if s.policy in args.policies))
    work = args.work.resolve()
    work.mkdir(parents=True, exist_ok=True)
    failed = [] if args.report_only else run_jobs(work, plan(work, scale), scale)
    result = collect(work, scale)
    result["failed_jobs"] = failed
    (work / "payoff.json").write_text(json.dumps(result, indent=2))
    (work / "payoff.md").write_text(markdown(result))
    curve_figure(result, work / "payoff.png")
    print(markdown(result))
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        for name in ("payoff.json", "payoff.md", "payoff.png"):
            shutil.copy(work / name, args.out / name)
    if failed:
        print(f"failed: {', '.join(failed)} (logs in {work / 'logs'})", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
