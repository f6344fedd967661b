"""The dataset card (``README.md`` of a version): what is in it, where it came from, how to load exactly it, and
the policies trained on it with their evaluated success.

A version is immutable, and its card is written with it, before any hook has trained on it: so the stored
``README.md`` only says where the evaluations are, and the card *shown* (``dataengine versions REPO --card TAG``)
is rendered again from the version's own files with a "Policies trained on this version" section from the hook
ledger, which grows as trainings end (the ledger is their record; they are facts about policies, not about data).
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from so101_dataengine.base.files import read_json_object
from so101_dataengine.formats.v3_dataset import ENGINE_META, PROVENANCE_FIX, read_info
from so101_dataengine.publish.manifest import VersionManifest
from so101_dataengine.publish.verify import STATS_FIX

PROVENANCE_KEYS = {
    "source_runs": "source runs",
    "policy": "policy",
    "policy_hash": "policy hash",
    "classifier": "classifier (version and metrics)",
    "filters": "filters (episodes kept / removed)",
}
"""Provenance that ``meta/dataengine.json`` of a curated dataset may carry, in card order; absent ones are skipped."""


def _provenance(engine_meta: dict) -> list[str]:
    lines = []
    for key, label in PROVENANCE_KEYS.items():
        if key in engine_meta:
            value = engine_meta[key]
            text = json.dumps(value, sort_keys=True) if isinstance(value, (dict, list)) else str(value)
            lines.append(f"- **{label}**: `{text}`")
    config = engine_meta.get("config", {})
    if not lines and config:
        seeds = f"seeds from {config.get('seed')}" if "seed" in config else ""
        lines.append(f"- recorded by `dataengine demos` (scripted expert{', ' + seeds if seeds else ''}); full config in "
                     "`meta/dataengine.json`")
    return lines or ["- no `meta/dataengine.json`: provenance unknown"]


def _stats_table(stats: dict, features: dict) -> list[str]:
    rows = ["| feature | dtype | shape | mean | std |", "|---|---|---|---|---|"]
    for key, feature in features.items():
        if key not in stats or feature["dtype"] == "string":
            continue
        mean, std = (json.dumps(_rounded(stats[key].get(s))) for s in ("mean", "std"))
        rows.append(f"| `{key}` | {feature['dtype']} | {tuple(feature['shape'])} | {mean} | {std} |")
    return rows


def _rounded(value):
    if isinstance(value, list):
        flat = [v for v in value]
        while flat and isinstance(flat[0], list) and len(flat[0]) == 1:  # (3, 1, 1) image stats -> (3,)
            flat = [v[0] for v in flat]
        return [_rounded(v) for v in flat]
    return round(float(value), 3) if value is not None else None


def _evaluations(repo: str, tag: str, runs: list | None) -> list[str]:
    """``runs``: the hook runs on this version (``HookRun``s of the ledger); None: not known yet (publish time)."""
    if runs is None:
        return ["Evaluated after this version was published, so not part of this file: "
                f"`dataengine versions {repo} --card {tag}` shows this card with them (from the hook ledger)."]
    if not runs:
        return ["No hook has trained on this version yet."]
    seeds = sorted({r.evaluation["seed"] for r in runs if r.evaluation and r.evaluation.get("seed") is not None})
    rows = ["| hook | run | status | success (95 % CI) | evaluation |", "|---|---|---|---|---|"]
    for r in runs:
        where = f"`{r.evaluation['eval']}`" if r.evaluation else "-"
        rows.append(f"| {r.hook} | {r.run_id.rsplit(':', 1)[-1]}{' (manual)' if r.manual else ''} | {r.status} | "
                    f"{r.success()} | {where} |")
    scenes = (f" (held-out scenes from seed {', '.join(map(str, seeds))})" if seeds
              else "")
    return [f"Success of each trained policy in `dataengine eval`{scenes}, 95 % Wilson interval:", "", *rows]


def render_card(root: Path, manifest: VersionManifest, registry_root: Path | None, runs: list | None = None) -> str:
    """Markdown card for the version whose files are at ``root``; ``runs``: the hook runs trained on it, for the
    card as shown (None when publishing: the section then says where to find them)."""
    info = read_info(root)
    stats = read_json_object(root / "meta" / "stats.json", STATS_FIX) if (root / "meta" / "stats.json").is_file() else {}
    engine_path = root / "meta" / ENGINE_META
    engine_meta = read_json_object(engine_path, PROVENANCE_FIX) if engine_path.is_file() else {}
    outcomes = Counter(e["outcome"] for e in manifest.episodes if "outcome" in e)
    success = (f"{outcomes['SUCCESS'] / sum(outcomes.values()):.1%} ({outcomes['SUCCESS']} of {sum(outcomes.values())})"
               if outcomes else "not recorded")
    repo, tag = manifest.repo_id, manifest.tag
    local = (f'LeRobotDataset("{repo}", root="{registry_root / repo / "versions" / tag}")' if registry_root
             else "(published to the Hub only)")
    lines = [
        "---", "library_name: lerobot", "tags: [LeRobot, so101, dataengine]", "---", "",
        f"# {repo} @ `{tag}`", "",
        f"Published {manifest.created} by dataengine. Parent version: `{manifest.parent or 'none'}`.",
        f"Message: {manifest.message or '-'}", "",
        "## Load exactly this version", "",
        "```python",
        "from lerobot.datasets.lerobot_dataset import LeRobotDataset",
        "# from the Hub (or `dataengine serve`): the tag names this version forever; a root of its own keeps",
        "# lerobot's per-repo cache from handing you another version's files",
        f'ds = LeRobotDataset("{repo}", revision="{tag}", root="~/.cache/dataengine/{repo}/{tag}")',
        "# from the local registry",
        f"ds = {local}",
        "```",
        f"`LeRobotDataset(\"{repo}\")` (revision `v3.0`) resolves to the newest version of the repo, which is this one "
        "only until the next publish.", "",
        "## Contents", "",
        f"- episodes: {manifest.total_episodes}, frames: {manifest.total_frames}, fps: {info['fps']}, "
        f"robot: {info.get('robot_type')}",
        f"- success rate (simulator outcome): {success}",
        f"- outcomes: {dict(sorted(outcomes.items())) or 'not recorded'}",
        f"- content id: `{manifest.content_id}` (sha256 of every file is in `meta/version.json`)", "",
        "## Policies trained on this version", "",
        *_evaluations(repo, tag, runs), "",
        "## Provenance", "",
        *_provenance(engine_meta), "",
        "## Stats (meta/stats.json)", "",
        *_stats_table(stats, info["features"]), "",
    ]
    return "\n".join(lines)
