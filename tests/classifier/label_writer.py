"""A labeller in its own process for the labels-file tests: ``python label_writer.py RUN LABELS NAME COUNT GO``
says ``ready`` once imported and waits for the file GO to exist (so that writers start together, not one after
another's imports), then labels COUNT times through the
real command, ``dataengine classifier label`` (its ``main``, in this process: a process per label would spend
seconds importing), each label by ``NAME-i``."""

import sys
import time
from pathlib import Path

from so101_dataengine.cli import main

run, labels, name, count, go = sys.argv[1:]
print("ready", flush=True)
while not Path(go).exists():
    time.sleep(0.005)
for i in range(int(count)):
    code = main(["classifier", "label", run, "--labels", labels, "--episodes", str(i % 2), "--success",
                 "--by", f"{name}-{i}"])
    if code != 0:
        sys.exit(code)
