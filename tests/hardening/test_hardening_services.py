"""Hostile inputs, part 2: numbers out of range, an unreachable Hub, a busy port, two writers of one output, and
a curate or publish killed half-way.

The Hub here is a TEST DOUBLE (``tests/hub_double.py``; the real Hub is unreachable from CI): "unreachable" is the
port of a double that was started and then stopped, so nothing answers there.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from hub_double import start_hub_double
from test_hardening_inputs import assert_one_error_line

from so101_dataengine.cli import main

CLI = [sys.executable, "-m", "so101_dataengine.cli"]
ROLLOUT = ["rollout", "--policy", "scripted", "--n", "2", "--num-envs", "2", "--workers", "1", "--image-size", "32"]


@pytest.mark.parametrize("argv,flag", [
    (["rollout", "--policy", "scripted", "--n", "1", "--seed", "-5"], "--seed"),
    (["rollout", "--policy", "scripted", "--n", "-1"], "--n"),
    (["rollout", "--policy", "scripted", "--n", "1", "--workers", "0"], "--workers"),
    (["rollout", "--policy", "scripted", "--n", "1", "--num-envs", "0"], "--num-envs"),
    (["rollout", "--policy", "scripted", "--n", "1", "--image-size", "0"], "--image-size"),
    (["rollout", "--policy", "scripted", "--n", "1", "--temporal-ensemble", "-1"], "--temporal-ensemble"),
    (["rollout", "--policy", "scripted", "--n", "1", "--n-action-steps", "0"], "--n-action-steps"),
    (["demos", "--n", "1", "--seed", "-3"], "--seed"),
    (["demos", "--n", "0"], "--n"),
    (["demos", "--n", "1", "--workers", "0"], "--workers"),
    (["curate", "--runs", "RUN", "--use-sim-outcome", "--workers", "0"], "--workers"),
    (["eval", "--policy", "scripted", "--n", "0"], "--n"),
    (["eval", "--policy", "scripted", "--n", "1", "--seed", "-5"], "--seed"),
], ids=lambda v: " ".join(v) if isinstance(v, list) else v)
def test_a_number_out_of_range_is_one_error_line_before_any_work(tmp_path, capfd, argv, flag):
    out = tmp_path / "out"
    assert_one_error_line([a.replace("RUN", str(tmp_path / "run")) for a in argv] + ["--out", str(out)],
                          capfd, flag, [tmp_path], out)
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_serve_on_a_busy_port_a_bad_port_or_host_is_one_error_line(tmp_path, capfd):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        line = assert_one_error_line(["serve", "--registry", str(tmp_path), "--port", str(port)], capfd,
                                     f"127.0.0.1:{port}", [tmp_path])
        assert "in use" in line and "--port" in line
    assert_one_error_line(["serve", "--registry", str(tmp_path), "--port", "70000"], capfd, "--port", [tmp_path])
    assert_one_error_line(["serve", "--registry", str(tmp_path), "--host", "no-such-host.invalid", "--port", "0"], capfd,
                          "--host", [tmp_path])


def test_publish_to_an_unreachable_hub_is_one_error_line(demo_dataset, tmp_path):
    server, _hub = start_hub_double(tmp_path / "blobs")  # the TEST DOUBLE, stopped: nothing answers at its port
    endpoint = f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    server.server_close()
    env = {**os.environ, "HF_ENDPOINT": endpoint, "HF_HUB_OFFLINE": "0", "HF_TOKEN": "hf_secret_never_printed"}
    for extra, message in (({}, f"cannot reach the Hub at {endpoint}"), ({"HF_HUB_OFFLINE": "1"}, "HF_HUB_OFFLINE")):
        result = subprocess.run([*CLI, "publish", str(demo_dataset.out), "--repo-id", "lab/unreachable", "--to", "hub",
                                 "--registry", str(tmp_path / "registry"), "--no-hooks"], env={**env, **extra},
                                capture_output=True, text=True, timeout=300)
        errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
        assert result.returncode == 2 and len(errors) == 1 and "Traceback" not in result.stderr, result.stderr
        assert message in errors[0] and "hf_secret" not in result.stdout + result.stderr


def _hold_lock(path: Path) -> subprocess.Popen:
    """Another process holding ``path``'s lock, as a running rollout or curate does."""
    holder = subprocess.Popen([sys.executable, "-c", "import fcntl, os, sys, time\n"
                               f"f = open({str(path)!r}, 'a+'); fcntl.flock(f, fcntl.LOCK_EX)\n"
                               "f.write(str(os.getpid())); f.flush(); print('held', flush=True); time.sleep(120)"],
                              stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    return holder


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("services") / "run"
    assert main([*ROLLOUT, "--out", str(out)]) == 0
    return out


def test_a_second_rollout_resume_of_one_run_is_refused_while_the_first_runs(run, capfd):
    holder = _hold_lock(run / ".lock")
    try:
        line = assert_one_error_line([*ROLLOUT, "--resume", "--out", str(run)], capfd,
                                     f"another rollout into {run} (pid {holder.pid}) is running", [run])
    finally:
        holder.kill()
        holder.wait()
    assert "run this again" in line
    assert main([*ROLLOUT, "--resume", "--out", str(run)]) == 0  # the lock died with its holder


def _curate_argv(run: Path, out: Path) -> list[str]:
    return ["curate", "--runs", str(run), "--use-sim-outcome", "--vcodec", "h264", "--workers", "1", "--out",
            str(out)]


def test_a_second_curate_into_one_output_is_refused(run, tmp_path, capfd):
    out = tmp_path / "curated"
    holder = _hold_lock(tmp_path / ".curated.lock")
    try:
        assert_one_error_line(_curate_argv(run, out), capfd, f"another curate into {out}", [run], out)
    finally:
        holder.kill()
        holder.wait()


def _staged_files(parent: Path) -> list[Path]:
    return [p for staging in parent.glob(".curated.partial-*") for p in staging.rglob("*") if p.is_file()]


def _data_tables(root: Path) -> list:
    return [pq.read_table(p) for p in sorted((root / "data").rglob("*.parquet"))]


def test_a_killed_curate_leaves_nothing_a_re_run_trips_over_and_the_re_run_is_exact(run, tmp_path):
    reference = tmp_path / "reference"
    assert main(_curate_argv(run, reference)) == 0
    out = tmp_path / "curated"
    curate = subprocess.Popen([*CLI, *_curate_argv(run, out)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              start_new_session=True)  # its own process group: the kill takes its dask workers too
    deadline = time.monotonic() + 240
    while not _staged_files(tmp_path) and time.monotonic() < deadline and curate.poll() is None:
        time.sleep(0.05)
    os.killpg(curate.pid, signal.SIGKILL)  # half-way: episodes encoding into its staging directory
    assert curate.wait() == -signal.SIGKILL, "curate finished before it could be killed"
    assert not out.exists()
    assert main(_curate_argv(run, out)) == 0
    assert not list(tmp_path.glob(".curated.partial-*")), "the killed curate's staging directory is removed"
    assert [t.equals(r) for t, r in zip(_data_tables(out), _data_tables(reference))] == [True] * len(_data_tables(out))
    assert pq.read_table(out / "meta/episodes/chunk-000/file-000.parquet").num_rows == \
        pq.read_table(reference / "meta/episodes/chunk-000/file-000.parquet").num_rows


def test_a_killed_publish_leaves_nothing_a_re_run_trips_over(demo_dataset, tmp_path, capfd):
    """What a publish killed while staging leaves (a half-built version, an object copy not yet renamed) is
    removed by the next publish, under the lock, and the version it makes verifies."""
    registry = tmp_path / "registry"
    repo = registry / "lab" / "killed"
    (repo / ".staging" / "0123abcd" / "meta").mkdir(parents=True)
    (repo / ".staging" / "0123abcd" / "meta" / "info.json").write_text('{"cut": ')
    (repo / "objects" / "ab").mkdir(parents=True)
    (repo / "objects" / "ab" / f".tmp-{'ab' * 32}-12345").write_bytes(b"half an object")
    argv = ["publish", str(demo_dataset.out), "--repo-id", "lab/killed", "--registry", str(registry), "--no-hooks"]
    assert main(argv) == 0
    assert not (repo / ".staging").exists() or not any((repo / ".staging").iterdir())
    assert not list((repo / "objects").glob("*/.tmp-*"))
    assert main(["verify", "lab/killed", "--registry", str(registry)]) == 0
    assert len(list((repo / "versions").iterdir())) == 1


@pytest.mark.parametrize("under", ["a_file", "/proc/no_such_dir"])
def test_an_output_or_registry_that_cannot_be_created_is_one_error_line(demo_dataset, tmp_path, capfd, under):
    (tmp_path / "a_file").write_text("not a directory")
    where = (tmp_path / under) if not under.startswith("/") else Path(under)
    assert_one_error_line([*ROLLOUT, "--out", str(where / "run")], capfd, f"cannot create {where / 'run'}",
                          [tmp_path])
    assert_one_error_line(["publish", str(demo_dataset.out), "--repo-id", "lab/x", "--registry", str(where / "reg"),
                           "--no-hooks"], capfd, f"cannot create {where / 'reg'}", [tmp_path, demo_dataset.out])
