"""Hostile names and values (issue 15): a rendered Slurm script runs no injected command and every value arrives
intact; names are data, never paths; ``dataengine cycle`` checks everything before it writes anything.

The Slurm scripts are run by bash for real: through a faked ``sbatch``/``scontrol``/``scancel`` (always), which
runs the job from the directory sbatch was called in and writes its log where its ``#SBATCH --output`` says,
and through a real single-node Slurm when one is installed (``tests/slurm_cluster.py``)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import slurm_cluster
from cli_errors import one_error_line

from so101_dataengine.base.errors import DataEngineError
from so101_dataengine.base.preflight import check_name, check_repo_id
from so101_dataengine.cli import main
from so101_dataengine.hooks.config import load_hooks
from so101_dataengine.hooks.ledger import Ledger
from so101_dataengine.hooks.render import VersionEvent
from so101_dataengine.hooks.runner import check_hook, fire_hooks

REPO = "lab/so101_hostile"


MARK = "INJECTED"


def hostile(marker: Path | None = None) -> str:
    """Spaces, $(), backticks, single and double quotes, a newline and a ';' command, each trying to create a file
    INJECTED in the directory it runs in (no '/': the value is also a directory name)."""
    return f"p $(touch {MARK}) `touch {MARK}` 'sq' \"dq\" ;touch {MARK}\nnl $HOME"


def injected(root: Path) -> list[Path]:
    return list(root.rglob(MARK)) + [p for p in (Path.cwd() / MARK, Path.home() / MARK) if p.exists()]


def event(root: Path | None = None) -> VersionEvent:
    return VersionEvent(REPO, "ds-0002-aaaaaaaaaaaa", 2, 10, 4, root)


def toml_string(text: str) -> str:
    return json.dumps(text)  # a JSON string is a TOML basic string


FAKE_SLURM = '''#!{python}
"""sbatch / scontrol / scancel, as far as the hooks use them: a job runs (bash, like slurmd) in the directory
sbatch was called in, its output to the #SBATCH --output path (relative to that directory, %j the job id)."""
import json, os, pathlib, subprocess, sys

state = pathlib.Path(os.environ["FAKE_SLURM"])
program, args = pathlib.Path(sys.argv[0]).name, sys.argv[1:]


def run(job):
    if (state / f"cancelled-{{job}}").exists():
        return
    spec = json.loads((state / f"job-{{job}}").read_text())
    output = "slurm-%j.out"
    for line in pathlib.Path(spec["script"]).read_text().split("\\n"):
        if line.startswith("#SBATCH --output="):
            output = line.split("=", 1)[1]
    log = pathlib.Path(spec["cwd"]) / output.replace("%j", str(job))
    with open(log, "w") as out:
        subprocess.run(["bash", spec["script"]], cwd=spec["cwd"], stdout=out, stderr=subprocess.STDOUT,
                       env={{**os.environ, "SLURM_JOB_ID": str(job)}})


if program == "sbatch":
    job = 1001 + len(list(state.glob("job-*")))
    (state / f"job-{{job}}").write_text(json.dumps({{"cwd": os.getcwd(), "script": args[-1], "args": args}}))
    if "--hold" not in args:
        run(job)
    print(f"{{job}};cluster")
elif program == "scontrol" and args[0] == "release":
    for job in args[1].split(","):
        run(int(job))
elif program == "scancel":
    for job in args:
        (state / f"cancelled-{{job}}").write_text("")
'''


@pytest.fixture
def fake_slurm(tmp_path, monkeypatch):
    bin_dir, state = tmp_path / "fakebin", tmp_path / "fakeslurm"
    bin_dir.mkdir()
    state.mkdir()
    fake = bin_dir / "fake_slurm.py"
    fake.write_text(FAKE_SLURM.format(python=sys.executable))
    fake.chmod(0o755)
    for program in ("sbatch", "scontrol", "scancel"):
        (bin_dir / program).symlink_to(fake)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_SLURM", str(state))
    return state


def hostile_hook(tmp_path: Path, marker: Path, kind: str, partitions: list[str]) -> str:
    """A hook with the hostile value in its out_dir (so in the run dir and the log path), a var, an env value and
    an argv item; its program writes what it got."""
    value = hostile(marker)
    program = ("import json, os, sys; open(sys.argv[1], 'w').write(json.dumps("
               "{'argv': sys.argv[2:], 'env': os.environ['HOSTILE'], 'cwd': os.getcwd()}))")
    return f"""
ledger = {toml_string(str(tmp_path / 'ledger.jsonl'))}
[[hooks]]
name = "hostile"
kind = "{kind}"
repo_id = "{REPO}"
out_dir = {toml_string(str(tmp_path / value) + '/{hook}')}
vars = {{ v = {toml_string(value)} }}
env = {{ HOSTILE = {toml_string(value)} }}
partitions = {json.dumps(partitions)}
sbatch = ["--comment=$(touch${{IFS}}{MARK})`touch${{IFS}}{MARK}`", "--time=1:00:00"]
argv = ["{{python}}", "-c", {toml_string(program)}, "{{out_dir}}/got.json", {toml_string(value)}, "{{v}}",
        "{{repo_id}}", "{{tag}}"]
"""


@pytest.mark.parametrize("partitions", [[], ["queue_a", "queue_b"]], ids=["one-queue", "two-queue-race"])
def test_slurm_script_runs_no_injected_command_and_every_value_arrives_intact(tmp_path, monkeypatch, fake_slurm,
                                                                              partitions):
    marker = None
    value = hostile(marker)
    workdir = tmp_path / f"work {value}"
    workdir.mkdir()
    monkeypatch.chdir(workdir)  # the job's `cd` goes here
    config = tmp_path / "dataengine.toml"
    config.write_text(hostile_hook(tmp_path, marker, "slurm", partitions))
    (run,) = fire_hooks(load_hooks(config), event())
    assert run.status == "submitted", run.reason
    assert run.job_ids == (["1001", "1002"] if partitions else ["1001"])
    run_dir = Path(run.run_dir)
    assert value in str(run_dir)
    script = (run_dir / "job.sbatch").read_text()
    assert subprocess.run(["bash", "-n"], input=script, text=True).returncode == 0
    submitted = json.loads((fake_slurm / "job-1001").read_text())
    assert Path(submitted["cwd"]) == run_dir, "sbatch runs in the run directory: the relative log goes there"
    directives = [line for line in script.splitlines() if line.startswith("#SBATCH")]
    assert directives == ["#SBATCH --job-name=hostile-ds-0002-aaaaaaaaaaaa", "#SBATCH --output=job-%j.log",
                          f"#SBATCH --comment=$(touch${{IFS}}{MARK})`touch${{IFS}}{MARK}`", "#SBATCH --time=1:00:00"]

    assert not injected(tmp_path), "an injected command ran"
    got = json.loads((run_dir.parent.parent / "got.json").read_text())
    assert got == {"argv": [value, value, REPO, "ds-0002-aaaaaaaaaaaa"], "env": value, "cwd": str(workdir)}
    (done,) = Ledger(tmp_path / "ledger.jsonl").runs()
    assert (done.status, done.exit_status) == ("succeeded", 0), "the EXIT trap wrote into the hostile run dir"
    assert (run_dir / "job-1001.log").is_file(), "the log is in the run dir, whatever its name"
    if partitions:
        assert (run_dir / "race_winner" / "job_id").read_text().strip() == "1001"
        assert (fake_slurm / "cancelled-1002").exists(), "the race guard cancelled the other partition's job"
        assert not (run_dir / "job-1002.log").exists()


def test_command_hook_takes_the_same_values_without_a_shell(tmp_path):
    marker = None
    value = hostile(marker)
    config = tmp_path / "dataengine.toml"
    config.write_text(hostile_hook(tmp_path, marker, "command", []))
    (run,) = fire_hooks(load_hooks(config), event())
    assert run.status == "succeeded", run.reason
    got = json.loads((tmp_path / value / "hostile" / "got.json").read_text())
    assert got["argv"] == [value, value, REPO, "ds-0002-aaaaaaaaaaaa"] and got["env"] == value
    assert not injected(tmp_path)


HOOK = f'[[hooks]]\nname = "x"\nrepo_id = "{REPO}"\nkind = "slurm"\nargv = ["true"]\n'


@pytest.mark.parametrize("line, message", [
    ('sbatch = ["--gres=gpu:1 --mem=1G"]', "hook 'x': sbatch option '--gres=gpu:1 --mem=1G' holds a space"),
    ('sbatch = ["--time=1\\n#SBATCH --x"]', "hook 'x': sbatch option '--time=1\\\\n#SBATCH --x' holds a space, a newline"),
    ('sbatch = ["--comment=\\"x\\""]', "holds '\"', which Slurm reads as quoting"),
    ("sbatch = [\"--comment='x'\"]", "holds \"'\", which Slurm reads as quoting"),
    ('sbatch = ["--comment=a\\\\b"]', "holds '\\\\\\\\', which Slurm reads as quoting"),
    ('sbatch = ["--comment=a#b"]', "holds '#', which Slurm reads as quoting or a comment"),
    ('sbatch = ["gres=gpu:1"]', "sbatch option 'gres=gpu:1' is not an option"),
    ('partitions = ["a b"]', "hook 'x': partition 'a b' is not a Slurm partition name"),
    ('partitions = ["a\\n#SBATCH --x"]', "partition 'a\\\\n#SBATCH --x' is not a Slurm partition name"),
    ('partitions = ["$(touch x)"]', "partition '\\$\\(touch x\\)' is not a Slurm partition name"),
    ('env = { "A; touch x" = "1" }', "hook 'x': env key 'A; touch x' is not an environment variable name"),
    ('env = { A = 1 }', "hook 'x': env must be a table of strings, got \\{'A': 1\\}"),
    ('vars = { "a b" = "1" }', "vars key 'a b' cannot be a \\{name\\} placeholder"),
    ('min_new_episodes = "ten"', "hook 'x': min_new_episodes must be an integer, got \"ten\": write e.g. "
                                 "min_new_episodes = 0"),
    ("min_new_episodes = -1", "min_new_episodes must be at least 0"),
    ('checkpoint_gb = "13"', "checkpoint_gb must be a number"),
    ('resolve_by_tag = "yes"', "resolve_by_tag must be true or false"),
    ('weights = "lerobot/pi0_base"', "weights must be a list of strings"),
    ('script_template = "no_such.sbatch"', "sbatch template no_such.sbatch not found"),
])
def test_hook_values_slurm_or_a_shell_cannot_take_are_one_error_line(tmp_path, capsys, line, message):
    config = tmp_path / "dataengine.toml"
    config.write_text(HOOK + line + "\n")
    before = config.read_bytes()
    assert main(["hooks", "--config", str(config), "status"]) == 2
    assert re.search(message, one_error_line(capsys)), message
    assert config.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == ["dataengine.toml"]


@pytest.mark.parametrize("name", ["../../x", "a b", "..", ".hidden", "x\n", "a/b", "ä", "-x", "x" * 97, "",
                                  "$(touch x)"])
def test_hook_names_are_names(tmp_path, capsys, name):
    config = tmp_path / "dataengine.toml"
    config.write_text(f'[[hooks]]\nname = {toml_string(name)}\nrepo_id = "a/b"\nargv = ["true"]\n')
    assert main(["hooks", "--config", str(config), "status"]) == 2
    assert one_error_line(capsys).startswith(f"error: hook name {name!r} ")


BAD_REPO_IDS = ["lab/x\n", "lab/x\n#SBATCH --x", "../x", "lab/..", "lab/a..b", "lab/.x", "lab/x.", "lab/-x",
                "lab/x-", "lab/ä", "lab/x y", "lab", "a/b/c", "/x", "lab/", "lab/" + "x" * 97, "lab/a--b", "lab/$(x)"]


@pytest.mark.parametrize("repo_id", BAD_REPO_IDS)
def test_repo_ids_are_hub_repo_ids(repo_id, tmp_path, capsys):
    with pytest.raises(DataEngineError, match="^" + re.escape(f"repo id {repo_id!r} ")):
        check_repo_id(repo_id)
    config = tmp_path / "dataengine.toml"
    config.write_text(f'[[hooks]]\nname = "x"\nrepo_id = {toml_string(repo_id)}\nargv = ["true"]\n')
    assert main(["hooks", "--config", str(config), "status"]) == 2
    assert one_error_line(capsys).startswith(f"error: hook 'x': repo_id {repo_id!r} ")
    config.write_text("")
    assert main(["hooks", "--config", str(config), "run", "--version", f"{repo_id}@v3.0"]) == 2
    assert one_error_line(capsys).startswith(f"error: repo id {repo_id!r} ")


def test_good_names_pass():
    for repo_id in ("lab/so101_hooks", "local/so101_demos", "A-1/b.c_d", "x/" + "y" * 96):
        assert check_repo_id(repo_id) == repo_id
    assert check_name("round2", "cycle name", "-") == "round2"


CUSTOM = """#!/bin/bash
#SBATCH --job-name={job_name}
#SBATCH --output={log}
LINE
{env_exports}
cd {workdir}
{command}
"""


@pytest.mark.parametrize("line, message", [
    ("#SBATCH --account={v}", "hook 'x': \\{v\\} = .* holds a space, a newline.* and is on an #SBATCH line .*line 4.*"
                              "give v a value without them \\(vars.v\\)"),
    ("# note: {v}", "hook 'x': \\{v\\} = .* holds a newline and is on a comment line"),
    ('echo "{v}"', "line 4: \\{v\\} is inside quotes; every value is shell-quoted already"),
    ("echo '{v}'", "line 4: \\{v\\} is inside quotes"),
    ("#SBATCH --chdir={out_dir}", "hook 'x': \\{out_dir\\} = .* is on an #SBATCH line"),
])
def test_custom_sbatch_templates_cannot_be_injected(tmp_path, line, message):
    template = tmp_path / "custom.sbatch"
    template.write_text(CUSTOM.replace("LINE", line))
    value = hostile(tmp_path / "INJECTED")
    config = tmp_path / "dataengine.toml"
    config.write_text(HOOK + f"script_template = {toml_string(str(template))}\nvars = {{ v = {toml_string(value)} }}\n"
                      f"out_dir = {toml_string(str(tmp_path / value))}\n")
    (hook,) = load_hooks(config).hooks
    with pytest.raises(DataEngineError, match=message) as error:
        check_hook(hook)
    assert "\n" not in str(error.value)
    with pytest.raises(DataEngineError, match=message):
        fire_hooks(load_hooks(config), event())  # a launch refuses before it writes
    assert not (tmp_path / value).exists() and not injected(tmp_path)


def test_a_custom_sbatch_template_that_is_not_text_is_one_error_line(tmp_path):
    template = tmp_path / "custom.sbatch"
    template.write_bytes(b"#!/bin/bash\n\xff\xfe{command}\n")  # Latin-1 bytes, or a binary copied by mistake
    config = tmp_path / "dataengine.toml"
    config.write_text(HOOK + f"script_template = {toml_string(str(template))}\n")
    (hook,) = load_hooks(config).hooks
    with pytest.raises(DataEngineError, match=f"{template} is damaged \\(not UTF-8 text.*script_template") as error:
        check_hook(hook)
    assert "\n" not in str(error.value)


def test_a_custom_template_value_on_a_shell_line_is_one_quoted_word(tmp_path, fake_slurm, monkeypatch):
    marker = None
    value = hostile(marker)
    template = tmp_path / "custom.sbatch"
    template.write_text(CUSTOM.replace("LINE", f"printf %s {{v}} > {tmp_path}/v.txt\n# safe: {{repo_id}} {{tag}}"))
    config = tmp_path / "dataengine.toml"
    config.write_text(f'ledger = "{tmp_path}/ledger.jsonl"\n' + HOOK + f"script_template = {toml_string(str(template))}\n"
                      f'vars = {{ v = {toml_string(value)} }}\nout_dir = "{tmp_path}/out"\n')
    monkeypatch.chdir(tmp_path)
    (run,) = fire_hooks(load_hooks(config), event())
    assert run.status == "submitted", run.reason
    assert (tmp_path / "v.txt").read_text() == value and not injected(tmp_path)


# ------------------------------------------------------------------------------------------------ dataengine cycle

GOOD_CYCLE = f"""
[cycle]
repo_id = "{REPO}"
policy = "scripted"
n = 3
use_sim_outcome = true

[curate]
vcodec = "h264"

[[hooks]]
name = "record"
repo_id = "{REPO}"
argv = ["true"]
"""


@pytest.fixture
def cycle_env(tmp_path, monkeypatch):
    monkeypatch.delenv("DATAENGINE_REGISTRY", raising=False)
    config = tmp_path / "dataengine.toml"
    workspace = tmp_path / "ws"

    def cycle(name: str, text: str = GOOD_CYCLE, workers: str = "1") -> int:
        config.write_text(text)
        return main(["--workspace", str(workspace), "cycle", "--config", str(config), "--workers", workers, "--", name])

    return cycle, tmp_path, workspace


def nothing_written(tmp_path: Path) -> None:
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dataengine.toml"], "a failed check wrote something"


@pytest.mark.parametrize("name", ["../../x", "../x", "..", ".", "a/b", "a b", "x\n", "/tmp/x", "-x", "x.",
                                  "$(touch x)", "ä", "x" * 97, ""])
def test_cycle_names_are_names_and_a_bad_one_writes_nothing(cycle_env, capsys, name):
    cycle, tmp_path, _ = cycle_env
    assert cycle(name) == 2
    assert one_error_line(capsys).startswith(f"error: cycle name {name!r} ")
    nothing_written(tmp_path)
    assert not (tmp_path.parent / "x").exists()


def _replace(old: str, new: str) -> str:
    assert old in GOOD_CYCLE
    return GOOD_CYCLE.replace(old, new, 1)


CYCLE_CASES = {
    "n-text": (_replace("n = 3", 'n = "ten"'), 'n must be an integer, got "ten": write e.g. n = 1000'),
    "n-zero": (_replace("n = 3", "n = 0"), "n must be at least 1"),
    "n-bool": (_replace("n = 3", "n = true"), "n must be an integer, got true"),
    "seed": (_replace("n = 3", "n = 3\nseed = -5"), "seed must be an integer >= 0"),
    "image-size": (_replace("n = 3", 'n = 3\nimage_size = "big"'), "image_size must be an integer"),
    "sim-outcome": (_replace("use_sim_outcome = true", 'use_sim_outcome = "yes"'), "must be true or false"),
    "unknown-key": (_replace("n = 3", "n = 3\nepisodes = 3"), "unknown key\\(s\\) episodes"),
    "target": (_replace("n = 3", 'n = 3\ntarget = "s3"'), "unknown target 's3'"),
    "repo-newline": (_replace(f'repo_id = "{REPO}"', f'repo_id = "{REPO}\\n"'), "repo id .* is not a Hub repo id"),
    "repo-ascii": (_replace(f'repo_id = "{REPO}"', 'repo_id = "lab/sö101"'), "repo id .* ASCII letters"),
    "repo-dotdot": (_replace(f'repo_id = "{REPO}"', 'repo_id = "../x"'), "repo id '../x' .*'\\.\\.'"),
    "classifier-missing": (_replace("use_sim_outcome = true", 'classifier = "no/such/artifact"'),
                           "classifier artifact no/such/artifact does not exist"),
    "no-verdict": (_replace("use_sim_outcome = true", ""), "curate needs a success verdict"),
    "base-missing": (_replace("n = 3", 'n = 3\nbase = "no/such/dataset"'), "base dataset no/such/dataset"),
    "policy": (_replace('policy = "scripted"', 'policy = "no/such/checkpoint"'), "policy 'no/such/checkpoint'"),
    "cycle-not-table": ("cycle = 5\n", "has no \\[cycle\\] table"),
    "curate-type": (_replace('vcodec = "h264"', 'image_size = "big"'),
                    "\\[curate\\] of .*: image_size must be an integer, got \"big\""),
    "curate-nested": (_replace('vcodec = "h264"', 'vcodec = "h264"\n[curate.grip]\nmin_squeeze = "hard"'),
                      "\\[curate.grip\\] of .*: min_squeeze must be a number"),
    "curate-not-table": ("curate = 5\n" + _replace('[curate]\nvcodec = "h264"', ""), "\\[curate\\] of .* must be a table"),
    "curate-unknown": (_replace('vcodec = "h264"', 'vcodek = "h264"'), "\\[curate\\] of .*: unknown key\\(s\\) vcodek"),
    "hook-min-new": (GOOD_CYCLE + 'min_new_episodes = "ten"\n', "hook 'record': min_new_episodes must be an integer"),
    "hook-unknown-var": (_replace('argv = ["true"]', 'argv = ["{stpes}"]'), "unknown variable \\{stpes\\}"),
    "hook-out-dir-var": (GOOD_CYCLE + 'out_dir = "x/{hok}"\n', "out_dir: unknown variable \\{hok\\}"),
    "hook-name": (_replace('name = "record"', 'name = "../x"'), "hook name '../x'"),
    "hook-repo": (_replace(f'name = "record"\nrepo_id = "{REPO}"', 'name = "record"\nrepo_id = "lab/x\\n"'),
                  "hook 'record': repo_id 'lab/x\\\\n'"),
    "hook-sbatch": (GOOD_CYCLE + 'kind = "slurm"\nsbatch = ["--mem=1G\\n"]\n', "sbatch option"),
    "hook-eval": (GOOD_CYCLE + "eval = { n = 0 }\n", "hook 'record': eval: n must be a positive integer"),
    "hooks-not-tables": ("hooks = 5\n" + GOOD_CYCLE.split("[[hooks]]")[0], "hooks must be \\[\\[hooks\\]\\] tables"),
    "ledger": ('ledger = 5\n' + GOOD_CYCLE, "ledger must be a path string"),
}


@pytest.mark.parametrize("case", list(CYCLE_CASES))
def test_cycle_checks_everything_before_any_work_and_a_failed_check_writes_nothing(cycle_env, capsys, case):

    text, message = CYCLE_CASES[case]
    cycle, tmp_path, _ = cycle_env
    assert cycle("round1", text) == 2
    line = one_error_line(capsys)
    assert re.search(message, line), (message, line)
    nothing_written(tmp_path)


@pytest.mark.parametrize("workers", ["0", "-3"])
def test_cycle_workers_below_one_is_one_error_line_before_any_work(cycle_env, capsys, workers):
    cycle, tmp_path, _ = cycle_env
    assert cycle("round1", workers=workers) == 2
    assert one_error_line(capsys) == f"error: --workers must be at least 1, got {workers}"
    nothing_written(tmp_path)


def test_a_damaged_round_state_is_one_error_line_naming_it(cycle_env, capsys):
    cycle, tmp_path, workspace = cycle_env
    for content in ('{"seed": 1, "n": "ten"}', "{not json", '[]'):
        state = workspace / "cycles" / "round1" / "cycle.json"
        state.parent.mkdir(parents=True, exist_ok=True)
        state.write_text(content)
        assert cycle("round2") == 2
        assert one_error_line(capsys).startswith(f"error: {state} ")
        assert sorted(p.name for p in (workspace / "cycles").iterdir()) == ["round1"]
        assert state.read_text() == content


# ------------------------------------------------------------------------------------------------ a real Slurm


def test_hostile_values_on_a_real_slurm_cluster(slurm, tmp_path, monkeypatch):
    monkeypatch.setenv("SLURM_CONF", slurm["SLURM_CONF"])
    marker = None
    value = hostile(marker)
    workdir = tmp_path / f"work {value}"
    workdir.mkdir()
    monkeypatch.chdir(workdir)
    config = tmp_path / "dataengine.toml"
    config.write_text(hostile_hook(tmp_path, marker, "slurm", ["queue_a", "queue_b"]))
    hooks = load_hooks(config)
    (run,) = fire_hooks(hooks, event())
    assert run.status == "submitted" and len(run.job_ids) == 2, run.reason
    done = slurm_cluster.finished_run(hooks.ledger)
    assert (done.status, done.exit_status) == ("succeeded", 0)
    run_dir = Path(run.run_dir)
    got = json.loads((run_dir.parent.parent / "got.json").read_text())
    assert got == {"argv": [value, value, REPO, "ds-0002-aaaaaaaaaaaa"], "env": value, "cwd": str(workdir)}
    winner = (run_dir / "race_winner" / "job_id").read_text().strip()
    assert (run_dir / f"job-{winner}.log").is_file(), "Slurm wrote the log into the hostile run dir"
    assert not injected(tmp_path)
