"""Hostile inputs to publishing and to ``stats fix``: links inside a dataset, an immutable version given to a
command that rewrites, damaged registry refs, and specs, registries and stats files that are not what they seem.

Each case builds its input for real (``dataengine demos`` data, real publishes into a real registry), runs the real
command and asserts what ``docs/guarantees.md`` promises: exit status 2 and one ``error:`` line saying what to do,
no traceback, inputs byte-identical, and nothing published that ``dataengine verify`` would not vouch for.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from test_hardening_inputs import _digest, assert_one_error_line

from so101_dataengine.cli import main
from so101_dataengine.publish.registry import LocalRegistry
from so101_dataengine.publish.tags import CODEBASE_TAG

REPO = "lab/hostile_publish"


def _publish(dataset: Path, registry: Path) -> int:
    return main(["publish", str(dataset), "--repo-id", REPO, "--registry", str(registry), "--no-hooks"])


def _copy(dataset: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(dataset, tmp_path / "dataset"))


@pytest.fixture(scope="module")
def registry(demo_dataset, tmp_path_factory) -> Path:
    """A registry holding one published version of the demo dataset (lerobot's cache redirected to a temp dir)."""
    from so101_dataengine.lerobot_compat import lerobot_home_bindings

    root = tmp_path_factory.mktemp("published")
    with pytest.MonkeyPatch.context() as patch:
        for target, value in lerobot_home_bindings(root / "lerobot_home"):
            patch.setattr(target, value)
        assert _publish(demo_dataset.out, root / "registry") == 0
    return root / "registry"


def _version(registry: Path) -> Path:
    (tag,) = [v.tag for v in LocalRegistry(registry).versions(REPO)]
    return LocalRegistry(registry).version_path(REPO, tag)


def _copy_registry(registry: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(registry, tmp_path / "registry", symlinks=True))


def _link_outside_file(dataset: Path, outside: Path) -> str:
    (outside / "passwd").write_text("root:x:0:0\n")
    (dataset / "meta" / "extra.txt").symlink_to(outside / "passwd")
    return "meta/extra.txt"


def _link_data_directory(dataset: Path, outside: Path) -> str:
    shutil.move(dataset / "data", outside / "data")
    (dataset / "data").symlink_to(outside / "data", target_is_directory=True)
    return "data"


@pytest.mark.parametrize("link", [_link_outside_file, _link_data_directory], ids=["file-link", "directory-link"])
def test_a_link_inside_the_dataset_is_refused_not_followed_or_dropped(demo_dataset, tmp_path, lerobot_home, capfd,
                                                                       link):
    """A file link would copy its target (``/etc/passwd``) into the version; a linked ``data/`` was left out of
    the version, which ``verify`` then called ok."""
    dataset, outside = _copy(demo_dataset.out, tmp_path), tmp_path / "outside"
    outside.mkdir()
    name = link(dataset, outside)
    line = assert_one_error_line(["publish", str(dataset), "--repo-id", REPO, "--registry", str(tmp_path / "reg"),
                                  "--no-hooks"], capfd, f"{name} is a symbolic link", [dataset, outside])
    assert "copy the real files" in line
    assert LocalRegistry(tmp_path / "reg").versions(REPO) == []


def test_what_is_published_is_verified_as_staged_not_as_the_source(demo_dataset, tmp_path, lerobot_home, capfd):
    """Videos under a hidden directory that ``info.json`` points at: the source passes every check, but hidden
    files are no content, so the version would have none of its videos."""
    dataset = _copy(demo_dataset.out, tmp_path)
    (dataset / "videos").rename(dataset / ".videos")
    info = json.loads((dataset / "meta" / "info.json").read_text())
    info["video_path"] = "." + info["video_path"]
    (dataset / "meta" / "info.json").write_text(json.dumps(info, indent=4))
    line = assert_one_error_line(["publish", str(dataset), "--repo-id", REPO, "--registry", str(tmp_path / "reg"),
                                  "--no-hooks"], capfd, f"cannot publish {dataset}: 2 shard(s) missing", [dataset])
    assert ".staging" not in line, "the problem is worded with the source's paths"
    repo = LocalRegistry(tmp_path / "reg").repo_dir(REPO)
    assert not (repo / "versions").exists() and not (repo / "objects").exists()
    assert not any((repo / ".staging").iterdir()), "a refused dataset leaves no staged copy"


def test_stats_fix_refuses_a_published_version_and_its_lerobot_cache_link(demo_dataset, tmp_path, lerobot_home,
                                                                          capfd):
    """It rewrote ``meta/`` of the immutable version in place (new parquet bytes): ``verify`` then failed."""
    assert _publish(demo_dataset.out, tmp_path / "reg") == 0
    version = _version(tmp_path / "reg")
    cache_link = lerobot_home / REPO
    assert cache_link.resolve() == version.resolve()
    for path in (version, cache_link):
        line = assert_one_error_line(["stats", "fix", str(path)], capfd, "is never rewritten", [version])
        assert f"cp -r {version} NEW_DIR" in line and "publish NEW_DIR" in line
    assert main(["verify", REPO, "--registry", str(tmp_path / "reg")]) == 0

    fixed = Path(shutil.copytree(version, tmp_path / "fixed"))  # the fix the error line gives, step by step
    os.chmod(fixed / "meta" / "stats.json", 0o644)
    (fixed / "meta" / "stats.json").write_text("{}")
    assert main(["stats", "fix", str(fixed)]) == 0
    assert _publish(fixed, tmp_path / "reg") == 0
    assert main(["verify", REPO, "--registry", str(tmp_path / "reg")]) == 0


def test_stats_fix_leaves_meta_alone_when_the_stats_are_already_exact(demo_dataset, tmp_path, capsys):
    """Rewriting changed the episode parquet's bytes (and so every hash taken of it) for no new value."""
    dataset = _copy(demo_dataset.out, tmp_path)
    meta_inode, before = (dataset / "meta").stat().st_ino, _digest(dataset)
    assert main(["stats", "fix", str(dataset)]) == 0
    assert " 0 stats changed" in capsys.readouterr().out.replace("\n", " ")
    assert (dataset / "meta").stat().st_ino == meta_inode and _digest(dataset) == before


def test_stats_fix_replaces_stats_that_are_not_numbers(demo_dataset, tmp_path, capsys):
    dataset = _copy(demo_dataset.out, tmp_path)
    (dataset / "meta" / "stats.json").write_text(json.dumps({"action": {"mean": [1], "std": "bad"},
                                                             "observation.state": 5}))
    assert main(["stats", "fix", str(dataset)]) == 0
    assert "Traceback" not in capsys.readouterr().err
    fixed = json.loads((dataset / "meta" / "stats.json").read_text())
    assert isinstance(fixed["action"]["std"], list) and isinstance(fixed["observation.state"]["mean"], list)


def test_stats_fix_of_a_stats_json_that_is_a_directory_is_one_error_line(demo_dataset, tmp_path, capfd):
    dataset = _copy(demo_dataset.out, tmp_path)
    (dataset / "meta" / "stats.json").unlink()
    (dataset / "meta" / "stats.json").mkdir()
    assert_one_error_line(["stats", "fix", str(dataset)], capfd, "meta/stats.json is not a file: remove it",
                          [dataset])
    assert sorted(p.name for p in dataset.iterdir()) == ["data", "meta", "videos"], "no staging left behind"


@pytest.mark.parametrize("damage", ["directory", "not-utf8"])
def test_a_damaged_codebase_ref_is_one_error_line_in_versions_and_publish(registry, grown_dataset, tmp_path,
                                                                           lerobot_home, capfd, damage):
    copy = _copy_registry(registry, tmp_path)
    ref = LocalRegistry(copy).repo_dir(REPO) / "refs" / CODEBASE_TAG
    ref.unlink()
    if damage == "directory":
        ref.mkdir()
    else:
        ref.write_bytes(b"\xff\xfe ds-0001")
    for argv in (["versions", REPO], ["publish", str(grown_dataset.out), "--repo-id", REPO, "--no-hooks"]):
        line = assert_one_error_line(argv + ["--registry", str(copy)], capfd, str(ref), [copy])
        assert "remove it, then run 'dataengine publish'" in line


@pytest.mark.parametrize("spec", ["", "..", "*", "ds-0001-????????????", "ds-000[0-9]-*"])
def test_diff_of_a_spec_that_is_no_tag_is_the_not_found_line_not_a_glob(registry, capfd, spec):
    """'' and '..' named the versions directory itself ("registry damaged"); '*' and '?' matched as patterns."""
    assert_one_error_line(["diff", spec, f"{REPO}@1", "--registry", str(registry)], capfd,
                          f"{spec!r} is neither OWNER/NAME@TAG", [registry])


def test_a_registry_that_is_a_file_or_missing_is_one_error_line(tmp_path, capfd):
    """``versions`` said "no published versions" of a file; ``serve`` served an empty Hub from either."""
    plain = tmp_path / "plainfile"
    plain.write_text("not a registry")
    assert_one_error_line(["versions", REPO, "--registry", str(plain)], capfd, f"registry {plain} is not a directory",
                          [tmp_path])
    for registry, problem in ((plain, "is not a directory"), (tmp_path / "missing", "does not exist")):
        result = subprocess.run([sys.executable, "-m", "so101_dataengine.cli", "serve", "--registry", str(registry),
                                 "--port", "0"], capture_output=True, text=True, timeout=120)
        errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
        assert result.returncode == 2 and len(errors) == 1 and "Traceback" not in result.stderr, result.stderr
        assert f"registry {registry} {problem}" in errors[0]
    assert not (tmp_path / "missing").exists()
