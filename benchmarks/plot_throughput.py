"""The throughput curve of docs/benchmarks.md: env-steps/s against environments in flight (workers x envs per
worker), from one or more ``gpu_throughput.py`` result files, with the naive loop as the baseline.

    python benchmarks/plot_throughput.py benchmarks/results/gpu_throughput/gpu_throughput_jpeg_h200_*.json --out docs/throughput.png
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", nargs="+", type=Path)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    points, naive = [], None
    for path in args.results:
        data = json.loads(path.read_text())
        naive = data.get("naive_default_shadows", naive)
        for run in data["engine"]:
            workers, envs, lanes = map(int, re.match(r"(\d+) workers x (\d+) envs x (\d+) lanes",
                                                     run["capacity"]).groups())
            points.append((workers * envs, run["env_steps_per_s"], f"{workers}x{envs}x{lanes}"))
    points.sort()
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot([p[0] for p in points], [p[1] for p in points], "o-", label="engine (recording included)")
    for envs, rate, label in points:
        ax.annotate(label, (envs, rate), textcoords="offset points", xytext=(4, -12), fontsize=8)
    if naive:
        ax.axhline(naive, color="grey", linestyle="--", label=f"naive loop ({naive:.0f})")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("environments in flight (labels: workers x envs per worker x lanes)")
    ax.set_ylabel("env-steps/s")
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(args.out, dpi=120)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
