"""pipeline/time_limit.py: squeue's time-left format, and when a step no longer fits. The stop itself is tested in
tests/test_train.py (a run stopped with a checkpoint resumes to the same weights) and tests/test_slurm.py (through
a SLURM job's real time limit and Snakemake's retry)."""

import logging
import time

import pytest

from pipeline import time_limit
from pipeline.time_limit import TimeLimit, parse_time_left


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("0:07", 7),
        ("5:03", 303),
        ("1:02:03", 3723),
        ("2-01:02:03", 2 * 86400 + 3723),
        (" 47:59:30\n", 47 * 3600 + 59 * 60 + 30),
        ("UNLIMITED", None),
        ("NOT_SET", None),
        ("INVALID", None),
        ("", None),
        ("1:2:3:4", None),
    ],
)
def test_parse_time_left(text, seconds):
    assert parse_time_left(text) == seconds


def test_a_step_fits_while_it_and_the_margin_end_before_the_job():
    limit = TimeLimit(ends_at=time.monotonic() + 100, margin_s=30)
    assert not limit.too_close(60)
    assert limit.too_close(75)
    assert not TimeLimit(ends_at=None, margin_s=30).too_close(1e9)


def test_no_limit_outside_slurm(monkeypatch):
    monkeypatch.delenv("SLURM_JOB_ID", raising=False)
    limit = time_limit.of_job(10)
    assert limit == TimeLimit(None, 600.0)


def test_a_job_whose_time_left_cannot_be_read_trains_on_and_says_so(monkeypatch, caplog, tmp_path):
    """squeue absent from PATH (a SLURM_JOB_ID inherited by a process on a machine without SLURM's tools)."""
    monkeypatch.setenv("SLURM_JOB_ID", "12345")
    monkeypatch.setenv("PATH", str(tmp_path))
    with caplog.at_level(logging.WARNING):
        assert time_limit.of_job(10).ends_at is None
    assert "SLURM job 12345: time left unknown (FileNotFoundError" in caplog.text
