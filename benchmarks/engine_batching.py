"""Env-steps/s of the rollout engine with N environments in lock-step vs one environment at a time (the way
lerobot-eval style loops run), same policy, same seeds, side by side in one process. Recording included.

    python benchmarks/engine_batching.py --policy PATH/pretrained_model --episodes 8 --num-envs 8 --max-steps 120
    python benchmarks/engine_batching.py ... --temporal-ensemble 0.01     (a policy call every step)
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

os.environ.setdefault("MUJOCO_GL", "egl")

from benchmarks.report import emit  # noqa: E402
from so101_dataengine.formats.store import EpisodeStore  # noqa: E402
from so101_dataengine.rollouts.engine import ChunkTask, PolicySpec, run_chunk  # noqa: E402
from so101_dataengine.rollouts.lerobot_policy import inspect_checkpoint  # noqa: E402
from so101_dataengine.scenes.pick_place import PickPlaceConfig  # noqa: E402


def measure(spec: PolicySpec, scene: PickPlaceConfig, episodes: int, num_envs: int) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        store = EpisodeStore.create(Path(tmp) / "run", {"benchmark": True})
        start = time.perf_counter()
        result = run_chunk(ChunkTask(str(store.root), tuple(range(episodes)), 0, spec, scene, num_envs))
        return result.env_steps / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--policy", required=True, help="an ACT pretrained_model directory")
    parser.add_argument("--episodes", type=int, default=8)
    parser.add_argument("--num-envs", type=int, default=8)
    parser.add_argument("--max-steps", type=int, default=120, help="episode length cap (bounds the run time)")
    parser.add_argument("--temporal-ensemble", type=float, default=None)
    parser.add_argument("--device", default=None)
    parser.add_argument("--out", default=None)
    args = parser.parse_args()

    scene = PickPlaceConfig(image_size=inspect_checkpoint(Path(args.policy)), max_episode_steps=args.max_steps)
    spec = PolicySpec("act", str(Path(args.policy).resolve()), args.device, args.temporal_ensemble)
    measure(spec, scene, 1, 1)  # warm-up: load the policy (cached per process), GL context
    batched = measure(spec, scene, args.episodes, args.num_envs)
    single = measure(spec, scene, args.episodes, 1)
    results = {
        "machine": f"{platform.node()} cpus={os.cpu_count()}",
        "policy": args.policy,
        "image_size": scene.image_size,
        "temporal_ensemble": args.temporal_ensemble,
        "episodes": args.episodes,
        "max_steps": args.max_steps,
        f"engine_{args.num_envs}_envs_steps_per_s": batched,
        "one_env_at_a_time_steps_per_s": single,
        "ratio": batched / single,
    }
    emit(results, args.out)


if __name__ == "__main__":
    main()
