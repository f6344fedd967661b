"""Publish never ships a broken video or inexact image stats, and registry tampering is visible and does not
spread: real datasets from ``dataengine demos`` and lerobot's own writer, real registries, the real ``serve`` over
HTTP."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import threading
import urllib.error
import urllib.request
from pathlib import Path

import av
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from so101_dataengine.cli import main
from so101_dataengine.publish.hub_server import RegistryStore, make_server
from so101_dataengine.publish.manifest import sha256_file
from so101_dataengine.publish.registry import LocalRegistry

REPO = "lab/so101_verify"
WRIST = "videos/observation.images.wrist/chunk-000/file-001.mp4"
"""Episode 1's wrist video in ``split_dataset``: neither the dataset's first frame nor its last is in it."""


@pytest.fixture(scope="module")
def split_dataset(tmp_path_factory, demo_dataset):
    """A real 3-episode ``dataengine demos`` dataset whose every episode has a video file of its own per camera (as
    a large dataset has many): lerobot's first/last-frame check cannot see a file in the middle being broken."""
    from so101_dataengine.demos import DemosConfig, record_demos

    config = DemosConfig(out=tmp_path_factory.mktemp("datasets") / "split", n=3, repo_id=demo_dataset.repo_id,
                         seed=demo_dataset.seed, scene=demo_dataset.scene)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("so101_dataengine.formats.v3_writer.VIDEO_MB", 0)  # a new file for every episode
        record_demos(config)
    assert len(list((config.out / "videos" / "observation.images.wrist").rglob("*.mp4"))) == 3
    return config.out


def _copy(dataset, tmp_path, name="copy"):
    copy = tmp_path / name
    shutil.copytree(dataset, copy)
    return copy


def _publish(dataset, registry, capsys) -> tuple[int, str, str]:
    rc = main(["publish", str(dataset), "--repo-id", REPO, "--registry", str(registry), "--no-hooks"])
    captured = capsys.readouterr()
    return rc, captured.out, captured.err


def _assert_one_error_line(err: str, *needles: str) -> None:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert "Traceback" not in err
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])


def _nothing_published(registry) -> bool:
    versions = LocalRegistry(registry).repo_dir(REPO) / "versions"
    objects = LocalRegistry(registry).repo_dir(REPO) / "objects"
    return not (versions.exists() and any(versions.iterdir())) and not (objects.exists() and any(objects.rglob("*")))


def test_a_video_cut_in_half_is_not_published(split_dataset, tmp_path, lerobot_home, capsys):
    broken = _copy(split_dataset, tmp_path)
    video = broken / WRIST
    before = video.stat().st_size
    os.truncate(video, before // 2)
    rc, _, err = _publish(broken, tmp_path / "registry", capsys)
    assert rc == 2
    _assert_one_error_line(err, "broken video", WRIST, "does not decode", "re-encode or copy the videos again")
    assert _nothing_published(tmp_path / "registry")
    assert video.stat().st_size == before // 2  # the input is left as it was


def test_a_video_missing_frames_that_decodes_cleanly_is_not_published(split_dataset, tmp_path, lerobot_home,
                                                                      capsys):
    """Cut at a packet boundary (remuxed, no decoding error at all): only the frame counts give it away."""
    broken = _copy(split_dataset, tmp_path)
    video = broken / WRIST
    shorter = tmp_path / "shorter.mp4"
    with av.open(str(video)) as source, av.open(str(shorter), "w", format="mp4") as target:
        stream_in = source.streams.video[0]
        stream_out = target.add_stream_from_template(stream_in, opaque=True)
        kept = 0
        for packet in source.demux(stream_in):
            if packet.dts is None or kept >= stream_in.frames - 40:
                continue
            packet.stream = stream_out
            target.mux(packet)
            kept += 1
    shutil.copyfile(shorter, video)
    with av.open(str(video)) as check:  # it really decodes without an error
        assert sum(1 for _ in check.decode(video=0)) == kept
    rc, _, err = _publish(broken, tmp_path / "registry", capsys)
    assert rc == 2
    _assert_one_error_line(err, "broken video", WRIST, f"decodes {kept} frames", f"episode 1 has {kept} of its")
    assert _nothing_published(tmp_path / "registry")


def _digest(root: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(p for p in Path(root).rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def _refused_then_fixed(dataset: Path, registry: Path, capsys, *needles: str) -> None:
    """Publish refuses ``dataset`` with one error line naming it, the needles and the fix, and leaves it
    byte-identical; the fix it names, ``dataengine stats fix DATASET``, run as named, makes it publishable."""
    before = _digest(dataset)
    capsys.readouterr()  # what writing the dataset printed
    rc, _, err = _publish(dataset, registry, capsys)
    assert rc == 2
    fix = f"run 'dataengine stats fix {dataset}'"
    _assert_one_error_line(err, f"cannot publish {dataset}:", *needles, fix)
    assert _nothing_published(registry) and _digest(dataset) == before
    assert main(["stats", "fix", str(dataset)]) == 0
    capsys.readouterr()
    rc, out, err = _publish(dataset, registry, capsys)
    assert rc == 0, err
    assert f"published {REPO} " in out


CAMERA = "observation.images.wrist"


def test_image_stats_four_percent_off_are_not_published(demo_dataset, tmp_path, lerobot_home, capsys):
    """``meta/stats.json``'s image std 4 % too large (what merging with a lerobot-0.4.4-written dataset leaves):
    plausible, far above lerobot 0.4.4's too-small stds; only the frames decoded during verification show it."""
    inexact = _copy(demo_dataset.out, tmp_path)
    path = inexact / "meta" / "stats.json"
    stats = json.loads(path.read_text())
    stats[CAMERA]["std"] = (np.asarray(stats[CAMERA]["std"]) * 1.04).tolist()
    path.write_text(json.dumps(stats, indent=4))
    _refused_then_fixed(inexact, tmp_path / "registry", capsys, "meta/stats.json's image stats", repr(CAMERA),
                        "its std is", "4.0% off")


def test_one_episodes_inexact_image_stats_are_not_published(demo_dataset, tmp_path, lerobot_home, capsys):
    """Episode 1's own image mean in meta/episodes 1 % off, stats.json exact: lerobot aggregates the per-episode
    stats when it merges datasets, so they must be exact too."""
    inexact = _copy(demo_dataset.out, tmp_path)
    path = inexact / "meta" / "episodes" / "chunk-000" / "file-000.parquet"
    table = pq.read_table(path)
    name = f"stats/{CAMERA}/mean"
    means = table.column(name).to_pylist()
    means[1] = (np.asarray(means[1]) * 1.01).tolist()
    column = pa.array(means, type=table.schema.field(name).type)
    pq.write_table(table.set_column(table.column_names.index(name), name, column), path)
    _refused_then_fixed(inexact, tmp_path / "registry", capsys, "episode 1's own image stats", repr(CAMERA),
                        "its mean is", "1.0% off")


def test_a_dataset_written_by_lerobots_own_writer_is_published_after_stats_fix(tmp_path, lerobot_home, capsys):
    """lerobot's recording API (``add_frame`` / ``save_episode``) writes estimated image stats: 0.4.4's ~100x too
    small, 0.6's from a sample of the frames before encoding. Publish refuses either, and the stats fix
    computes from the same decoded frames as publish's check, so the fixed dataset passes it."""
    from lerobot_recorder import write_with_lerobot

    from so101_dataengine.formats.episode import record_episode
    from so101_dataengine.formats.features import so101_features
    from so101_dataengine.lerobot_compat import LEROBOT_06
    from so101_dataengine.scenes.expert import ScriptedExpert
    from so101_dataengine.scenes.pick_place import PickPlaceConfig, PickPlaceEnv

    env = PickPlaceEnv(PickPlaceConfig(image_size=32))
    expert = ScriptedExpert(env)
    try:
        episodes = [record_episode(env, seed, lambda _obs: expert.act(), expert.reset).frames for seed in (7, 8)]
    finally:
        env.close()
    written = tmp_path / "lerobot_written"
    write_with_lerobot(written, REPO, 30, so101_features(32), episodes)
    _refused_then_fixed(written, tmp_path / "registry", capsys, "'observation.images.",
                        "are not those of its decoded frames" if LEROBOT_06 else "~100x too small")


def _flip_a_byte(path) -> None:
    """What a stray process (or a person) with write access does: the file is read-only, that stops no owner."""
    os.chmod(path, 0o644)
    with open(path, "r+b") as f:
        f.seek(os.path.getsize(path) // 2)
        byte = f.read(1)
        f.seek(-1, os.SEEK_CUR)
        f.write(bytes([byte[0] ^ 0xFF]))
    os.chmod(path, 0o444)


def _get(url: str, method: str = "GET") -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, method=method)) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def test_a_flipped_byte_is_reported_does_not_spread_and_is_not_served(demo_dataset, grown_dataset, tmp_path,
                                                                      lerobot_home, capsys):
    registry = tmp_path / "registry"
    reg = LocalRegistry(registry)
    assert _publish(demo_dataset.out, registry, capsys)[0] == 0
    assert _publish(grown_dataset.out, registry, capsys)[0] == 0
    v1, v2 = (v.tag for v in reg.versions(REPO))
    assert main(["verify", REPO, "--registry", str(registry)]) == 0
    assert "ok: lab/so101_verify: 2 version(s)" in capsys.readouterr().out

    server = make_server(RegistryStore(reg))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_port}/datasets/{REPO}/resolve"
    try:
        shared = "meta/tasks.parquet"  # one stored object, hard-linked by both versions
        assert os.stat(reg.version_path(REPO, v1) / shared).st_ino == os.stat(reg.version_path(REPO, v2) / shared).st_ino
        good = (reg.version_path(REPO, v1) / shared).read_bytes()
        assert _get(f"{base}/{v2}/{shared}") == (200, good)  # served (and its hash cached) while intact

        _flip_a_byte(reg.version_path(REPO, v2) / shared)
        damaged_bytes = (reg.version_path(REPO, v1) / shared).read_bytes()

        # verify names the object and every version it affects, then one error line; exit 2.
        assert main(["verify", REPO, "--registry", str(registry)]) == 2
        captured = capsys.readouterr()
        listed = [line for line in captured.out.splitlines() if line.startswith("damaged: ")]
        assert len(listed) == 1 and shared in listed[0] and v1 in listed[0] and v2 in listed[0], captured.out
        sha = reg.versions(REPO)[0].files[shared]["sha256"]
        assert f"objects/{sha[:2]}/{sha}" in listed[0]
        _assert_one_error_line(captured.err, "affecting 2 version(s)", v1, v2, "restore these files")
        # one version asked for: still every version the damaged object affects
        assert main(["verify", REPO, v1, "--registry", str(registry)]) == 2
        assert v2 in capsys.readouterr().out

        # serve refuses it (GET and HEAD; the cached hash did not hide the change), serves the intact files.
        for method in ("GET", "HEAD"):
            status, body = _get(f"{base}/{v2}/{shared}", method)
            assert status == 409 and damaged_bytes not in body
            if method == "GET":
                assert b"damaged" in body and b"dataengine verify" in body
        intact = "meta/info.json"
        assert _get(f"{base}/{v2}/{intact}") == (200, (reg.version_path(REPO, v2) / intact).read_bytes())

        # The next version does not reuse the damaged object: it gets a fresh, intact copy.
        third = _copy(grown_dataset.out, tmp_path, "third")
        engine = json.loads((third / "meta" / "dataengine.json").read_text())
        (third / "meta" / "dataengine.json").write_text(json.dumps({**engine, "note": "round 3"}))
        rc, out, _ = _publish(third, registry, capsys)
        assert rc == 0
        v3 = reg.versions(REPO)[-1].tag
        v3_file = reg.version_path(REPO, v3) / shared
        assert sha256_file(v3_file) == sha and v3_file.read_bytes() == good
        assert "warning: stored object" in out and "moved aside" in out
        assert main(["verify", REPO, v3, "--registry", str(registry)]) == 0
        assert "ok:" in capsys.readouterr().out
        assert _get(f"{base}/{v3}/{shared}") == (200, good)
        # The earlier versions are not rewritten (the evidence stays) and are still reported, v3 is not.
        assert (reg.version_path(REPO, v1) / shared).read_bytes() == damaged_bytes
        assert main(["verify", REPO, "--registry", str(registry)]) == 2
        captured = capsys.readouterr()
        assert v3 not in captured.out and v3 not in captured.err and v1 in captured.err
    finally:
        server.shutdown()


def test_verify_bad_input_is_one_line(demo_dataset, tmp_path, lerobot_home, capsys):
    registry = tmp_path / "registry"
    assert main(["verify", REPO, "--registry", str(registry)]) == 2
    _assert_one_error_line(capsys.readouterr().err, "no published versions", "--registry")
    assert main(["verify", "no-slash", "--registry", str(registry)]) == 2
    _assert_one_error_line(capsys.readouterr().err, "OWNER/NAME")
    assert _publish(demo_dataset.out, registry, capsys)[0] == 0
    assert main(["verify", REPO, "7", "--registry", str(registry)]) == 2
    _assert_one_error_line(capsys.readouterr().err, "has no version '7'", "dataengine versions")
    # an edited manifest (a file's hash rewritten to match tampered bytes) no longer gives the tag's content id
    version = LocalRegistry(registry).versions(REPO)[0]
    manifest = LocalRegistry(registry).version_path(REPO, version.tag) / "meta" / "version.json"
    data = json.loads(manifest.read_text())
    data["files"]["meta/tasks.parquet"]["sha256"] = "0" * 64
    os.chmod(manifest, 0o644)
    manifest.write_text(json.dumps(data))
    assert main(["verify", REPO, "--registry", str(registry)]) == 2
    captured = capsys.readouterr()
    assert "meta/version.json of" in captured.out and "edited manifest" in captured.err
