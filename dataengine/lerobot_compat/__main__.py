"""``python -m so101_dataengine.lerobot_compat ARGS...``: ``lerobot-train ARGS...`` of the installed lerobot, with the
PyAV decoding fallback installed (0.4.4 without torchvision's VideoReader), reading frames from the decoded-frame
cache named by ``$DATAENGINE_FRAME_CACHE`` (``so101_dataengine.lerobot_compat.frame_cache``). The shipped hook templates call it."""

import os
from pathlib import Path

from so101_dataengine.lerobot_compat import frame_cache, install_video_fallback

install_video_fallback()
if os.environ.get(frame_cache.CACHE_ENV):
    frame_cache.install(Path(os.environ[frame_cache.CACHE_ENV]))
from lerobot.scripts.lerobot_train import main  # noqa: E402  (after the patches: it imports the dataset classes)

main()
