"""Hostile inputs, part 3: random damage to every file the readers touch, many times over (a seeded generator of
cuts, zeroed runs, flipped bytes and appended junk, reproducible from its seed).

The property: a reader either returns (the damage did not matter, e.g. a flipped pixel) or raises
``DataEngineError`` whose single line names the damaged file; never any other exception. The readers are called
in this process, so hundreds of cases take seconds; ``test_hardening_inputs`` shows the same through the commands.
"""

from __future__ import annotations

import random
import shutil
from pathlib import Path

import pytest

from so101_dataengine.base.errors import DataEngineError
from so101_dataengine.cli import main
from so101_dataengine.formats.store import EpisodeStore

CASES = 30


def damage(path: Path, rng: random.Random) -> str:
    """One random kind of damage to ``path``; returns what was done (for the failure message)."""
    data = bytearray(path.read_bytes())
    kind = rng.choice(["cut", "zero", "flip", "append", "empty"])
    at = rng.randrange(max(len(data), 1))
    if kind == "cut":
        data = data[:at]
    elif kind == "zero":
        end = at + rng.randint(1, 256)
        data[at:end] = bytes(len(data[at:end]))
    elif kind == "flip":
        for i in rng.sample(range(len(data)), min(len(data), rng.randint(1, 8))):
            data[i] ^= 1 << rng.randrange(8)
    elif kind == "append":
        data += bytes(rng.randrange(256) for _ in range(rng.randint(1, 64)))
    else:
        data = bytearray()
    path.write_bytes(bytes(data))
    return f"{kind} at {at} of {path.name}"


def assert_only_one_line_errors(call, target: Path, what: str) -> None:
    try:
        call()
    except DataEngineError as error:
        message = str(error)
        assert "\n" not in message and str(target) in message, (what, message)


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("fuzz") / "run"
    assert main(["rollout", "--policy", "scripted", "--n", "1", "--num-envs", "1", "--workers", "1", "--image-size",
                 "32", "--out", str(out)]) == 0
    return out


@pytest.mark.parametrize("seed", range(CASES))
def test_random_damage_to_an_episode_store_file(run, tmp_path, seed):
    rng = random.Random(seed)
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    files = sorted(p for p in (copy / "episodes" / "e000000").iterdir()) + [copy / "manifest.json"]
    target = rng.choice(files)
    what = damage(target, rng)
    store = EpisodeStore(copy)

    def read_everything() -> None:
        assert isinstance(store.manifest, dict)
        store.check(0)
        store.read(0)
        store.read_meta(0)

    assert_only_one_line_errors(read_everything, target, what)


@pytest.mark.parametrize("seed", range(CASES))
def test_random_damage_to_a_dataset_file(demo_dataset, tmp_path, seed):
    from so101_dataengine.formats.dataset_stats import compute_episode_stats
    from so101_dataengine.formats.v3_dataset import read_episodes, read_info, read_provenance
    from so101_dataengine.publish.manifest import episode_identities
    from so101_dataengine.publish.verify import check_shards, check_stats

    rng = random.Random(seed)
    copy = tmp_path / "dataset"
    shutil.copytree(demo_dataset.out, copy)
    files = sorted(p for p in copy.rglob("*") if p.is_file() and not p.name.endswith(".mp4"))
    target = rng.choice(files)
    what = damage(target, rng)

    def read_everything() -> None:
        info = read_info(copy)
        read_episodes(copy)
        read_provenance(copy)
        check_shards(copy, info)
        check_stats(copy, info)
        episode_identities(copy)
        compute_episode_stats(copy)

    assert_only_one_line_errors(read_everything, target, what)
