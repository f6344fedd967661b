"""What an evaluation shows a person: success with its interval per policy (against the training step for a
checkpoint sweep) as PNG, the sweep as JSON, and one self-contained HTML page with the table, the plot, a map of
where each policy succeeds and fails (every scene's cube start, by outcome) and, per failure type, a few frame strips
of episodes that ended that way (curation's gallery strips).

The map is there because a success rate hides *which* scenes fail: in the payoff experiment (docs/benchmarks.md,
Session 13) ACT students solved the scenes near their demos' and almost none of the rest, which the map shows at a
glance and the rate does not."""

from __future__ import annotations

import base64
import html
import json
from io import BytesIO
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from so101_dataengine.base.files import write_atomic  # noqa: E402
from so101_dataengine.curation.report import frame_strip  # noqa: E402
from so101_dataengine.formats.store import EpisodeStore  # noqa: E402
from so101_dataengine.scenes.outcome import Outcome  # noqa: E402

PLOT = "success.png"
SCENE_MAP = "scenes.png"
SWEEP = "sweep.json"
MAP_POLICIES = 4
"""Policies drawn on the scene map, the last ones listed (a sweep's latest checkpoints)."""
_MAP_STYLES = {Outcome.SUCCESS.value: ("o", "#4c9f70", "success"),
               Outcome.NEVER_PICKED_UP.value: ("x", "#9a9a9a", "never picked up")}
_OTHER_FAILURE = ("^", "#d1495b", "other failure")


def _success_figure(result, path: Path) -> None:
    """Success vs training step when every policy has a step (a sweep), else one bar per policy; 95 % intervals."""
    policies = result.policies
    rates = [100 * p.success_rate for p in policies]
    errors = [[100 * (p.success_rate - p.ci95[0]) for p in policies], [100 * (p.ci95[1] - p.success_rate) for p in policies]]
    figure, axis = plt.subplots(figsize=(7, 3.6))
    if all(p.step is not None for p in policies):
        axis.errorbar([p.step for p in policies], rates, yerr=errors, marker="o", capsize=4, color="#2f6690")
        axis.set_xlabel("training step")
    else:
        axis.bar(range(len(policies)), rates, yerr=errors, capsize=4, color="#4c9f70")
        axis.set_xticks(range(len(policies)), [p.label[-28:] for p in policies], rotation=20, ha="right", fontsize=7)
    axis.set_ylim(0, 100)
    axis.set_ylabel("success % (95 % Wilson CI)")
    axis.set_title(f"{result.n} held-out scenes from seed {result.seed}")
    axis.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def scene_outcomes(policy, store: EpisodeStore | None = None) -> list[tuple[float, float, str]]:
    """Each episode's cube start (x forward, y left of the robot's base, m) and outcome, from its run's records
    (``store``: the policy's run, when the caller has it open already)."""
    store = store or EpisodeStore.open(Path(policy.run_dir))
    return [(*store.read_meta(k)["scene"]["cube_xy"], outcome) for k, outcome in enumerate(policy.per_episode)]


def _scene_figure(result, path: Path) -> None:
    """The held-out scenes seen from above, one panel per policy: where the cube started, marked by outcome."""
    shown = result.policies[-MAP_POLICIES:]
    figure, axes = plt.subplots(1, len(shown), figsize=(0.6 + 3.2 * len(shown), 3.6), squeeze=False, sharey=True)
    for axis, policy in zip(axes[0], shown):
        store = EpisodeStore.open(Path(policy.run_dir))
        groups: dict[tuple, list[tuple[float, float]]] = {}
        for x, y, outcome in scene_outcomes(policy, store):
            groups.setdefault(_MAP_STYLES.get(outcome, _OTHER_FAILURE), []).append((x, y))
        for (marker, color, label), points in sorted(groups.items(), key=lambda item: item[0][2]):
            xs, ys = zip(*points)
            axis.scatter(ys, xs, marker=marker, c=color, s=18, label=f"{label} ({len(points)})")
        axis.set_title(f"{policy.label[-30:]}: {100 * policy.success_rate:.1f} %", fontsize=8)
        axis.set_xlabel("cube y (m, left +)")
        box = store.manifest["scene"]["randomization"]  # the whole sampled area
        margin = 0.01
        axis.set_xlim(box["cube_y"][1] + margin, box["cube_y"][0] - margin)  # y left: as seen from behind the robot
        axis.set_ylim(box["cube_x"][0] - margin, box["cube_x"][1] + margin)
        axis.legend(fontsize=6, loc="lower left")
        axis.grid(alpha=0.3)
    axes[0][0].set_ylabel("cube x (m, forward)")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def _gallery(result, per_type: int) -> list[tuple[str, list[tuple[str, object]]]]:
    """Per failure type: up to ``per_type`` strips (label, image), taken from the policies in turn."""
    sections = []
    for outcome in [o for o in Outcome if o is not Outcome.SUCCESS]:
        queues = [[(p, k) for k, o in enumerate(p.per_episode) if o == outcome.value] for p in result.policies]
        picked = []
        while len(picked) < per_type and any(queues):
            for queue in queues:
                if queue and len(picked) < per_type:
                    picked.append(queue.pop(0))
        if picked:
            strips = [(f"{p.label} · episode {k} (seed {result.seed + k})",
                       frame_strip(EpisodeStore.open(Path(p.run_dir)), k)) for p, k in picked]
            sections.append((outcome.value, strips))
    return sections


def _png_base64(image) -> str:
    figure, axis = plt.subplots(figsize=(9, 1.6))
    axis.imshow(image)
    axis.axis("off")
    figure.tight_layout(pad=0.1)
    buffer = BytesIO()
    figure.savefig(buffer, format="png", dpi=90)
    plt.close(figure)
    return base64.b64encode(buffer.getvalue()).decode()


def write_report(directory: Path, result, gallery: int) -> Path:
    """``success.png``, ``scenes.png``, ``sweep.json`` (a sweep only) and ``report.html`` in ``directory``; returns
    the page."""
    directory = Path(directory)
    _success_figure(result, directory / PLOT)
    _scene_figure(result, directory / SCENE_MAP)
    if all(p.step is not None for p in result.policies):
        sweep = [{"step": p.step, "success_rate": p.success_rate, "ci95": list(p.ci95), "episodes": p.episodes}
                 for p in result.policies]
        write_atomic(directory / SWEEP, json.dumps(sweep, indent=2))
    failures = [o for o in Outcome if o is not Outcome.SUCCESS]
    header = "".join(f"<th>{h}</th>" for h in ["policy", "success", "95 % CI", *(o.value for o in failures),
                                                 "pick rate", "drop rate", "mean steps of successes"])
    rows = "".join(
        f"<tr><td>{html.escape(p.label)}</td><td>{100 * p.success_rate:.1f} %</td>"
        f"<td>{100 * p.ci95[0]:.1f} .. {100 * p.ci95[1]:.1f}</td>"
        + "".join(f"<td>{p.outcomes.get(o.value, 0)}</td>" for o in failures)
        + f"<td>{100 * p.pick_rate:.1f} %</td><td>{100 * p.drop_rate:.1f} %</td>"
        f"<td>{'-' if p.mean_success_steps is None else f'{p.mean_success_steps:.0f}'}</td></tr>"
        for p in result.policies)
    labels = {p.name: p.label for p in result.policies}
    comparisons = "".join(
        f"<li>{html.escape(labels[c.policy])} vs {html.escape(labels[c.baseline])}: {100 * c.difference:+.1f} points "
        f"(95 % CI {100 * c.ci95[0]:+.1f} .. {100 * c.ci95[1]:+.1f}), McNemar exact p = {c.mcnemar_p:.3g}</li>"
        for c in result.comparisons)
    strips = "".join(
        f"<h3>{html.escape(outcome)}</h3>" + "".join(
            f"<figure><img src='data:image/png;base64,{_png_base64(image)}'/><figcaption>{html.escape(label)}"
            "</figcaption></figure>" for label, image in examples)
        for outcome, examples in _gallery(result, gallery))
    plot, scene_map = (base64.b64encode((directory / name).read_bytes()).decode() for name in (PLOT, SCENE_MAP))
    page = ("<!doctype html><html><head><meta charset='utf-8'><title>dataengine eval</title><style>"
            "body{font-family:sans-serif;margin:2em}td,th{border:1px solid #ccc;padding:4px 8px}"
            "table{border-collapse:collapse}img{max-width:100%}figure{margin:0 0 1em 0}</style></head><body>"
            f"<h1>Evaluation: {result.n} held-out scenes (seeds {result.seed}..{result.seed + result.n - 1})</h1>"
            f"<table><tr>{header}</tr>{rows}</table><ul>{comparisons}</ul>"
            f"<img src='data:image/png;base64,{plot}'/><h2>Where each policy succeeds and fails</h2>"
            "<p>Every held-out scene's cube start, seen from above (the robot's base at x = 0); "
            f"{'the last ' + str(MAP_POLICIES) + ' policies' if len(result.policies) > MAP_POLICIES else 'each policy'}."
            f"</p><img src='data:image/png;base64,{scene_map}'/>"
            f"<h2>Failures, by type</h2>{strips or '<p>none</p>'}"
            "</body></html>")
    write_atomic(directory / "report.html", page)
    return directory / "report.html"
