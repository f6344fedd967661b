"""Which scenes do the payoff experiment's policies solve, and why do students plateau where their teacher does?

Every evaluation of ``benchmarks/payoff.py`` ran on the same 200 held-out scenes (seeds EVAL_SEED on) and records
each episode's outcome (``eval.json``'s ``per_episode``); a scene is fully determined by its seed, so its cube and
bowl poses can be rebuilt here. The base demos' scenes are rebuilt too (``demos.shard_plan``: the leases' demos.log
show 40 attempts for 40 kept episodes, so the scenes are exactly the planned seeds). This script pools the leases'
logs tarballs and reports success by scene feature, above all by how far a scene's cube lies from the nearest demo's
cube (in the units of the scene sampler's box): if a policy trained on 40 demos only solves scenes near them, its
successes (the curated data) lie near them too, and distilling them cannot teach the rest of the scene space.

    python -m benchmarks.payoff_scenes [--logs TGZ ...] [--out results.json] [--figure scenes.png]

Intervals are 95 % percentile bootstraps over scenes (every policy's outcome on a scene moves together), so pooling
several policies does not shrink them as if their episodes were independent.
"""

from __future__ import annotations

import argparse
import io
import json
import tarfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from benchmarks.report import emit
from so101_dataengine.base.seeds import DEMO_SEED
from so101_dataengine.demos import DemosConfig, shard_plan
from so101_dataengine.scenes.outcome import Outcome
from so101_dataengine.scenes.randomization import SceneRandomization, sample_scene

RESULTS = Path(__file__).parent / "results" / "payoff"
BASE_DEMOS = 40
"""The payoff experiment's base: 40 demos recorded by 8 shards (``Scale.sim_workers``) from DEMO_SEED."""
DEMO_WORKERS = 8
BOOTSTRAP = 2000
GROUPS = {
    "teachers": lambda name: name == "act-i",
    "ACT students": lambda name: name.startswith("act-") and name != "act-i",
    "Diffusion (i)": lambda name: name == "diffusion-i",
    "Diffusion (ii)": lambda name: name.startswith("diffusion-") and name != "diffusion-i",
}
"""Policies pooled in the report, by their payoff name: ``act-i``, trained on the base demos, is every lease's teacher;
the ACT students are trained on base + teacher rollouts (any filter, recipe or round); Diffusion (i) on the base."""


@dataclass(frozen=True)
class Scenes:
    """The features of a list of scenes, one row each."""

    cube: np.ndarray
    """(n, 2) cube centre x, y in the robot's base frame (m)."""
    yaw: np.ndarray
    bowl: np.ndarray

    @classmethod
    def from_seeds(cls, seeds: list[int], randomization: SceneRandomization) -> Scenes:
        drawn = [sample_scene(np.random.default_rng(seed), randomization) for seed in seeds]
        return cls(np.array([s.cube_xy for s in drawn]), np.array([s.cube_yaw for s in drawn]),
                   np.array([s.bowl_xy for s in drawn]))


def demo_seeds(n: int = BASE_DEMOS, workers: int = DEMO_WORKERS) -> list[int]:
    """The base demos' scene seeds, when every attempt succeeded."""
    config = DemosConfig(out="-", n=n, workers=workers, seed=DEMO_SEED)
    return [first + k for first, size in shard_plan(config) for k in range(size)]


def nearest_demo_distance(scenes: Scenes, demos: Scenes, randomization: SceneRandomization) -> np.ndarray:
    """Each scene's distance from the nearest demo's cube, with x and y scaled by the sampler's ranges."""
    low = np.array([randomization.cube_x[0], randomization.cube_y[0]])
    span = np.array([randomization.cube_x[1], randomization.cube_y[1]]) - low
    a, b = (scenes.cube - low) / span, (demos.cube - low) / span
    return np.sqrt(((a[:, None, :] - b[None, :, :]) ** 2).sum(-1)).min(axis=1)


def _eval_records(tarball: Path) -> list[tuple[str, dict]]:
    """Every ``eval/<policy>/eval.json`` of one logs tarball, as (policy, record); a file that is not such a tarball,
    or a record without the fields read here, is a ValueError naming it."""
    records = []
    try:
        with tarfile.open(tarball) as archive:
            for member in archive.getmembers():
                parts = member.name.split("/")
                if len(parts) == 3 and parts[0] == "eval" and parts[2] == "eval.json" and member.isfile():
                    record = json.load(io.TextIOWrapper(archive.extractfile(member)))
                    (policy,) = record["policies"]
                    records.append((parts[1], {"seed": int(record["seed"]), "n": int(record["n"]),
                                               "per_episode": list(policy["per_episode"])}))
    except (tarfile.TarError, OSError, UnicodeDecodeError, ValueError, KeyError, TypeError) as error:
        reason = " ".join(str(error).split())  # tarfile's reasons span lines: the error stays one line
        raise ValueError(f"{tarball} is not a readable payoff logs tarball ({type(error).__name__}: {reason}): pass "
                         "the *_logs.tgz that benchmarks/payoff_poll.sh brings back") from None
    if not records:
        raise ValueError(f"{tarball} holds no eval/<policy>/eval.json: pass a payoff logs tarball of a run whose "
                         "evaluations finished")
    return records


def read_evaluations(tarballs: list[Path]) -> tuple[dict[str, np.ndarray], int, int]:
    """Per policy (``<lease>:<name>``) a boolean success per scene, and the scenes' first seed and count."""
    outcomes: dict[str, np.ndarray] = {}
    seeds: set[tuple[int, int]] = set()
    for tarball in tarballs:
        lease = tarball.name.removesuffix("_logs.tgz").removeprefix("payoff_h200_")
        for name, record in _eval_records(tarball):
            seeds.add((record["seed"], record["n"]))
            outcomes[f"{lease}:{name}"] = np.array([o == Outcome.SUCCESS.value for o in record["per_episode"]])
    if len(seeds) != 1:
        raise ValueError(f"the evaluations ran on different scenes (first seed, n: {sorted(seeds)}), so they cannot "
                         "be paired: pass --logs of experiments evaluated on the same held-out seeds")
    (first, n), = seeds
    return outcomes, first, n


def rate_with_interval(success: np.ndarray, rng: np.random.Generator) -> dict:
    """Mean success of a (policies, scenes) array, with a bootstrap over scenes."""
    per_scene = success.mean(axis=0)
    draws = rng.integers(0, per_scene.size, (BOOTSTRAP, per_scene.size))
    low, high = np.quantile(per_scene[draws].mean(axis=1), [0.025, 0.975])
    return {"rate": float(per_scene.mean()), "ci95": [float(low), float(high)], "scenes": int(per_scene.size),
            "episodes": int(success.size)}


def by_tertile(feature: np.ndarray, groups: dict[str, np.ndarray], rng: np.random.Generator) -> dict:
    """Success of each group in the feature's lower, middle and upper third of the scenes."""
    edges = np.quantile(feature, [1 / 3, 2 / 3])
    bins = np.digitize(feature, edges)
    return {"edges": [float(e) for e in edges],
            "groups": {name: [rate_with_interval(success[:, bins == b], rng) for b in range(3)]
                       for name, success in groups.items()}}


def analyse(tarballs: list[Path], randomization: SceneRandomization | None = None) -> dict:
    randomization = randomization or SceneRandomization()
    outcomes, first, n = read_evaluations(tarballs)
    scenes = Scenes.from_seeds(list(range(first, first + n)), randomization)
    demos = Scenes.from_seeds(demo_seeds(), randomization)
    groups = {group: np.array([s for key, s in sorted(outcomes.items()) if keep(key.split(":")[1])])
              for group, keep in GROUPS.items()}
    groups = {group: success for group, success in groups.items() if success.size}
    rng = np.random.default_rng(0)
    features = {
        "nearest demo cube (scaled)": nearest_demo_distance(scenes, demos, randomization),
        "cube |yaw| (rad)": np.abs(scenes.yaw),
        "cube distance from the base (m)": np.hypot(*scenes.cube.T),
        "cube-bowl distance (m)": np.hypot(*(scenes.cube - scenes.bowl).T),
    }
    teachers = groups["teachers"]
    nearest = features["nearest demo cube (scaled)"]
    return {
        "scenes": {"first_seed": first, "n": n, "demo_seeds": demo_seeds()},
        "policies": {key: float(s.mean()) for key, s in sorted(outcomes.items())},
        "overall": {name: rate_with_interval(success, rng) for name, success in groups.items()},
        "by_feature": {name: by_tertile(values, groups, rng) for name, values in features.items()},
        "teachers_solving_each_scene": np.bincount(teachers.sum(axis=0), minlength=len(teachers) + 1).tolist(),
        "scenes_solved_by_any_policy": int(np.any(np.concatenate(list(groups.values())), axis=0).sum()),
        "demo_cubes": demos.cube.tolist(),
        "per_scene": [{"seed": first + k, "cube": scenes.cube[k].tolist(), "nearest_demo": float(nearest[k]),
                       "teachers_share": float(teachers[:, k].mean())} for k in range(n)],
    }


def figure(result: dict, path: Path) -> None:
    """The scene map (held-out cubes coloured by how often the teachers solved them, demos' cubes marked) beside
    success by nearest-demo distance."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cube = np.array([scene["cube"] for scene in result["per_scene"]])
    demo = np.array(result["demo_cubes"])
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.4))
    dots = left.scatter(cube[:, 1], cube[:, 0], c=[scene["teachers_share"] for scene in result["per_scene"]], cmap="viridis", vmin=0, vmax=1, s=28)
    left.scatter(demo[:, 1], demo[:, 0], marker="x", c="red", s=40, label="the 40 base demos' cubes")
    left.set(xlabel="cube y (m, left +)", ylabel="cube x (m, forward)", title="200 held-out scenes: teachers' success")
    left.invert_xaxis()
    left.legend(loc="lower left", fontsize=8)
    fig.colorbar(dots, ax=left, label="share of the 4 teachers that succeeded")
    tertiles = result["by_feature"]["nearest demo cube (scaled)"]
    width = 0.8 / len(tertiles["groups"])
    for k, (name, cells) in enumerate(tertiles["groups"].items()):
        x = np.arange(3) + (k - (len(tertiles["groups"]) - 1) / 2) * width
        rates = np.array([c["rate"] for c in cells]) * 100
        errors = np.abs(np.array([c["ci95"] for c in cells]).T * 100 - rates)
        right.bar(x, rates, width, yerr=errors, capsize=3, label=name)
    right.set_xticks(range(3), ["nearest third", "middle third", "farthest third"])
    right.set(ylabel="success (%)", title="success by the cube's distance from the nearest demo's")
    right.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--logs", nargs="+", type=Path, default=sorted(RESULTS.glob("payoff_h200_*_logs.tgz")),
                        help="payoff logs tarballs (default: every lease's under benchmarks/results/payoff)")
    parser.add_argument("--out", help="write the results JSON here too")
    parser.add_argument("--figure", type=Path, help="write the scene map and the tertile bars as PNG")
    args = parser.parse_args(argv)
    missing = [str(p) for p in args.logs if not p.is_file()]
    if missing or not args.logs:
        parser.exit(2, f"error: no payoff logs tarball at {', '.join(missing) or RESULTS}: pass --logs FILE.tgz\n")
    try:
        result = analyse(args.logs)
    except ValueError as error:
        parser.exit(2, f"error: {error}\n")
    if args.figure:
        figure(result, args.figure)
    emit(result, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
