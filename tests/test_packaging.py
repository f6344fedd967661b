"""The built wheel installs exactly one top-level import name, ``so101_dataengine``, with the stage folders
(``classifier``, ``rollouts``, ``curation``, ``scenes``) under it and the ``dataengine`` command: installed beside
PyPI's unrelated ``dataengine`` (which installs a top-level ``dataengine``) or a researcher's own ``scenes``
module, neither shadows the other."""

import shutil
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SOURCE_FOLDERS = ("dataengine", "classifier", "rollouts", "curation", "scenes")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out, source = tmp_path_factory.mktemp("wheel"), tmp_path_factory.mktemp("source")
    for name in ("pyproject.toml", "README.md", *SOURCE_FOLDERS):  # a copy: setuptools builds in the source tree
        (shutil.copytree if (ROOT / name).is_dir() else shutil.copy)(ROOT / name, source / name)
    result = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                             "-w", str(out), str(source)], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    (path,) = out.glob("so101_dataengine-*.whl")
    return path


def test_the_wheel_holds_one_top_level_name_and_its_data_files(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    assert {n.split("/")[0] for n in names} == {"so101_dataengine", wheel.name.split("-py3")[0] + ".dist-info"}
    for folder in ("classifier", "rollouts", "curation", "scenes", "base", "formats", "lerobot_compat"):
        assert f"so101_dataengine/{folder}/__init__.py" in names, folder
    assert any(n.startswith("so101_dataengine/scenes/assets/") and n.endswith(".xml") for n in names)
    assert "so101_dataengine/hooks/templates/act.toml" in names
    assert any(n.startswith("so101_dataengine/review/static/") for n in names)
    entry_points = zipfile.ZipFile(wheel).read(next(n for n in names if n.endswith("entry_points.txt"))).decode()
    assert "dataengine = so101_dataengine.cli:main" in entry_points


def test_installed_into_a_fresh_environment_it_adds_only_its_names_and_runs(wheel, tmp_path):
    env = tmp_path / "env"
    venv.create(env, with_pip=True)
    python = env / "bin" / "python"
    before = set(_site_packages(python).iterdir())
    result = subprocess.run([str(python), "-m", "pip", "install", "--no-deps", "--no-index", "-q", str(wheel)],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    added = {p.name for p in set(_site_packages(python).iterdir()) - before}
    assert added == {"so101_dataengine", wheel.name.split("-py3")[0] + ".dist-info"}, added
    assert (env / "bin" / "dataengine").is_file()
    # The installed copy, not this checkout, with this interpreter's dependencies (mujoco, numpy): a scene loads
    # its MJCF from the installed package data.
    probe = ("import so101_dataengine, so101_dataengine.scenes.pick_place as p; print(so101_dataengine.__file__); "
             "env = p.PickPlaceEnv(p.PickPlaceConfig(image_size=32)); env.reset(seed=0); print('ok')")
    site = _site_packages(python)
    run = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=300, cwd=tmp_path,
                         env={"PYTHONPATH": str(site), "MUJOCO_GL": "egl", "PATH": "/usr/bin:/bin"})
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.stdout.split()[0].startswith(str(site)) and run.stdout.split()[-1] == "ok"


def _site_packages(python: Path) -> Path:
    return Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               capture_output=True, text=True, check=True).stdout.strip())
