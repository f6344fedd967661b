"""What is simulated. Rendering is headless by default (``MUJOCO_GL=egl``: Mesa on CPU machines, the driver on
NVIDIA ones); set ``MUJOCO_GL`` before importing to choose another backend."""

import os

os.environ.setdefault("MUJOCO_GL", "egl")
