"""``dataengine cycle``: rollout -> curate -> publish -> hooks from one dataengine.toml; a second round grows the
newest version, and a re-run finds every stage done (what finishing an interrupted round relies on)."""

from __future__ import annotations

import json

from file_identities import file_identities

from so101_dataengine.cli import main
from so101_dataengine.formats.store import EpisodeStore
from so101_dataengine.hooks.ledger import Ledger
from so101_dataengine.publish.registry import LocalRegistry

REPO = "lab/so101_cycle"


def test_cycle_rounds_grow_versions_fire_hooks_once_and_rerun_idempotently(tmp_path, capsys,
                                                                                       monkeypatch, lerobot_home):
    monkeypatch.delenv("DATAENGINE_REGISTRY", raising=False)  # --workspace alone must place the registry
    monkeypatch.delenv("DATAENGINE_WORKSPACE", raising=False)
    monkeypatch.chdir(tmp_path)
    config = tmp_path / "dataengine.toml"
    config.write_text(f"""
ledger = "{tmp_path}/ledger.jsonl"

[cycle]
repo_id = "{REPO}"
policy = "scripted"
n = 3
image_size = 32
use_sim_outcome = true

[curate]
vcodec = "h264"

[[hooks]]
name = "record"
repo_id = "{REPO}"
argv = ["{{python}}", "-c", "import sys; open(sys.argv[1], 'a').write(sys.argv[2] + chr(10))",
        "{tmp_path}/calls.txt", "{{tag}}"]
out_dir = "{tmp_path}/hooks/{{hook}}/{{tag}}"
eval = {{ n = 2, checkpoint = "scripted", args = ["--image-size", "32", "--workers", "1", "--device", "cpu"] }}
""")
    def cycle(name: str) -> int:
        return main(["--workspace", str(tmp_path / "ws"), "cycle", name, "--config", str(config), "--workers", "1"])

    assert cycle("round1") == 0
    assert not (tmp_path / "outputs").exists(), "--workspace did not move the registry: ./outputs was written"
    registry = LocalRegistry(tmp_path / "ws" / "registry")
    (first,) = registry.versions(REPO)
    dataset = tmp_path / "ws" / "cycles" / "round1" / "dataset"
    assert first.total_episodes == json.loads((dataset / "meta" / "info.json").read_text())["total_episodes"] >= 1
    assert (tmp_path / "calls.txt").read_text().split() == [first.tag]
    capsys.readouterr()
    assert main(["--workspace", str(tmp_path / "ws"), "versions", REPO, "--config", str(config)]) == 0
    assert first.tag in capsys.readouterr().out, "versions --workspace reads the registry cycle wrote"

    assert cycle("round2") == 0  # starts from the newest version: the dataset grows
    first, second = registry.versions(REPO)
    assert second.total_episodes >= first.total_episodes and second.parent == first.tag
    runs = [tmp_path / "ws" / "cycles" / name / "rollout" for name in ("round1", "round2")]
    seeds = [EpisodeStore.open(run).manifest["seed"] for run in runs]
    assert seeds == [1_000_000, 1_000_003], "each round rolls out new scenes"
    assert (tmp_path / "calls.txt").read_text().split() == [first.tag, second.tag]
    out = capsys.readouterr().out
    trend = out[out.index("cycle trend over 2 round(s)"):].splitlines()[1:]
    runs = {r.tag: r for r in Ledger(tmp_path / "ledger.jsonl").runs()}
    assert all(runs[v.tag].evaluation["episodes"] == 2 for v in (first, second)), "each round's hook was evaluated"
    assert [line.split() for line in trend] == [
        [name, v.tag, str(v.total_episodes), "episodes", "record", *runs[v.tag].success().split()]
        for name, v in (("round1", first), ("round2", second))]

    done = {part: file_identities(tmp_path / "ws" / "cycles" / "round2" / part) for part in ("rollout/episodes",
                                                                                              "dataset")}
    assert cycle("round2") == 0  # everything done: the rollout has nothing left, curate and publish are skipped
    assert {part: file_identities(tmp_path / "ws" / "cycles" / "round2" / part) for part in done} == done, \
        "a re-run re-did finished work (episodes re-simulated or the dataset rewritten)"
    out = capsys.readouterr().out
    assert "curated dataset already written" in out and f"already published as {REPO} {second.tag}" in out
    assert len(registry.versions(REPO)) == 2
    assert out.rstrip().splitlines()[-2:] == trend, "a re-run prints the same trend"
    assert (tmp_path / "calls.txt").read_text().split() == [first.tag, second.tag], "a hook fires once per version"
