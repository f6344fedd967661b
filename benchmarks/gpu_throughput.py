"""End-to-end env-steps/s (both cameras rendered, ACT in the loop, physics, recording) of the naive loop vs the
rollout engine at several sizes, with GPU utilisation and memory. Produces the throughput rows of
docs/benchmarks.md (run on the GPU machine; works on CPU too).

    python benchmarks/gpu_throughput.py --policy CKPT --configs auto,4x32,4x64,4x128 --max-steps 300

A config is WORKERSxENVS[xLANES], or ``auto`` (the engine's own choice: default workers and the batch-size ladder).
Each engine run rolls out two waves of episodes (2 x workers x envs), start-up included.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import tempfile
import time
from pathlib import Path

os.environ.setdefault("MUJOCO_GL", "egl")

from benchmarks.report import emit  # noqa: E402
from so101_dataengine.base.executors import ExecutorConfig, default_workers  # noqa: E402
from so101_dataengine.base.workspace import Workspace  # noqa: E402
from so101_dataengine.rollouts.config import RolloutConfig  # noqa: E402
from so101_dataengine.rollouts.policies import LeRobotPolicy  # noqa: E402
from so101_dataengine.rollouts.run import rollout  # noqa: E402
from so101_dataengine.scenes.pick_place import PickPlaceConfig, PickPlaceEnv  # noqa: E402


def naive_loop(checkpoint: Path, steps: int, preset: str) -> float:
    """One env, one Renderer call per camera, batch-1 inference (lerobot-eval style), frames kept in memory."""
    policy = LeRobotPolicy(checkpoint)
    env = PickPlaceEnv(PickPlaceConfig(image_size=policy.image_size, render_preset=preset))
    frames, done, seed = [], 0, 0
    observation = env.reset(seed)
    policy.reset(0, env, seed)
    start = time.perf_counter()
    while done < steps:
        action = policy.act([0], [observation])[0]
        frames.append((observation, action))
        observation = env.step(action)
        done += 1
        if env.done:
            seed += 1
            observation = env.reset(seed)
            policy.reset(0, env, seed)
            frames.clear()
    return done / (time.perf_counter() - start)


class GpuMonitor:
    """nvidia-smi sampled every 200 ms while the engine runs (absent on CPU machines)."""

    def __enter__(self):
        self.file = tempfile.NamedTemporaryFile("w+", suffix=".csv")
        try:
            self.process = subprocess.Popen(["nvidia-smi", "--query-gpu=utilization.gpu,memory.used",
                                             "--format=csv,noheader,nounits", "-lms", "200"], stdout=self.file)
        except FileNotFoundError:
            self.process = None
        return self

    def __exit__(self, *exc):
        if self.process is not None:
            self.process.terminate()
            self.process.wait()
        self.file.seek(0)
        rows = [[float(v) for v in line.split(",")] for line in self.file.read().splitlines() if line.strip()]
        self.util_mean = sum(r[0] for r in rows) / len(rows) if rows else None
        self.memory_max_mib = max((r[1] for r in rows), default=None)


def engine(checkpoint: Path, config: str, max_steps: int, root: Path) -> dict:
    workers, envs, lanes = ([int(v) for v in config.split("x")] + [None])[:3] if config != "auto" else (None,) * 3
    executor = ExecutorConfig(workers=workers)
    n = 2 * (workers or default_workers()) * (envs or 256)
    rollout_config = RolloutConfig(policy=str(checkpoint), n=n, out=root / f"run-{config}", num_envs=envs, lanes=lanes,
                                   executor=executor, scene=PickPlaceConfig(image_size=None, max_episode_steps=max_steps))
    with GpuMonitor() as gpu:
        summary = rollout(rollout_config, Workspace(root / "ws"))
    return {"config": config, "capacity": summary.capacity.describe(), "episodes": summary.episodes,
            "env_steps": summary.env_steps, "seconds_incl_startup": summary.seconds,
            "env_steps_per_s": summary.env_steps_per_second, "worker_seconds": summary.phase_seconds,
            "gpu_util_mean_pct": gpu.util_mean, "gpu_memory_max_mib": gpu.memory_max_mib}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--policy", required=True)
    parser.add_argument("--configs", default="auto", help="auto or WORKERSxENVS[xLANES], comma-separated")
    parser.add_argument("--max-steps", type=int, default=150)
    parser.add_argument("--naive-steps", type=int, default=300, help="0: skip the naive baseline")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    checkpoint = Path(args.policy)
    results = {"engine": []}
    if args.naive_steps:
        results["naive_fast_preset"] = naive_loop(checkpoint, args.naive_steps, "fast")
        results["naive_default_shadows"] = naive_loop(checkpoint, args.naive_steps, "pretty")
    with tempfile.TemporaryDirectory() as tmp:
        for config in args.configs.split(","):
            results["engine"].append(engine(checkpoint, config, args.max_steps, Path(tmp)))
            print(json.dumps(results["engine"][-1]), flush=True)
    if args.naive_steps:
        best = max(r["env_steps_per_s"] for r in results["engine"])
        results["best_vs_naive_shadows"] = best / results["naive_default_shadows"]
        results["best_vs_naive_fast"] = best / results["naive_fast_preset"]
    emit(results, args.out)


if __name__ == "__main__":
    main()
