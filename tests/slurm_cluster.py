"""A real single-node Slurm cluster (Debian's slurm-wlm: slurmctld + slurmd + munge) started for the tests, with
two partitions on the one node so the two-queue race runs for real. Needs root and the slurm-wlm package."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

CONF = """ClusterName=dataengine-test
SlurmctldHost={host}
SlurmctldPort={ctld_port}
SlurmdPort={slurmd_port}
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SchedulerType=sched/builtin
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
SlurmUser=root
SlurmdUser=root
StateSaveLocation={dir}/state
SlurmdSpoolDir={dir}/spool
SlurmctldPidFile={dir}/slurmctld.pid
SlurmdPidFile={dir}/slurmd.pid
SlurmctldLogFile={dir}/slurmctld.log
SlurmdLogFile={dir}/slurmd.log
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
MpiDefault=none
NodeName={host} CPUs={cpus} RealMemory=1000 State=UNKNOWN
PartitionName=queue_a Nodes={host} Default=YES MaxTime=INFINITE State=UP OverSubscribe=YES
PartitionName=queue_b Nodes={host} MaxTime=INFINITE State=UP OverSubscribe=YES
"""


def missing() -> str | None:
    """Why a real cluster cannot be started here, or None."""
    for program in ("sbatch", "slurmctld", "slurmd", "munged"):
        if shutil.which(program) is None and not Path(f"/usr/sbin/{program}").exists():
            return f"{program} not installed (apt-get install slurm-wlm munge)"
    if os.geteuid() != 0:
        return "slurmd needs root"
    return None


def start(directory: Path) -> tuple[dict[str, str], list[subprocess.Popen]]:
    """Start munged (if not running), slurmctld and slurmd in the foreground; returns the env with SLURM_CONF."""
    directory.mkdir(parents=True, exist_ok=True)
    for sub in ("state", "spool"):
        (directory / sub).mkdir(exist_ok=True)
    ports = []
    for _ in range(2):
        with socket.socket() as s:
            s.bind(("", 0))
            ports.append(s.getsockname()[1])
    host = socket.gethostname().split(".")[0]
    conf = directory / "slurm.conf"
    conf.write_text(CONF.format(host=host, ctld_port=ports[0], slurmd_port=ports[1], dir=directory,
                                cpus=os.cpu_count()))
    env = dict(os.environ, SLURM_CONF=str(conf))
    if subprocess.run(["pgrep", "-x", "munged"], capture_output=True).returncode != 0:
        Path("/run/munge").mkdir(exist_ok=True)
        shutil.chown("/run/munge", "munge", "munge")
        subprocess.run(["su", "-s", "/bin/sh", "munge", "-c", "/usr/sbin/munged"], check=True)
    daemons = [subprocess.Popen([f"/usr/sbin/{d}", "-D", "-f", str(conf)], env=env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL) for d in ("slurmctld", "slurmd")]
    deadline = time.time() + 60
    while time.time() < deadline:
        state = subprocess.run(["sinfo", "-h", "-o", "%t"], env=env, capture_output=True, text=True).stdout
        if "idle" in state:
            return env, daemons
        time.sleep(0.5)
    stop(daemons)
    raise RuntimeError(f"slurm did not come up: see {directory}/slurmctld.log and slurmd.log")


def stop(daemons: list[subprocess.Popen]) -> None:
    for daemon in daemons:
        daemon.terminate()
    for daemon in daemons:
        daemon.wait(timeout=30)


def finished_run(ledger: Path, timeout_s: float = 60.0):
    """The ledger's one hook run once its Slurm job has ended (its status leaves ``submitted``), or as it is after
    ``timeout_s``; the caller asserts on its status."""
    from so101_dataengine.hooks.ledger import Ledger

    deadline = time.time() + timeout_s
    while time.time() < deadline and Ledger(ledger).runs()[0].status == "submitted":
        time.sleep(0.5)
    (run,) = Ledger(ledger).runs()
    return run
