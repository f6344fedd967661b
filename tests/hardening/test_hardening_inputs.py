"""Hostile inputs, part 1: every file the engine reads, cut short or corrupted, in every command that reads it.

Each case damages one file of a real episode store, a real dataset, a hook ledger or a registry the way a full
disk, a killed copy or a hand edit does (cut in half, bytes zeroed in place, valid JSON of the wrong shape), runs
a real command on it and asserts what ``docs/guarantees.md`` promises: exit status 2, exactly one ``error:`` line
naming the damaged file, no traceback, nothing written at ``--out``, and every input byte-identical afterwards.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from so101_dataengine.cli import main

RUN_N = 2


def _digest(root: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(p for p in Path(root).rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def cut(path: Path) -> None:
    """Half the file is gone (a full disk, a killed copy)."""
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def zero(path: Path) -> None:
    """Bytes zeroed in the middle, size unchanged (a bad block; size checks alone cannot see it)."""
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    data[middle - 64 : middle + 64] = bytes(128)
    path.write_bytes(bytes(data))


def zero_header(path: Path) -> None:
    """The first frame's JPEG tables zeroed, size unchanged: only decoding the frame can tell."""
    data = bytearray(path.read_bytes())
    data[2:400] = bytes(398)
    path.write_bytes(bytes(data))


def json_array(path: Path) -> None:
    """Valid JSON of the wrong shape (a hand edit, another tool's file)."""
    path.write_text("[]")


def empty_object(path: Path) -> None:
    path.write_text("{}")


def assert_one_error_line(argv: list[str], capfd, names: str, inputs: list[Path], out: Path | None = None) -> str:
    """Run ``dataengine ARGV`` in this process (dask workers included: ``capfd`` sees their output too)."""
    before = [_digest(p) for p in inputs]
    capfd.readouterr()
    assert main(argv) == 2
    err = capfd.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in err, err
    assert names in errors[0], errors[0]
    assert [_digest(p) for p in inputs] == before, "an input was modified"
    if out is not None:
        assert not out.exists() and not list(out.parent.glob(f".{out.name}.partial-*")), "output left behind"
    return errors[0]


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    """A real finished rollout run: 2 scripted-expert episodes at 32 px."""
    out = tmp_path_factory.mktemp("hardening") / "run"
    assert main(["rollout", "--policy", "scripted", "--n", str(RUN_N), "--num-envs", "2", "--workers", "1",
                 "--image-size", "32", "--out", str(out)]) == 0
    return out


STORE_DAMAGE = [
    ("episodes/e000001/observation.images.wrist.mjpeg", cut),
    ("episodes/e000001/data.npz", cut),
    ("episodes/e000001/data.npz", zero),
    ("episodes/e000001/meta.json", cut),
    ("episodes/e000001/meta.json", json_array),
    ("manifest.json", cut),
]
STORE_IDS = [f"{path.split('/')[-1]}-{how.__name__}" for path, how in STORE_DAMAGE]


def _damaged_copy(source: Path, tmp_path: Path, relative: str, how) -> tuple[Path, Path]:
    copy = tmp_path / source.name
    shutil.copytree(source, copy)
    how(copy / relative)
    return copy, copy / relative


@pytest.mark.parametrize("relative,how", STORE_DAMAGE, ids=STORE_IDS)
def test_a_damaged_episode_store_file_in_rollout_resume(run, tmp_path, capfd, relative, how):
    damaged, target = _damaged_copy(run, tmp_path, relative, how)
    line = assert_one_error_line(["rollout", "--policy", "scripted", "--n", str(RUN_N), "--num-envs", "2",
                                  "--workers", "1", "--image-size", "32", "--resume", "--out", str(damaged)],
                                 capfd, str(target), [damaged])
    if relative.startswith("episodes/"):
        assert f"delete {target.parent}" in line and "--resume" in line
    if relative.endswith(".mjpeg"):  # the fix it names works: that episode recorded again, exactly
        shutil.rmtree(target.parent)
        assert main(["rollout", "--policy", "scripted", "--n", str(RUN_N), "--num-envs", "2", "--workers", "1",
                     "--image-size", "32", "--resume", "--out", str(damaged)]) == 0
        # the same states, actions and wrist frames; the overhead view, rendered now as one tile instead of two,
        # may differ by one level in a few pixels (Mesa's rasterizer), and so may its frames' checksums
        again, before = (target.parent, run / "episodes/e000001")
        wrist = "observation.images.wrist"
        assert (again / f"{wrist}.mjpeg").read_bytes() == (before / f"{wrist}.mjpeg").read_bytes()
        with np.load(again / "data.npz") as new, np.load(before / "data.npz") as old:
            for key in ("state", "action", "timestamp", f"offsets.{wrist}", f"crc32.{wrist}"):
                assert np.array_equal(new[key], old[key]), key


@pytest.mark.parametrize("relative,how", STORE_DAMAGE, ids=STORE_IDS)
def test_a_damaged_episode_store_file_in_curate(run, tmp_path, capfd, relative, how):
    damaged, target = _damaged_copy(run, tmp_path, relative, how)
    out = tmp_path / "curated"
    assert_one_error_line(["curate", "--runs", str(damaged), "--use-sim-outcome", "--vcodec", "h264", "--workers", "1",
                           "--out", str(out)], capfd, str(target), [damaged], out)


def _flip_a_byte_that_still_decodes(episode: Path, camera: str) -> int:
    """Flip one byte inside frame 0's entropy-coded data so that the frame still decodes, to a different picture
    (JPEG has no checksum of its own: a bad block or a stray write there goes unseen by any decoder). Returns
    the frame's index."""
    import io

    from PIL import Image

    stream = episode / f"{camera}.mjpeg"
    with np.load(episode / "data.npz") as data:
        end = int(data[f"offsets.{camera}"][1])
    original = stream.read_bytes()
    picture = np.asarray(Image.open(io.BytesIO(original[:end])).convert("RGB"))
    for position in range(end - 8, end // 2, -1):  # the scan data ends each frame, before its 2-byte EOI marker
        if original[position] == 0xFF or original[position - 1] == 0xFF:
            continue  # leave markers and their stuffed bytes alone
        flipped = bytearray(original)
        flipped[position] ^= 0x10
        try:
            changed = np.asarray(Image.open(io.BytesIO(bytes(flipped[:end]))).convert("RGB"))
        except OSError:
            continue
        if changed.shape == picture.shape and (changed != picture).any():
            stream.write_bytes(bytes(flipped))
            return 0
    raise AssertionError("no byte of frame 0 flips to a picture that still decodes")


def test_a_flipped_byte_that_still_decodes_is_caught_by_the_frame_checksum(run, tmp_path, capfd):
    """The episode store keeps a CRC-32 per frame: a frame that decodes to a wrong picture is refused when read
    (here by curate, which reads every frame), naming the file and the frame, instead of being trained on."""
    damaged = shutil.copytree(run, tmp_path / run.name)
    target = damaged / "episodes/e000001/observation.images.wrist.mjpeg"
    frame = _flip_a_byte_that_still_decodes(target.parent, "observation.images.wrist")
    out = tmp_path / "curated"
    line = assert_one_error_line(["curate", "--runs", str(damaged), "--use-sim-outcome", "--vcodec", "h264",
                                  "--workers", "1", "--out", str(out)], capfd, str(target), [damaged], out)
    assert f"frame {frame}" in line and "checksum" in line and f"delete {target.parent}" in line


def test_runs_recorded_before_frame_checksums_still_read(run, tmp_path):
    """A run recorded before the store kept checksums (no ``crc32.*`` arrays in data.npz) reads as before."""
    from so101_dataengine.formats.store import EpisodeStore

    copy = shutil.copytree(run, tmp_path / run.name)
    npz = copy / "episodes/e000001/data.npz"
    with np.load(npz) as data:
        arrays = {key: data[key] for key in data.files}
    assert any(key.startswith("crc32.") for key in arrays), "the store should record a checksum per frame"
    np.savez_compressed(npz, **{k: v for k, v in arrays.items() if not k.startswith("crc32.")})
    old, new = EpisodeStore.open(copy).read(1), EpisodeStore.open(run).read(1)
    assert all((old.images[key] == new.images[key]).all() for key in new.images)


def test_a_corrupt_frame_found_on_a_dask_worker_is_one_line_of_the_real_command(run, tmp_path):
    """A JPEG zeroed inside (the size still fits its index, so only decoding finds it, on a dask worker): the
    worker's error travels back as a value, so neither dask nor the CLI prints a traceback."""
    damaged, target = _damaged_copy(run, tmp_path, "episodes/e000001/observation.images.wrist.mjpeg", zero_header)
    before = _digest(damaged)
    out = tmp_path / "curated"
    result = subprocess.run([sys.executable, "-m", "so101_dataengine.cli", "curate", "--runs", str(damaged),
                             "--use-sim-outcome", "--vcodec", "h264", "--workers", "1", "--out", str(out)],
                            capture_output=True, text=True, timeout=300)
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert result.returncode == 2 and len(errors) == 1 and "Traceback" not in result.stderr, result.stderr
    assert str(target) in errors[0]
    assert _digest(damaged) == before and not out.exists()


# -- datasets -----------------------------------------------------------------------------------------------

EPISODES = "meta/episodes/chunk-000/file-000.parquet"
DATA = "data/chunk-000/file-000.parquet"
VIDEO = "videos/observation.images.wrist/chunk-000/file-000.mp4"
DATASET_DAMAGE = {
    # (file, damage): the commands that read it
    ("meta/info.json", cut): ("publish", "stats", "base"),
    ("meta/info.json", empty_object): ("publish", "stats", "base"),
    (EPISODES, cut): ("publish", "stats", "base"),
    (DATA, cut): ("publish", "stats", "base"),
    (VIDEO, cut): ("publish", "stats"),
    ("meta/tasks.parquet", cut): ("base",),
    ("meta/stats.json", cut): ("publish",),
    ("meta/dataengine.json", cut): ("publish", "base", "classifier"),
}
DATASET_CASES = [(relative, how, command) for (relative, how), commands in DATASET_DAMAGE.items()
                 for command in commands]


def _dataset_argv(command: str, dataset: Path, run: Path, tmp_path: Path) -> tuple[list[str], Path | None]:
    if command == "publish":
        return ["publish", str(dataset), "--repo-id", "local/hardening", "--registry", str(tmp_path / "registry"),
                "--no-hooks"], None
    if command == "stats":
        return ["stats", "fix", str(dataset)], None
    if command == "classifier":  # the demos as the classifier's positives
        out = tmp_path / "classifier"
        return ["classifier", "train", "--runs", str(run), "--demos", str(dataset), "--out", str(out), "--epochs", "1",
                "--image-size", "32"], out
    out = tmp_path / "curated"
    return ["curate", "--runs", str(run), "--base", str(dataset), "--use-sim-outcome", "--vcodec", "h264",
            "--workers", "1", "--out", str(out)], out


@pytest.mark.parametrize("relative,how,command", DATASET_CASES,
                         ids=[f"{r.split('/')[-1]}-{h.__name__}-{c}" for r, h, c in DATASET_CASES])
def test_a_damaged_dataset_file(demo_dataset, run, tmp_path, capfd, relative, how, command):
    damaged, target = _damaged_copy(demo_dataset.out, tmp_path, relative, how)
    argv, out = _dataset_argv(command, damaged, run, tmp_path)
    line = assert_one_error_line(argv, capfd, relative if relative == VIDEO and command == "publish" else str(target),
                                 [damaged, run], out)
    assert "Traceback" not in line
    if command == "publish":
        assert not (tmp_path / "registry" / "local" / "hardening" / "versions").exists(), "no version was made"


def test_stats_fix_replaces_a_cut_stats_file(demo_dataset, tmp_path, capfd):
    """The one damaged file a command may mend: stats fix exists to rewrite meta/stats.json."""
    damaged, target = _damaged_copy(demo_dataset.out, tmp_path, "meta/stats.json", cut)
    assert main(["stats", "fix", str(damaged)]) == 0
    assert json.loads(target.read_text()).keys() == json.loads((demo_dataset.out / "meta/stats.json").read_text()).keys()


def test_stats_fix_refuses_a_dataset_with_a_missing_shard(demo_dataset, tmp_path, capfd):
    damaged, target = _damaged_copy(demo_dataset.out, tmp_path, DATA, cut)
    target.unlink()
    assert_one_error_line(["stats", "fix", str(damaged)], capfd, DATA, [damaged])


# -- the hook ledger and the registry -----------------------------------------------------------------------


def test_a_torn_ledger_line_in_hooks_status_and_versions(tmp_path, capfd):
    ledger = tmp_path / "ledger.jsonl"
    config = tmp_path / "dataengine.toml"
    config.write_text(f'ledger = "{ledger}"\n')
    event = {"run_id": "a", "repo_id": "local/x", "tag": "ds-0001-0123456789ab", "hook": "act", "kind": "local",
             "status": "succeeded", "start": 1.0}
    ledger.write_text(json.dumps(event) + "\n" + json.dumps({**event, "run_id": "b"})[:40])  # torn by a crash
    for argv in (["hooks", "--config", str(config), "status"],
                 ["versions", "local/x", "--config", str(config), "--registry", str(tmp_path / "registry")]):
        line = assert_one_error_line(argv, capfd, f"{ledger} is damaged (line 2", [tmp_path])
        assert "delete that line" in line
    ledger.write_text(json.dumps({"not": "an event"}) + "\n")
    assert_one_error_line(["hooks", "--config", str(config), "status"], capfd, f"{ledger} is damaged (line 1",
                          [tmp_path])


def test_a_new_ledger_event_never_joins_a_torn_line(tmp_path):
    from so101_dataengine.hooks.ledger import HookRun, Ledger

    ledger = Ledger(tmp_path / "ledger.jsonl")
    ledger.path.write_text('{"run_id": "torn", "re')
    ledger.append(HookRun("a", "local/x", "ds-0001-0123456789ab", "act", "local", "running", 1.0))
    assert json.loads(ledger.path.read_text().splitlines()[1])["run_id"] == "a"


@pytest.fixture(scope="module")
def registry(demo_dataset, tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("registry")
    assert main(["publish", str(demo_dataset.out), "--repo-id", "local/hardening", "--registry", str(root),
                 "--no-hooks"]) == 0
    return root


@pytest.mark.parametrize("how", [cut, json_array, empty_object])
def test_a_damaged_version_manifest_in_versions_diff_and_publish(registry, demo_dataset, tmp_path, capfd, how):
    copy = tmp_path / "registry"
    shutil.copytree(registry, copy)
    (version,) = (copy / "local" / "hardening" / "versions").iterdir()
    manifest = version / "meta" / "version.json"
    manifest.chmod(0o644)
    how(manifest)
    for argv in (["versions", "local/hardening", "--registry", str(copy), "--config", str(tmp_path / "none.toml")],
                 ["diff", f"local/hardening@{version.name}", str(demo_dataset.out), "--registry", str(copy)],
                 ["publish", str(demo_dataset.out), "--repo-id", "local/hardening", "--registry", str(copy),
                  "--no-hooks"]):
        assert "restore" in assert_one_error_line(argv, capfd, str(manifest), [copy, demo_dataset.out])


# -- classifier train and eval read the same store --------------------------------------------------------------


@pytest.fixture(scope="module")
def failed_run(tmp_path_factory) -> Path:
    """2 episodes where the expert fails on purpose: with ``run``'s 2 successes, both classes to train on."""
    out = tmp_path_factory.mktemp("hardening") / "failed"
    assert main(["rollout", "--policy", "scripted-faulty:miss_grasp=1", "--n", "2", "--num-envs", "2", "--workers",
                 "1", "--image-size", "32", "--out", str(out)]) == 0
    return out


@pytest.mark.parametrize("relative,how", [("episodes/e000001/observation.images.wrist.mjpeg", cut),
                                          ("episodes/e000001/data.npz", zero)], ids=["mjpeg-cut", "npz-zero"])
def test_a_damaged_episode_store_file_in_classifier_train(run, failed_run, tmp_path, capfd, relative, how):
    damaged, target = _damaged_copy(failed_run, tmp_path, relative, how)
    out = tmp_path / "classifier"
    assert_one_error_line(["classifier", "train", "--runs", str(damaged), str(run), "--out", str(out), "--epochs", "1",
                           "--image-size", "32"], capfd, str(target), [damaged, run], out)


def test_a_damaged_episode_in_eval_resume(tmp_path, capfd):
    out = tmp_path / "eval"
    argv = ["eval", "--policy", "scripted", "--n", "1", "--image-size", "32", "--out", str(out)]
    assert main(argv) == 0
    (run,) = (out / "runs").iterdir()
    target = run / "episodes" / "e000000" / "data.npz"
    cut(target)
    assert_one_error_line(argv, capfd, str(target), [run])


def test_an_atomic_write_that_fails_leaves_the_old_file_and_no_temporary_one(tmp_path, monkeypatch):
    """``files.write_atomic`` (manifests, scores, stats, refs, round states): a reader sees the old file or the new
    one; a write that fails half-way (here: the disk fills while writing) leaves the old one and nothing beside it."""
    from so101_dataengine.base import files

    target = tmp_path / "state.json"
    files.write_atomic(target, '{"old": true}')

    def full_disk(self: Path, data: bytes) -> None:
        with open(self, "wb") as f:
            f.write(data[: len(data) // 2])
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Path, "write_bytes", full_disk)
    with pytest.raises(OSError):
        files.write_atomic(target, '{"new": true, "padding": "' + "x" * 1000 + '"}')
    monkeypatch.undo()
    assert target.read_text() == '{"old": true}' and [p.name for p in tmp_path.iterdir()] == ["state.json"]


def test_a_run_whose_episodes_directory_was_deleted(run, tmp_path, capfd):
    """curate says the run is unfinished (with the command that finishes it), and that command records it again."""
    damaged = tmp_path / "run"
    shutil.copytree(run, damaged)
    shutil.rmtree(damaged / "episodes")
    out = tmp_path / "curated"
    line = assert_one_error_line(["curate", "--runs", str(damaged), "--use-sim-outcome", "--workers", "1", "--out",
                                  str(out)], capfd, "0 of 2 episodes stored", [damaged], out)
    assert f"dataengine rollout --resume --out {damaged}" in line
    assert main(["rollout", "--policy", "scripted", "--n", str(RUN_N), "--num-envs", "2", "--workers", "1",
                 "--image-size", "32", "--resume", "--out", str(damaged)]) == 0
    assert (damaged / "episodes/e000001/data.npz").read_bytes() == (run / "episodes/e000001/data.npz").read_bytes()


def test_a_malformed_custom_hook_template_is_one_error_line(tmp_path, capfd):
    (tmp_path / "mine.toml").write_text("programs = [\n")  # cut mid-list
    config = tmp_path / "dataengine.toml"
    config.write_text('[[hooks]]\nname = "act"\ntemplate = "mine.toml"\nrepo_id = "local/x"\n')
    assert_one_error_line(["hooks", "--config", str(config), "status"], capfd, "mine.toml is not valid TOML",
                          [tmp_path])
