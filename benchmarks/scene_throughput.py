"""Env-steps/s of one pick-and-place scene (physics alone, and with both cameras rendered) and the scripted
expert's success rate with the failure taxonomy. Produces the scene rows of docs/benchmarks.md.

    MUJOCO_GL=egl python benchmarks/scene_throughput.py --success-episodes 200 --out results.json
"""

from __future__ import annotations

import argparse
import collections
import os
import platform
import time

os.environ.setdefault("MUJOCO_GL", "egl")

from benchmarks.report import emit  # noqa: E402
from so101_dataengine.formats.episode import record_episode  # noqa: E402
from so101_dataengine.scenes.expert import ScriptedExpert  # noqa: E402
from so101_dataengine.scenes.outcome import Outcome  # noqa: E402
from so101_dataengine.scenes.pick_place import PickPlaceConfig, PickPlaceEnv  # noqa: E402


def steps_per_second(config: PickPlaceConfig, episodes: int, use_expert: bool = True) -> float:
    """Whole episodes end to end (reset, physics, rendering, outcome tracking, and the expert's IK if used).

    Without the expert the arm holds its start pose, which isolates physics + rendering.
    """
    env = PickPlaceEnv(config)
    expert = ScriptedExpert(env)
    act = (lambda _o: expert.act()) if use_expert else (lambda o: o.state)
    record_episode(env, 0, act, expert.reset)  # warm-up (GL context, caches)
    steps, start = 0, time.perf_counter()
    for seed in range(1, episodes + 1):
        steps += len(record_episode(env, seed, act, expert.reset).frames)
    elapsed = time.perf_counter() - start
    env.close()
    return steps / elapsed


def expert_success(episodes: int, first_seed: int) -> dict:
    env = PickPlaceEnv(PickPlaceConfig(render=False))
    expert = ScriptedExpert(env)
    outcomes: collections.Counter[str] = collections.Counter()
    for seed in range(first_seed, first_seed + episodes):
        outcomes[record_episode(env, seed, lambda _o: expert.act(), expert.reset).metrics.outcome.value] += 1
    return {"episodes": episodes, "first_seed": first_seed, "outcomes": dict(outcomes),
            "success_rate": outcomes[Outcome.SUCCESS.value] / episodes}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--speed-episodes", type=int, default=5)
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--success-episodes", type=int, default=200)
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--out", default=None)
    args = parser.parse_args()

    results = {
        "machine": f"{platform.node()} {platform.processor() or platform.machine()} cpus={os.cpu_count()}",
        "physics_steps_per_s": steps_per_second(PickPlaceConfig(render=False), 2, use_expert=False),
        "physics_two_cameras_steps_per_s": steps_per_second(
            PickPlaceConfig(image_size=args.image_size), 1, use_expert=False),
        "expert_steps_per_s": steps_per_second(PickPlaceConfig(render=False), args.speed_episodes),
        "expert_two_cameras_steps_per_s": steps_per_second(
            PickPlaceConfig(image_size=args.image_size), args.speed_episodes),
        "image_size": args.image_size,
        "expert": expert_success(args.success_episodes, args.first_seed) if args.success_episodes else None,
    }
    emit(results, args.out)


if __name__ == "__main__":
    main()
