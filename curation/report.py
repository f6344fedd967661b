"""The curation report: one self-contained HTML page (figures inlined as base64 PNG) plus the same PNGs and a
summary.json, so a person can judge the filters at a glance: counts per step and per simulator failure type,
the score histogram, and frame strips of accepted and rejected episodes."""

from __future__ import annotations

import base64
import collections
import dataclasses
import html
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from so101_dataengine.base.configs import to_jsonable  # noqa: E402
from so101_dataengine.curation.filters import Candidate, StepReport  # noqa: E402
from so101_dataengine.formats.store import EpisodeStore  # noqa: E402

STRIP_FRAMES = 6


def _save(figure, path: Path) -> None:
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def _steps_figure(reports: list[StepReport], path: Path) -> None:
    figure, axis = plt.subplots(figsize=(7, 3.2))
    names = [r.name if r.enabled else f"{r.name}\n(off)" for r in reports]
    rejected = [len(r.rejected) for r in reports]
    kept = [r.seen - len(r.rejected) for r in reports]
    axis.bar(names, kept, color="#4c9f70", label="passed")
    axis.bar(names, rejected, bottom=kept, color="#d1495b", label="rejected")
    for i, (k, r) in enumerate(zip(kept, rejected)):
        axis.text(i, k + r, f"-{r}", ha="center", va="bottom", fontsize=8)
    axis.set_ylabel("episodes")
    axis.set_title("episodes in / rejected per filter step (in order)")
    axis.legend()
    _save(figure, path)


def _outcomes_figure(candidates: list[Candidate], decided: dict, path: Path) -> None:
    """Per simulator outcome (ground truth, for auditing): where its episodes ended up."""
    outcomes = sorted({c.outcome or "unknown" for c in candidates})
    fates = ["accepted"] + sorted({v for v in decided.values() if v != "accepted"})
    counts = {f: [sum(1 for c in candidates if (c.outcome or "unknown") == o and decided[c.key] == f) for o in outcomes]
              for f in fates}
    figure, axis = plt.subplots(figsize=(7, 3.2))
    bottom = np.zeros(len(outcomes))
    colors = plt.cm.tab10.colors
    for i, fate in enumerate(fates):
        axis.barh(outcomes, counts[fate], left=bottom, label=fate, color="#4c9f70" if fate == "accepted" else colors[i % 10])
        bottom += counts[fate]
    axis.set_xlabel("episodes")
    axis.set_title("simulator outcome -> accepted, or the step that rejected it")
    axis.legend(fontsize=7)
    _save(figure, path)


def _scores_figure(candidates: list[Candidate], threshold: float | None, path: Path) -> bool:
    scored = [c for c in candidates if c.score is not None]
    if not scored:
        return False
    figure, axis = plt.subplots(figsize=(7, 3.2))
    bins = np.linspace(0, 1, 26)
    groups = collections.defaultdict(list)
    for c in scored:
        groups["SUCCESS" if c.outcome == "SUCCESS" else "failure" if c.outcome else "unknown"].append(c.score)
    for label, scores in sorted(groups.items()):
        axis.hist(scores, bins=bins, alpha=0.6, label=f"{label} (sim)", color="#4c9f70" if label == "SUCCESS" else None)
    if threshold is not None:
        axis.axvline(threshold, color="black", linestyle="--", label=f"threshold {threshold:.2f}")
    axis.set_xlabel("success score")
    axis.set_ylabel("episodes")
    axis.set_title("verdict scores by simulator outcome")
    axis.legend(fontsize=8)
    _save(figure, path)
    return True


def frame_strip(store: EpisodeStore, episode_id: int) -> np.ndarray:
    """``STRIP_FRAMES`` frames of the episode's first camera, evenly spaced from start to end, side by side."""
    picks = np.linspace(0, store.read_meta(episode_id)["length"] - 1, STRIP_FRAMES).astype(int)
    images = store.read(episode_id, frames=picks).images  # decodes only the strip's frames
    return np.concatenate(list(images[sorted(images)[0]]), axis=1)


def _gallery_figure(rows: list[tuple[Candidate, str]], stores: list[EpisodeStore], title: str, path: Path) -> bool:
    if not rows:
        return False
    figure, axes = plt.subplots(len(rows), 1, figsize=(9, 1.6 * len(rows)), squeeze=False)
    for axis, (c, label) in zip(axes[:, 0], rows):
        axis.imshow(frame_strip(stores[c.key[0]], c.key[1]))
        score = "" if c.score is None else f"score {c.score:.2f} · "
        axis.set_title(f"run {c.key[0]} ep {c.key[1]} · {score}sim {c.outcome} · {label}", fontsize=8, loc="left")
        axis.axis("off")
    figure.suptitle(title)
    _save(figure, path)
    return True


def _gallery_rows(candidates, accepted, decided, reasons, count: int):
    picks = np.linspace(0, len(accepted) - 1, min(count, len(accepted))).astype(int) if accepted else []
    accepted_rows = [(accepted[i], "accepted") for i in picks]
    by_step = collections.defaultdict(list)
    for c in candidates:
        if decided[c.key] != "accepted":
            by_step[decided[c.key]].append(c)
    rejected_rows, lists = [], [v for _, v in sorted(by_step.items())]
    while len(rejected_rows) < count and any(lists):  # round-robin over steps: every rejecting step is shown
        for members in lists:
            if members and len(rejected_rows) < count:
                c = members.pop(0)
                rejected_rows.append((c, f"{decided[c.key]}: {reasons[c.key]}"))
    return accepted_rows, rejected_rows


DECISIONS = "decisions.jsonl"
"""One line per candidate episode: its run, episode index, score and the step that decided it (``accepted``, or
the rejecting step with its code and detail); the review page shows why an episode is not in the dataset."""


def _write_decisions(path: Path, candidates: list[Candidate], decided: dict, reasons: dict,
                     stores: list[EpisodeStore]) -> None:
    lines = []
    for c in candidates:
        why = reasons.get(c.key)
        lines.append(json.dumps({"run": str(stores[c.key[0]].root), "episode": c.key[1], "score": c.score,
                                 "decision": decided.get(c.key, "accepted"), "code": why.code if why else None,
                                 "detail": why.detail if why else None}))
    path.write_text("".join(line + "\n" for line in lines))


def write_report(directory: Path, summary, candidates: list[Candidate], accepted: list[Candidate],
                 reports: list[StepReport], stores: list[EpisodeStore], threshold: float | None, gallery: int) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    decided = {c.key: "accepted" for c in accepted}
    reasons = {}
    for r in reports:
        for key, reason in r.rejected.items():
            decided[key], reasons[key] = r.name, reason
    figures = [("filters.png", "Filter steps")]
    _steps_figure(reports, directory / "filters.png")
    _outcomes_figure(candidates, decided, directory / "outcomes.png")
    figures.append(("outcomes.png", "Per failure type (simulator outcome)"))
    if _scores_figure(candidates, threshold, directory / "scores.png"):
        figures.append(("scores.png", "Score histogram"))
    accepted_rows, rejected_rows = _gallery_rows(candidates, accepted, decided, reasons, gallery)
    if _gallery_figure(accepted_rows, stores, "accepted", directory / "gallery_accepted.png"):
        figures.append(("gallery_accepted.png", "Accepted episodes (frame strips)"))
    if _gallery_figure(rejected_rows, stores, "rejected", directory / "gallery_rejected.png"):
        figures.append(("gallery_rejected.png", "Rejected episodes (frame strips, with the reason)"))
    summary_json = to_jsonable(dataclasses.asdict(summary))
    (directory / "summary.json").write_text(json.dumps(summary_json, indent=2))
    _write_decisions(directory / DECISIONS, candidates, decided, reasons, stores)
    rows = "".join(f"<tr><td>{html.escape(s['name'])}{'' if s['enabled'] else ' (off)'}</td><td>{s['seen']}</td>"
                   f"<td>{s['rejected']}</td><td>{html.escape(', '.join(f'{k}: {v}' for k, v in s['reasons'].items()))}"
                   "</td></tr>" for s in summary_json["steps"])
    measured = html.escape(json.dumps(summary_json["measured"]))
    body = "".join(
        f"<h2>{html.escape(title)}</h2><img src='data:image/png;base64,"
        f"{base64.b64encode((directory / name).read_bytes()).decode()}'/>" for name, title in figures)
    page = (f"<!doctype html><html><head><meta charset='utf-8'><title>curation report</title><style>"
            "body{font-family:sans-serif;margin:2em}td,th{border:1px solid #ccc;padding:4px 8px}"
            "table{border-collapse:collapse}img{max-width:100%}</style></head><body>"
            f"<h1>Curation report: {html.escape(str(summary.out))}</h1>"
            f"<p>{summary.accepted} of {summary.candidates} rollout episodes accepted; {summary.base_episodes} base "
            f"episodes. Measured against the simulator's outcome: <code>{measured}</code></p>"
            f"<table><tr><th>step</th><th>in</th><th>rejected</th><th>reasons</th></tr>{rows}</table>{body}"
            "</body></html>")
    (directory / "report.html").write_text(page)
    return directory / "report.html"
