"""The job's time limit: training stops at a step boundary, with a checkpoint, before the scheduler ends the job.

SLURM kills a job at its time limit (the train rule's runtime, `resources.train.runtime_h`), and the paper's run
takes days: killed, a job loses every step since its last checkpoint. So the trainer asks SLURM once, when it
starts, how long its job has left (`squeue -j $SLURM_JOB_ID -o %L`), and after each step checks that one more step
(the longest so far) and `resources.train.stop_before_end_min` minutes still fit. If not, it writes a checkpoint
and exits with EXIT_CODE; Snakemake resubmits the job (the train rule's retries, `resources.train.sessions`), and
the new job resumes from that checkpoint. Outside SLURM there is no limit.

Why not `sbatch --signal=USR1@600`: under snakemake-executor-plugin-slurm 2.6.1 the rule's command runs below
Snakemake's own job-step process, which neither handles nor forwards the signal, and SIGUSR1's default action ends
it and the job with it (the plugin's issue #242). The job's end needs no signal and is the same for every rank.
"""

from __future__ import annotations

import logging
import os
import re
import subprocess
import time
from dataclasses import dataclass

from pipeline.io import PipelineError

log = logging.getLogger(__name__)

EXIT_CODE = 75  # EX_TEMPFAIL: try again (the rule's retry resumes)
_LEFT = re.compile(r"^(?:(\d+)-)?(?:(\d+):)?(\d+):(\d+)$")  # [days-][hours:]minutes:seconds


class TimeLimitReached(PipelineError):
    """Training stopped before its job's time limit, with a checkpoint of the step it reached."""


def parse_time_left(text: str) -> float | None:
    """Seconds in squeue's %L (`5:03`, `1:02:03`, `2-01:02:03`); None for UNLIMITED, NOT_SET or anything else."""
    match = _LEFT.match(text.strip())
    if match is None:
        return None
    days, hours, minutes, seconds = (int(g or 0) for g in match.groups())
    return float(((days * 24 + hours) * 60 + minutes) * 60 + seconds)


@dataclass
class TimeLimit:
    """When the job ends (time.monotonic() seconds; None: never) and the margin kept before it."""

    ends_at: float | None
    margin_s: float

    def too_close(self, next_step_s: float) -> bool:
        """True when a step of `next_step_s` seconds and the margin no longer fit before the end."""
        return self.ends_at is not None and time.monotonic() + next_step_s + self.margin_s > self.ends_at


def of_job(stop_before_end_min: float) -> TimeLimit:
    """The limit of the SLURM job this process runs in (SLURM_JOB_ID), read now; no limit outside SLURM, or when
    squeue cannot tell (a warning says so)."""
    margin = 60.0 * stop_before_end_min
    job = os.environ.get("SLURM_JOB_ID")
    if not job:
        return TimeLimit(None, margin)
    try:
        proc = subprocess.run(["squeue", "-h", "-j", job, "-o", "%L"], capture_output=True, text=True, timeout=60)
        left = parse_time_left(proc.stdout) if proc.returncode == 0 else None
        reason = proc.stderr.strip() or proc.stdout.strip() or f"exit code {proc.returncode}"
    except (OSError, subprocess.TimeoutExpired) as e:
        left, reason = None, f"{type(e).__name__}: {e}"
    if left is None:
        log.warning("SLURM job %s: time left unknown (%s); training will not stop before a time limit", job, reason)
        return TimeLimit(None, margin)
    log.info("SLURM job %s ends in %.0f s: training stops with a checkpoint %.0f s before", job, left, margin)
    return TimeLimit(time.monotonic() + left, margin)
