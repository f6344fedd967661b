"""``dataengine cycle``: rollout -> curate -> publish -> hooks from one dataengine.toml, and a re-run that finds
every stage done (what finishing an interrupted round relies on)."""

from __future__ import annotations

import json

from dataengine.cli import main
from dataengine.publish.registry import LocalRegistry

REPO = "lab/so101_cycle"


def test_cycle_publishes_a_curated_version_fires_its_hook_once_and_reruns_idempotently(tmp_path, capsys,
                                                                                       monkeypatch, lerobot_home):
    monkeypatch.setenv("DATAENGINE_REGISTRY", str(tmp_path / "registry"))
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
""")
    command = ["--workspace", str(tmp_path / "ws"), "cycle", "round1", "--config", str(config), "--workers", "1"]
    assert main(command) == 0
    versions = LocalRegistry(tmp_path / "registry").versions(REPO)
    assert len(versions) == 1
    dataset = tmp_path / "ws" / "cycles" / "round1" / "dataset"
    info = json.loads((dataset / "meta" / "info.json").read_text())
    assert versions[0].total_episodes == info["total_episodes"] >= 1
    assert (tmp_path / "calls.txt").read_text().split() == [versions[0].tag]
    capsys.readouterr()

    assert main(command) == 0  # everything done: the rollout has nothing left, curate and publish are skipped
    out = capsys.readouterr().out
    assert "curated dataset already written" in out and f"already published as {REPO} {versions[0].tag}" in out
    assert len(LocalRegistry(tmp_path / "registry").versions(REPO)) == 1
    assert (tmp_path / "calls.txt").read_text().split() == [versions[0].tag], "a hook fires once per version"
