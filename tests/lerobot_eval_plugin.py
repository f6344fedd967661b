"""lerobot's own ``lerobot-eval`` on the engine's scene, found the way lerobot 0.6 finds it: the plugin distribution
``lerobot_env_so101_dataengine`` installed by pip (into a directory on ``PYTHONPATH``, which
``importlib.metadata`` searches like site-packages), then discovered by name by ``register_third_party_plugins``."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from so101_dataengine.base.seeds import EVAL_SEED
from so101_dataengine.lerobot_compat.env_plugin import PLUGIN_DISTRIBUTION
from so101_dataengine.lerobot_env import ENV_TYPE

ROOT = Path(__file__).resolve().parents[1]
EPISODES = 2


def install_plugin(where: Path) -> Path:
    """pip-install the plugin distribution (without dependencies: so101-dataengine is this checkout) into
    ``where/site``; returns that directory. Built from a copy: setuptools writes build files into its source."""
    source, site = where / "source", where / "site"
    shutil.copytree(ROOT / "plugins" / PLUGIN_DISTRIBUTION, source)
    result = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-build-isolation", "--no-index",
                             "-q", "--target", str(site), str(source)], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    return site


def lerobot_eval(site: Path | None, checkpoint: Path, out: Path, *args: str,
                 async_envs: bool | None = False) -> subprocess.CompletedProcess:
    """The installed lerobot's ``lerobot-eval`` of ``checkpoint`` on ``EPISODES`` engine scenes from ``EVAL_SEED``,
    on the CPU, in one batch; the plugin distribution from ``site`` (None: none, name the package in ``args``); each
    env in a process of its own with ``async_envs``, all in this one without, lerobot's default with None (0.6:
    processes, 0.4.4: this one)."""
    command = [str(Path(sys.executable).parent / "lerobot-eval"), f"--env.type={ENV_TYPE}",
               f"--policy.path={checkpoint}", "--policy.device=cpu", f"--eval.n_episodes={EPISODES}",
               f"--eval.batch_size={EPISODES}", f"--seed={EVAL_SEED}", f"--output_dir={out}", *args]
    if async_envs is not None:
        command.append(f"--eval.use_async_envs={str(async_envs).lower()}")
    path = os.pathsep.join(p for p in (site and str(site), os.environ.get("PYTHONPATH")) if p)
    return subprocess.run(command, capture_output=True, text=True, timeout=900,
                          env={**os.environ, "PYTHONPATH": path, "MUJOCO_GL": "egl", "HF_HUB_OFFLINE": "1"})


def recordings(out: Path) -> list[Path]:
    """The recorded datasets of a ``lerobot-eval --eval.recording=true`` run, env 0 first: ``env_i`` holds the
    batch's i-th episode (scene ``EVAL_SEED + i``)."""
    return sorted((out / "recordings" / f"{ENV_TYPE}_0").glob("env_*"), key=lambda p: int(p.name.split("_")[1]))
