"""distributed.timeout_min reaches the process group that `distributed.init` joins (the one DeepSpeed's engines use),
and a timeout under a minute is refused by the schema."""

import os
import socket
import subprocess
import sys

import pytest

from pipeline import config
from tests.conftest import ROOT

# What cmd_train does with the configuration, then the group's timeout as torch.distributed holds it.
JOIN = """
import sys
import torch
from torch.distributed import distributed_c10d
from pipeline import config, distributed

distributed.init(config.load(sys.argv[1]).distributed.timeout_min)
backend = distributed_c10d._get_default_group()._get_backend(torch.device("cpu"))
with open(f"{sys.argv[2]}/rank{distributed.rank()}", "w") as f:  # a file each: ranks' stdout lines interleave
    f.write(str(backend.options._timeout.total_seconds()))
distributed.shutdown()
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_the_configured_timeout_reaches_the_process_group(tmp_path):
    script = tmp_path / "join.py"
    script.write_text(JOIN)
    proc = subprocess.run(
        [
            *(sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2"),
            *("--master_port", str(free_port()), str(script), '{"distributed": {"timeout_min": 7}}', str(tmp_path)),
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert [(tmp_path / f"rank{r}").read_text() for r in (0, 1)] == ["420.0", "420.0"]


def test_the_timeout_defaults_to_30_minutes_and_is_at_least_one():
    assert config.resolve({}).distributed.timeout_min == 30
    with pytest.raises(config.ConfigError, match=r"distributed\.timeout_min: 0 is less than the minimum of 1"):
        config.resolve({"distributed": {"timeout_min": 0}})
