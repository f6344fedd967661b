"""Mutation run: does the test suite fail when a realistic bug comes back?

Each mutation is one bug of a kind the users lived through (a forgotten per-episode reset, work done twice, a
check wired to the wrong threshold, an off-by-one at a boundary, stats checked against themselves, a training that
does not learn), written as exact text replacements in one file, with the tests that should catch it. Every
mutation is applied, alone, to a throwaway copy of the tree (``git archive HEAD``, or the working tree with
``--tree working``) under a temporary directory, never to the checkout itself, and the named tests run there with
``PYTHONPATH`` pointing at the copy (checked first: the venv's editable install points at the checkout). A mutation
is caught when those tests fail; a mutation whose text is no longer in the file is reported as stale, not counted.

    python -m benchmarks.mutation                     # every mutation, a table and the score
    python -m benchmarks.mutation --only outcome-last-step --only resume-prefix
    python -m benchmarks.mutation --json benchmarks/results/mutation/mutation.json

The tests named by all mutations are first run once unmutated: a mutation "caught" by a test that fails anyway
would mean nothing, so a failing baseline stops the run. docs/testing.md has the latest score.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("scenes", "rollouts", "classifier", "curation", "dataengine")
TIMEOUT_S = 1200


@dataclass(frozen=True)
class Mutation:
    name: str
    trap: str
    """The class of correctness trap (issue #21's list)."""
    file: str
    edits: tuple[tuple[str, str], ...]
    """(old, new): ``old`` must occur exactly once in the file."""
    tests: tuple[str, ...]
    """pytest node ids that should fail."""
    why: str


POLICY, TWICE, WIRING, BOUNDARY, ORACLE, SMOKE = (
    "per-episode policy state", "work done twice", "wiring", "boundaries", "circular oracles", "smoke only")

RESTART = "tests/rollouts/test_policies.py::test_restarting_a_slot_mid_chunk_starts_the_new_episode_fresh"
QUALITY = "tests/curation/test_curation.py::test_each_quality_check_alone_rejects_its_kind_of_bad_episode"
OUTCOME = "tests/scenes/test_outcome.py"

MUTATIONS: tuple[Mutation, ...] = (
    Mutation("engine-resets-a-slot-once", POLICY, "rollouts/engine.py",
             (("        policy.reset(index, self.env, seed)\n",
               "        if index not in getattr(policy, '_slots', {}):\n"
               "            policy.reset(index, self.env, seed)\n"),),
             ("tests/rollouts/test_rollout.py::test_an_episode_started_in_a_used_slot_acts_like_a_fresh_policy",),
             "a slot's policy state is reset for its first episode only"),
    Mutation("reset-keeps-the-queue", POLICY, "rollouts/policies.py",
             (("        state = _SlotState()\n", "        state = self._slots.get(slot) or _SlotState()\n"),),
             (f"{RESTART}[act]",),
             "a new episode executes the last episode's queued actions"),
    Mutation("reset-keeps-the-history", POLICY, "rollouts/policies.py",
             (("            state.history = self._empty_history()\n",
               "            state.history = self._slots[slot].history if slot in self._slots else self._empty_history()\n"),),
             (f"{RESTART}[diffusion]",),
             "Diffusion's observation history carries over into the next episode"),
    Mutation("reset-keeps-the-ensembler", POLICY, "rollouts/policies.py",
             (("            state.ensembler = ACTTemporalEnsembler(",
               "            state.ensembler = getattr(self._slots.get(slot), 'ensembler', None) or ACTTemporalEnsembler("),),
             (f"{RESTART}[act-ensembled]",),
             "the temporal ensembler keeps averaging in the last episode's chunks"),
    Mutation("one-ensembler-for-the-batch", POLICY, "rollouts/policies.py",
             (("states[i].ensembler.update(chunks[row : row + 1])", "states[need[0]].ensembler.update(chunks[row : row + 1])"),),
             ("tests/rollouts/test_policies.py::test_temporal_ensembling_gives_lerobots_ensembled_actions",),
             "environments share one ensembler, as lerobot's select_action shares one queue"),
    Mutation("ensembling-weights-ignored", POLICY, "rollouts/policies.py",
             (("ACTTemporalEnsembler(self.config.temporal_ensemble_coeff, self.config.chunk_size)",
               "ACTTemporalEnsembler(0.0, self.config.chunk_size)"),),
             ("tests/rollouts/test_policies.py::test_temporal_ensembling_gives_lerobots_ensembled_actions",),
             "ensembling averages uniformly instead of with the checkpoint's coefficient"),
    Mutation("retried-chunk-resimulates", TWICE, "rollouts/engine.py",
             (("    todo = [i for i in task.episode_ids if i not in done]\n", "    todo = list(task.episode_ids)\n"),),
             ("tests/rollouts/test_rollout.py::test_batched_engine_reproduces_single_env_episodes",),
             "a retried chunk simulates its stored episodes again (their commits are then dropped)"),
    Mutation("resume-assumes-a-prefix", TWICE, "rollouts/run.py",
             (("    missing = [i for i in range(config.n) if i not in done]\n",
               "    missing = list(range(len(done), config.n))\n"),),
             ("tests/rollouts/test_rollout.py::test_resume_fills_the_holes_of_a_run_and_simulates_only_them",),
             "--resume continues after the count of stored episodes, as if they were ids 0..k-1"),
    Mutation("resume-clears-the-run", TWICE, "dataengine/formats/store.py",
             (("        leftovers = self.partials()\n", "        leftovers = list(self.episodes_dir.iterdir())\n"),),
             ("tests/rollouts/test_rollout.py::test_resume_fills_the_holes_of_a_run_and_simulates_only_them",),
             "--resume removes finished episodes with the partial ones and simulates them again (same ids, counts)"),
    Mutation("commit-stores-over", TWICE, "dataengine/formats/store.py",
             (("            if self.final.exists():\n                return False\n            os.rename",
               "            if self.final.exists():\n                shutil.rmtree(self.final)\n            os.rename"),),
             ("tests/rollouts/test_rollout.py::test_a_second_attempt_at_a_stored_episode_is_dropped_not_stored_over_it",),
             "a second attempt at an episode replaces the stored one"),
    Mutation("calibration-ignores-target", WIRING, "classifier/train.py",
             (("calibrate_threshold(val_scores, val_labels, config.target_precision)",
               "calibrate_threshold(val_scores, val_labels, 0.99)"),),
             ("tests/classifier/test_classifier.py::test_training_calibrates_for_the_target_precision_it_is_given",),
             "training calibrates for the default precision, whatever --target-precision says"),
    Mutation("no-slip-check", WIRING, "curation/filters.py",
             (("s.slip > config.max_slip", "s.slip > config.max_aperture"),),
             (f"{QUALITY}[slip]",), "the slip check compares with the aperture limit"),
    Mutation("no-edge-grip-check", WIRING, "curation/filters.py",
             (("        elif s.aperture > config.max_aperture:\n"
               "            rejected[c.key] = Rejection(\"edge_grip\", f\"aperture {s.aperture:.1f} > {config.max_aperture}\")\n",
               ""),),
             (f"{QUALITY}[edge-grip]",), "the edge-grip check is lost in a refactor"),
    Mutation("no-transport-check", WIRING, "curation/filters.py",
             (("        if s.transport_frames == 0:\n", "        if s.transport_frames < 0:\n"),),
             (f"{QUALITY}[no-transport]",), "episodes that never held the cube pass the grip step"),
    Mutation("no-jerk-check", WIRING, "curation/filters.py",
             (("        elif s.max_jerk > config.max_jerk:\n"
               "            rejected[c.key] = Rejection(\"jerk\", f\"{s.max_jerk:.3g} > {config.max_jerk:.3g} deg/s^3\")\n",
               ""),),
             (f"{QUALITY}[jerk]",), "the jerk check is lost in a refactor"),
    Mutation("limit-check-wrong-threshold", WIRING, "curation/filters.py",
             (("s.limit_frames > config.max_limit_frames", "s.limit_frames > config.max_frozen_frames"),),
             (f"{QUALITY}[joint-limits]",), "the joint-limit check compares with the frozen-frames limit"),
    Mutation("v3-tag-moved-only-once", WIRING, "dataengine/publish/hub.py",
             (("        _move_codebase_tag(api, repo_id, commit.oid, RevisionNotFoundError)\n",
               "        if parent is None:\n            _move_codebase_tag(api, repo_id, commit.oid, RevisionNotFoundError)\n"),),
             ("tests/publish/test_publish_hub.py::test_hub_publish_tags_moves_v3_and_lerobot_resolves_the_newest",),
             "v3.0 is set on the first version and left stale afterwards (a re-publish repairs it)"),
    Mutation("oldest-checkpoint", WIRING, "dataengine/base/workspace.py",
             (("max(existing, key=lambda e: e[\"time\"])", "existing[0]"),),
             ("tests/training/test_train.py::test_act_shortcut_finds_the_newest_trained_checkpoint",),
             "--policy act resolves to the first checkpoint trained, not the newest"),
    Mutation("growth-trigger-strict", BOUNDARY, "dataengine/hooks/runner.py",
             (("event.new_episodes >= hook.min_new_episodes", "event.new_episodes > hook.min_new_episodes"),),
             ("tests/hooks/test_hooks.py::test_a_version_grown_by_exactly_min_new_episodes_fires",),
             "a version grown by exactly min_new_episodes does not retrain"),
    Mutation("bowl-radius-without-margin", BOUNDARY, "scenes/outcome.py",
             (("r.bowl_inner_radius - r.cube_half_size * 0.5", "r.bowl_inner_radius"),),
             (OUTCOME,), "a cube resting on the bowl's inner wall counts as placed"),
    Mutation("outcome-last-step", BOUNDARY, "scenes/outcome.py",
             (("        if self.succeeded:\n            return Outcome.SUCCESS\n",
               "        if self._last is not None and self.in_bowl(self._last):\n            return Outcome.SUCCESS\n"),),
             (OUTCOME,), "outcome() calls any last step in the bowl a success (the old inconsistency)"),
    Mutation("hold-not-consecutive", BOUNDARY, "scenes/outcome.py",
             (("self._success_streak + 1 if self.in_bowl(truth) else 0", "self._success_streak + int(self.in_bowl(truth))"),),
             (OUTCOME,), "steps in the bowl are counted, not consecutive ones: a bounce through it adds up"),
    Mutation("hold-off-by-one", BOUNDARY, "scenes/outcome.py",
             (("self._success_streak >= r.success_hold_steps", "self._success_streak >= r.success_hold_steps - 1"),),
             (OUTCOME,), "one step fewer than the hold is a success"),
    Mutation("image-stats-bgr", ORACLE, "dataengine/formats/dataset_stats.py",
             (("                            stats.update(frame[None])\n",
               "                            stats.update(frame[None, :, :, ::-1])\n"),),
             ("tests/formats/test_stats_fix.py::test_stats_fix_replaces_lerobots_overflowed_image_std_and_reports_it",
              "tests/test_demos_dataset.py::test_sharded_demos_on_dask_merge_into_one_exact_dataset"),
             "decoded frames are accumulated in BGR order: red and blue stats swapped"),
    Mutation("vector-stats-skip-first-frame", ORACLE, "dataengine/formats/dataset_stats.py",
             (("                stats.update(column[episode_index == ep])\n",
               "                stats.update(column[episode_index == ep][1:])\n"),),
             ("tests/formats/test_stats_fix.py::test_stats_fix_replaces_lerobots_overflowed_image_std_and_reports_it",
              "tests/test_demos_dataset.py::test_sharded_demos_on_dask_merge_into_one_exact_dataset"),
             "each episode's first state and action are left out of the stats"),
    Mutation("training-does-not-learn", SMOKE, "dataengine/training/train.py",
             (("f\"--policy.{name}={config.learning_rate}\"", "f\"--policy.{name}=0.0\""),),
             ("tests/training/test_train.py::test_training_lowers_the_action_loss_on_its_dataset",),
             "lerobot-train runs, exits 0 and writes a checkpoint, at learning rate 0"),
)


@dataclass
class Result:
    name: str
    trap: str
    status: str
    """caught, survived, stale (its text is not in the file any more) or timeout (counted as caught)."""
    seconds: float
    failing: str = ""
    """The first failing test's line from pytest's summary."""


@contextmanager
def tree_copy(source: str) -> Iterator[Path]:
    """A throwaway copy of the project: HEAD (``git archive``) or the working tree's tracked and untracked files."""
    with tempfile.TemporaryDirectory(prefix="dataengine-mutation-") as tmp:
        copy = Path(tmp) / "tree"
        copy.mkdir()
        if source == "head":
            archive = subprocess.run(["git", "archive", "HEAD"], cwd=ROOT, capture_output=True, check=True).stdout
            with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
                tar.extractall(copy, filter="data")
        else:
            listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                                    capture_output=True, check=True).stdout.decode().split("\0")
            for name in filter(None, listed):
                if (ROOT / name).is_file():
                    (copy / name).parent.mkdir(parents=True, exist_ok=True)
                    (copy / name).write_bytes((ROOT / name).read_bytes())
        yield copy


def environment(copy: Path) -> dict[str, str]:
    return dict(os.environ, PYTHONPATH=str(copy), PYTHONDONTWRITEBYTECODE="1")


def check_imports_resolve_to(copy: Path) -> None:
    """The venv's editable install points at the checkout: PYTHONPATH must win, or mutations would test nothing."""
    probe = "import importlib, json; print(json.dumps({p: importlib.import_module(p).__file__ for p in %r}))" % (PACKAGES,)
    found = json.loads(subprocess.run([sys.executable, "-c", probe], cwd=copy, env=environment(copy),
                                      capture_output=True, text=True, check=True).stdout)
    wrong = {p: f for p, f in found.items() if not Path(f).resolve().is_relative_to(copy.resolve())}
    if wrong:
        raise SystemExit(f"imports do not resolve to the copy {copy}: {wrong}")


def run_tests(copy: Path, tests: tuple[str, ...]) -> tuple[int | None, str, float]:
    """(pytest's exit status or None on timeout, its first failure line, seconds)."""
    start = time.perf_counter()
    try:
        result = subprocess.run([sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", *tests],
                                cwd=copy, env=environment(copy), capture_output=True, text=True, timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        return None, "", time.perf_counter() - start
    lines = result.stdout.strip().splitlines() or [""]
    failures = [line for line in lines if line.startswith(("FAILED", "ERROR"))]
    return result.returncode, (failures or lines[-1:])[0], time.perf_counter() - start


def mutate(copy: Path, mutation: Mutation) -> str | None:
    """Apply the edits to the copy; returns the original text, or None when an edit's text is not there once."""
    path = copy / mutation.file
    original = path.read_text()
    text = original
    for old, new in mutation.edits:
        if text.count(old) != 1:
            return None
        text = text.replace(old, new)
    path.write_text(text)
    return original


def run(mutations: list[Mutation], source: str) -> list[Result]:
    with tree_copy(source) as copy:
        check_imports_resolve_to(copy)
        baseline = tuple(dict.fromkeys(t for m in mutations for t in m.tests))
        print(f"baseline: {len(baseline)} test selections in {copy}", flush=True)
        status, line, seconds = run_tests(copy, baseline)
        if status != 0:
            raise SystemExit(f"the unmutated tests do not pass ({line}): fix them before measuring mutations")
        print(f"baseline passes ({seconds:.0f} s)", flush=True)
        outcomes = []
        for mutation in mutations:
            original = mutate(copy, mutation)
            if original is None:
                outcomes.append(Result(mutation.name, mutation.trap, "stale", 0.0))
            else:
                try:
                    status, line, seconds = run_tests(copy, mutation.tests)
                finally:
                    (copy / mutation.file).write_text(original)
                verdict = "timeout" if status is None else "survived" if status == 0 else "caught"
                outcomes.append(Result(mutation.name, mutation.trap, verdict, seconds, line if status else ""))
            print(f"{outcomes[-1].status:8s} {mutation.name} ({outcomes[-1].seconds:.0f} s) {outcomes[-1].failing}",
                  flush=True)
        return outcomes


def score(outcomes: list[Result]) -> tuple[int, int]:
    """(caught, total), stale mutations left out."""
    counted = [o for o in outcomes if o.status != "stale"]
    return sum(o.status in ("caught", "timeout") for o in counted), len(counted)


def report(outcomes: list[Result]) -> str:
    lines = ["| trap | mutation | result |", "|---|---|---|"]
    lines += [f"| {o.trap} | `{o.name}` | {o.status} |" for o in outcomes]
    caught, total = score(outcomes)
    return "\n".join(lines) + f"\n\ncaught {caught}/{total}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", action="append", default=[], metavar="NAME", help="run only these mutations")
    parser.add_argument("--tree", choices=("head", "working"), default="head",
                        help="copy the last commit (default) or the working tree as it is")
    parser.add_argument("--list", action="store_true", help="list the mutations and exit")
    parser.add_argument("--json", type=Path, help="also write the outcomes here")
    args = parser.parse_args(argv)
    if args.list:
        for m in MUTATIONS:
            print(f"{m.name:32s} {m.trap:26s} {m.file}: {m.why}")
        return 0
    unknown = set(args.only) - {m.name for m in MUTATIONS}
    if unknown:
        parser.error(f"unknown mutation(s): {', '.join(sorted(unknown))} (see --list)")
    chosen = [m for m in MUTATIONS if not args.only or m.name in args.only]
    outcomes = run(chosen, args.tree)
    print(report(outcomes))
    if args.json:
        caught, total = score(outcomes)
        args.json.write_text(json.dumps({"caught": caught, "total": total, "tree": args.tree,
                                         "commit": subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT,
                                                                  capture_output=True, text=True).stdout.strip(),
                                         "mutations": [asdict(o) for o in outcomes]}, indent=2))
    caught, total = score(outcomes)
    return 0 if caught == total else 1


if __name__ == "__main__":
    sys.exit(main())
