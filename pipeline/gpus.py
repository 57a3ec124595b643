"""GPUs of the jobs on one machine with several: each job that runs beside others gets devices of its own.

Snakemake counts GPUs (`--resources gpu=4` keeps the running jobs' `gpu` resources summed at most 4) but does not
say which ones a job should use (snakemake issue #281), so every job would start on GPU 0. The rules with GPUs
therefore start their command through `python -m pipeline with-gpus N -- command ...`: it locks N of the machine's
GPUs (one lock file each, in a folder every job on the machine shares; the locks go when the process ends, however
it ends), runs the command with CUDA_VISIBLE_DEVICES set to them and exits with its exit code. torchrun's ranks
then take the job's devices by LOCAL_RANK. The machine's GPUs: CUDA_VISIBLE_DEVICES when it is set (restrict a run
to some), else every GPU `nvidia-smi -L` lists. Inside a SLURM job the command runs as it is: SLURM already gave the
job its devices; so it does on a machine without GPUs, where train.gpus counts CPU processes.
"""

from __future__ import annotations

import fcntl
import logging
import os
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

from pipeline.io import DataError

log = logging.getLogger(__name__)

LOCKS = Path("/tmp/multiattempt-pipeline-gpus")  # one folder for every user's jobs on the machine


def machine_gpus() -> list[str]:
    """The devices jobs may share: CUDA_VISIBLE_DEVICES's list when it is set, else `nvidia-smi -L`'s indices."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return [d.strip() for d in visible.split(",") if d.strip()]
    try:
        listed = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=60).stdout
    except (OSError, subprocess.TimeoutExpired):
        return []
    return [str(i) for i, line in enumerate(listed.splitlines()) if line.startswith("GPU ")]


def claim(n: int, devices: Sequence[str], folder: Path = LOCKS, poll_s: float = 1.0) -> tuple[list[str], list[int]]:
    """Locks `n` of `devices`, waiting until that many are free; returns their ids and the open lock files (keep
    them open while the devices are in use). A partial claim is let go before waiting, so two jobs never each
    hold part of what both need."""
    if n > len(devices):
        raise DataError(f"a job needs {n} GPUs and this machine has {len(devices)} ({', '.join(devices) or 'none'})")
    folder.mkdir(parents=True, exist_ok=True)
    if folder.stat().st_uid == os.getuid():
        folder.chmod(0o1777)  # other users' jobs lock here too
    said = False
    while True:
        ids, fds = [], []
        for device in devices:
            fd = os.open(folder / f"gpu{device}.lock", os.O_RDONLY | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                continue
            ids.append(device)
            fds.append(fd)
            if len(ids) == n:
                return ids, fds
        for fd in fds:
            os.close(fd)
        if not said:
            log.info("waiting for %d of GPUs %s to be free", n, ",".join(devices))
            said = True
        time.sleep(poll_s)


def run_with(n: int, command: Sequence[str], devices: Sequence[str] | None = None, folder: Path = LOCKS) -> int:
    """Runs `command` (a leading `--` dropped) on `n` GPUs of its own (see the module's docstring); returns its
    exit code."""
    command = list(command[1:] if command[:1] == ["--"] else command)
    if not command:
        raise DataError("with-gpus: no command given (with-gpus N -- command ...)")
    devices = machine_gpus() if devices is None else devices
    if n == 0 or os.environ.get("SLURM_JOB_ID") or not devices:  # no GPU at all: CPU processes (the rehearsal)
        return subprocess.run(list(command)).returncode
    ids, fds = claim(n, devices, folder)
    log.info("GPUs %s: %s", ",".join(ids), " ".join(command))
    try:
        return subprocess.run(list(command), env={**os.environ, "CUDA_VISIBLE_DEVICES": ",".join(ids)}).returncode
    finally:
        for fd in fds:
            os.close(fd)
