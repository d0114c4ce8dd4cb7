"""A real one-node SLURM for the tests: munged, slurmctld and slurmd on this machine (Debian's slurm-wlm), each
sweep submitting to it through submitit as on a cluster. Needs root (the daemons run as root, munged as munge);
`make test` installs slurm-wlm and munge where it may (see the Makefile's test-tools)."""

import fcntl
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

DAEMONS = ("munged", "slurmctld", "slurmd")
# One cluster on a machine at a time: two test runs side by side share munged, which the first to finish would stop.
LOCK = Path("/tmp/sherlocked-tests-slurm.lock")


def why_not() -> str | None:
    """Why this machine cannot run the SLURM tests, or None."""
    if os.geteuid() != 0:
        return "the SLURM tests start slurmctld and slurmd, which needs root"
    missing = [d for d in DAEMONS if shutil.which(d) is None and not Path("/usr/sbin", d).exists()]
    if missing:
        return f"{', '.join(missing)} not installed (Debian: apt-get install slurm-wlm munge; make test does)"
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("", 0))
        return s.getsockname()[1]


def memory_mb() -> int:
    total_kb = int(Path("/proc/meminfo").read_text().split()[1])
    return min(8000, total_kb // 1024 // 2)  # slurmd drains a node that has less than it is said to have


def config(folder: Path) -> str:
    host = socket.gethostname().split(".")[0]
    lines = [
        "ClusterName=sherlocked-tests",
        f"SlurmctldHost={host}",
        "SlurmUser=root",
        "SlurmdUser=root",
        "AuthType=auth/munge",
        "ProctrackType=proctrack/linuxproc",
        "TaskPlugin=task/none",
        "SelectType=select/cons_tres",
        "SelectTypeParameters=CR_Core",
        "JobAcctGatherType=jobacct_gather/none",
        "AccountingStorageType=accounting_storage/none",
        "MpiDefault=none",
        "ReturnToService=2",
        "MinJobAge=600",  # squeue and scontrol remember a finished job for 10 minutes
        f"SlurmctldPort={free_port()}",
        f"SlurmdPort={free_port()}",
        f"StateSaveLocation={folder / 'state'}",
        f"SlurmdSpoolDir={folder / 'spool'}",
        f"SlurmctldPidFile={folder / 'slurmctld.pid'}",
        f"SlurmdPidFile={folder / 'slurmd.pid'}",
        f"SlurmctldLogFile={folder / 'slurmctld.log'}",
        f"SlurmdLogFile={folder / 'slurmd.log'}",
        f"NodeName={host} CPUs={os.cpu_count()} RealMemory={memory_mb()} State=UNKNOWN",
        f"PartitionName=tests Nodes={host} Default=YES MaxTime=INFINITE State=UP OverSubscribe=FORCE:4",
    ]
    return "\n".join(lines) + "\n"


class Slurm:
    """The cluster: start() it, stop() it; its clients find it through SLURM_CONF (set in os.environ)."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)
        self.conf = self.folder / "slurm.conf"
        self.started_munge = False
        self.lock = None

    def start(self) -> None:
        self.lock = open(LOCK, "w")  # noqa: SIM115 (held until stop)
        fcntl.flock(self.lock, fcntl.LOCK_EX)  # another run's cluster: wait until it stops
        for part in ("state", "spool"):
            (self.folder / part).mkdir(parents=True, exist_ok=True)
        self.conf.write_text(config(self.folder))
        self.start_munge()
        os.environ["SLURM_CONF"] = str(self.conf)
        subprocess.run(["slurmctld", "-f", str(self.conf)], check=True)
        subprocess.run(["slurmd", "-f", str(self.conf)], check=True)
        deadline = time.monotonic() + 60
        while self.node_state() != "idle":
            if time.monotonic() > deadline:
                raise RuntimeError(f"SLURM's node is {self.node_state()!r}: {self.log_tail()}")
            time.sleep(0.5)

    def start_munge(self) -> None:
        if subprocess.run(["pgrep", "-x", "munged"], capture_output=True).returncode == 0:
            return
        key = Path("/etc/munge/munge.key")
        if not key.exists():
            subprocess.run(["mungekey", "--create", "--keyfile", str(key)], check=True)
            shutil.chown(key, "munge", "munge")
        Path("/run/munge").mkdir(parents=True, exist_ok=True)
        shutil.chown("/run/munge", "munge", "munge")
        subprocess.run(["runuser", "-u", "munge", "--", "munged"], check=True)
        self.started_munge = True

    def node_state(self) -> str:
        out = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True)
        return out.stdout.strip().rstrip("*")

    def log_tail(self) -> str:
        logs = [self.folder / name for name in ("slurmctld.log", "slurmd.log")]
        return " | ".join(p.read_text()[-400:] for p in logs if p.exists())

    def jobs(self) -> list[dict]:
        """The jobs SLURM knows (array elements one by one): id (e.g. 12_0), state."""
        out = subprocess.run(["squeue", "-h", "-a", "-t", "all", "-o", "%i %T"], capture_output=True, text=True)
        return [dict(zip(("id", "state"), line.split())) for line in out.stdout.splitlines()]

    def stop(self) -> None:
        subprocess.run(["scancel", "--full", "--user", "root"], capture_output=True)
        subprocess.run(["scontrol", "shutdown"], capture_output=True)
        for pid_file in ("slurmctld.pid", "slurmd.pid"):
            path = self.folder / pid_file
            deadline = time.monotonic() + 20
            while path.exists() and time.monotonic() < deadline:
                time.sleep(0.2)
        if self.started_munge:
            subprocess.run(["pkill", "-x", "munged"], capture_output=True)
        os.environ.pop("SLURM_CONF", None)
        if self.lock is not None:
            self.lock.close()  # the next run's cluster may start
