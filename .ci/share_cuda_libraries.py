"""Give a second virtual environment the first one's CUDA libraries as hard links, before its pip install.

torch's Linux wheels are CUDA builds and depend on ~4 GB of nvidia-* wheels. Those are tagged py3-none (no Python
ABI), so one copy on disk serves every interpreter: this links each such distribution's files (its RECORD) and its
.dist-info into the second environment, where pip then sees it installed and skips it, provided pip resolves the same
torch. For that it also writes DST_VENV/torch-constraints.txt (the first environment's torch, torchvision and
torchcodec) for the second install's `-c`. Removing a package from either environment only unlinks that
environment's names; the other keeps its files. Re-running links only what is missing.

Usage: python .ci/share_cuda_libraries.py SRC_VENV DST_VENV   (both made by `python -m venv`, SRC installed)
"""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

SHARED_PREFIX = "nvidia_"
PINNED = ("torch", "torchvision", "torchcodec")


def site_packages(venv: Path) -> Path:
    """The purelib directory of the environment's own interpreter (its Python version names the folder)."""
    code = "import sysconfig; print(sysconfig.get_paths()['purelib'])"
    return Path(subprocess.check_output([str(venv / "bin" / "python"), "-c", code], text=True).strip())


def is_abi_free(dist_info: Path) -> bool:
    """True for a wheel any Python can use: every tag in its WHEEL file is py3-none-<platform>."""
    tags = [line.split(":", 1)[1].strip() for line in (dist_info / "WHEEL").read_text().splitlines()
            if line.startswith("Tag:")]
    return bool(tags) and all(tag.startswith("py3-none-") for tag in tags)


def link_distribution(dist_info: Path, src: Path, dst: Path) -> int:
    """Hard-link every file the distribution's RECORD lists (which includes its .dist-info) from src into dst."""
    linked = 0
    with (dist_info / "RECORD").open(newline="") as record:
        for row in csv.reader(record):
            relative = Path(row[0])
            if relative.is_absolute() or ".." in relative.parts:
                continue  # outside site-packages (scripts): nvidia wheels have none, and they would not be shared
            target = dst / relative
            if target.exists():
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            os.link(src / relative, target)
            linked += 1
    return linked


def main(src_venv: Path, dst_venv: Path) -> None:
    src, dst = site_packages(src_venv), site_packages(dst_venv)
    shared = [info for info in sorted(src.glob(f"{SHARED_PREFIX}*.dist-info")) if is_abi_free(info)]
    files = sum(link_distribution(info, src, dst) for info in shared)
    freeze = subprocess.check_output([str(src_venv / "bin" / "python"), "-m", "pip", "freeze"], text=True)
    pins = [line for line in freeze.splitlines() if line.split("==")[0].lower() in PINNED and "==" in line]
    (dst_venv / "torch-constraints.txt").write_text("".join(f"{pin}\n" for pin in pins))
    print(f"[ci] {len(shared)} nvidia-* distributions shared by hard link ({files} files newly linked); "
          f"the second stack's torch: {' '.join(pins) or 'unpinned'}")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: python .ci/share_cuda_libraries.py SRC_VENV DST_VENV")
    main(Path(sys.argv[1]), Path(sys.argv[2]))
