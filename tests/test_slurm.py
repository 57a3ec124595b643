"""The SLURM profile (profiles/slurm), run for real on a single-node SLURM cluster on localhost.

`pytest tests/test_slurm.py -q` (root, Debian/Ubuntu). The `cluster` fixture installs Debian's slurm-wlm and
munge when they are missing (apt-get), starts munged (unless one already answers), slurmctld and slurmd with a
minimal slurm.conf in a temporary folder, and stops exactly the daemons it started. It skips, with the reason,
when not root, without apt-get, or on a machine that already has a SLURM configuration (/etc/slurm/slurm.conf
or /run/slurm/conf). The cluster runs "configless": slurmd fetches slurm.conf from slurmctld and links it at
/run/slurm/conf, where `srun` inside the jobs finds it (the slurm-jobstep plugin drops SLURM_CONF from the
environment of its `srun`). test_two_node_launch_line_on_a_two_node_cluster starts two nodes (two slurmd) of
its own for the launch line of train.nodes: 2. See docs/slurm.md.
"""

import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file

from tests.conftest import ROOT

PROFILE = ROOT / "profiles" / "slurm"
VENV_BIN = Path(sys.executable).parent
ENV = {**os.environ, "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
SMALL_DATA = "data={synthetic: {n_train: 300, n_heldout: 50}}"
TOOLS = ("slurmctld", "slurmd", "sbatch", "squeue", "sinfo", "srun", "scancel", "munged", "munge", "unmunge")
PACKAGES = ("slurm-wlm", "munge")  # slurm-wlm = slurmctld + slurmd + slurm-client
SYSTEM_CONFIGS = (Path("/etc/slurm/slurm.conf"), Path("/run/slurm/conf"))
MUNGE_KEY = Path("/etc/munge/munge.key")
MUNGE_RUN = Path("/run/munge")
RUN_SLURM = Path("/run/slurm")


def snakemake_cmd(workdir: Path, *args: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "snakemake",
        "--snakefile",
        str(ROOT / "Snakefile"),
        "--directory",
        str(workdir),
        "--configfile",
        str(ROOT / "config.yaml"),
        "--profile",
        str(PROFILE),
        *args,
    ]


# ---------------------------------------------------------------------------------------------------------------
# The profile itself (no cluster needed)


def test_profile_dry_run_of_the_paper_preset_requests_gpus(tmp_path):
    """The profile's options parse, and in the paper preset training and evaluation carry the `gpu` resource
    (the plugin turns it into `sbatch --gpus=N`; a resource named `gpus` would not request any)."""
    proc = subprocess.run(
        snakemake_cmd(tmp_path, "-n", "--config", "scale=paper"), capture_output=True, text=True, cwd=ROOT, env=ENV
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-3000:]
    blocks = out.split("\n\n")
    for rule, gpus in (("train", 8), ("evaluate", 1)):
        resources = [b for b in blocks if f"rule {rule}:" in b]
        assert resources and all(f"gpu={gpus}" in b for b in resources), f"rule {rule}: no gpu={gpus} resource"


# The sbatch command of each job, built by the pinned plugin's own function from the workflow's jobs (resources
# with the profile's default-resources, threads uncapped as under `--executor slurm`): what `run_job` submits, but
# for the account and partition (looked up on a cluster; empty here) and the job name (a per-run uuid).
SUBMIT_STRINGS = """
import json, sys
from pathlib import Path

import yaml
from snakemake.api import SnakemakeApi
from snakemake.settings.types import ConfigSettings, DAGSettings, OutputSettings, ResourceSettings, StorageSettings
from snakemake_executor_plugin_slurm import ExecutorSettings
from snakemake_executor_plugin_slurm.submit_string import get_submit_command
from snakemake_executor_plugin_slurm.utils import get_job_wildcards, set_gres_string

root, profile, workdir = map(Path, sys.argv[1:4])
defaults = yaml.safe_load(profile.read_text())["default-resources"]
calls = {}
with SnakemakeApi(OutputSettings()) as api:
    workflow_api = api.workflow(
        resource_settings=ResourceSettings(nodes=50, default_resources=defaults),
        config_settings=ConfigSettings(configfiles=[root / "config.yaml"], config=json.loads(sys.argv[4])),
        storage_settings=StorageSettings(), snakefile=root / "Snakefile", workdir=workdir)
    workflow_api.dag(dag_settings=DAGSettings())
    workflow = workflow_api._workflow
    workflow._prepare_dag(forceall=False, ignore_incomplete=True, lock_warn_only=True)
    workflow._build_dag()
    for job in workflow.dag.jobs:
        wildcards = get_job_wildcards(job)
        params = {"run_uuid": "RUN", "slurm_logfile": "LOG", "account": "", "partition": "", "workdir": "WORKDIR",
                  "comment_str": f"rule_{job.name}" + (f"_wildcards_{wildcards}" if wildcards else "")}
        call = get_submit_command(job, params, settings=ExecutorSettings()) + set_gres_string(job)
        calls.setdefault(job.name, []).append(call)
print("CALLS " + json.dumps(calls))
"""


# what every sbatch call of the plugin starts with (its job name, log and comment normalised by sbatch_calls)
SBATCH_HEAD = ["sbatch", "--parsable", "--job-name", "RUN", "--output", "LOG", "--export=ALL", "--comment"]


def sbatch_calls(workdir: Path, config: dict) -> dict[str, list[list[str]]]:
    """Rule -> the sbatch argument lists of its jobs (SUBMIT_STRINGS, in a fresh interpreter)."""
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            SUBMIT_STRINGS,
            str(ROOT),
            str(PROFILE / "config.yaml"),
            str(workdir),
            json.dumps(config),
        ],
        capture_output=True,
        text=True,
        env=ENV,
        cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    line = next(line for line in proc.stdout.splitlines() if line.startswith("CALLS "))
    return {rule: [shlex.split(call) for call in calls] for rule, calls in json.loads(line[6:]).items()}


def test_sbatch_arguments_of_the_paper_preset(tmp_path):
    """What snakemake-executor-plugin-slurm (the pinned version) submits for the paper preset's jobs: training and
    each evaluation are one task on one node holding the job's CPUs (threads) and its GPUs, not one task per
    GPU; the CPU jobs are one task with their threads."""
    from importlib import metadata

    assert metadata.version("snakemake-executor-plugin-slurm") == "2.6.1"  # docs/slurm.md describes this one
    calls = sbatch_calls(tmp_path, {"scale": "paper"})
    train = sorted(calls["train"])
    assert train == [
        SBATCH_HEAD
        + [
            f"rule_train_wildcards_{variant}_42",
            "-t",
            "2880",
            "--mem",
            "256000",
            "--nodes=1",
            "--cpus-per-task=48",
            "-D",
            "WORKDIR",
            "--gpus=8",
        ]
        for variant in ("baseline", "multi_attempt")
    ]
    evaluate = calls["evaluate"]
    assert len(evaluate) == 15  # model x benchmark; k = 1..7 in each
    for call in evaluate:
        assert call[:8] == SBATCH_HEAD and call[8].startswith("rule_evaluate_wildcards_")
        assert call[9:] == [
            "-t",
            "720",
            "--mem",
            "64000",
            "--nodes=1",
            "--cpus-per-task=20",
            "-D",
            "WORKDIR",
            "--gpus=1",
        ]
    assert calls["prepare_math"] == [
        SBATCH_HEAD
        + ["rule_prepare_math", "-t", "30", "--mem", "4000", "--ntasks=1", "--cpus-per-task=1", "-D", "WORKDIR"]
    ]
    assert not any("--ntasks-per-gpu" in " ".join(c) for cs in calls.values() for c in cs)


TWO_NODES = {"scale": "paper", "train": {"nodes": 2}}
FIRST_NODE = 'scontrol show hostnames "$(squeue -h -j "$SLURM_JOB_ID" -o %N)" | head -n1'


def test_dry_run_of_two_node_training_prints_the_srun_torchrun_launch_line(tmp_path):
    """train.nodes: 2 starts one torchrun per node with srun (the step takes the job's CPUs per node), the two
    meeting at a c10d rendezvous on the job's first node; 8 processes per node (train.gpus is per node)."""
    proc = subprocess.run(
        snakemake_cmd(tmp_path, "-n", "-p", "--config", "scale=paper", "train={nodes: 2}"),
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=ENV,
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-3000:]
    launch = (
        "srun --nodes 2 --ntasks-per-node 1 --cpus-per-task 48 torchrun --nnodes 2 --nproc_per_node 8"
        f' --rdzv_backend c10d --rdzv_endpoint "$({FIRST_NODE})":29500 --rdzv_id "$SLURM_JOB_ID" -m pipeline train '
    )
    commands = [line for line in out.splitlines() if " train --config " in line]
    assert len(commands) == 2 and all(launch in line for line in commands), "\n".join(commands) or out[-3000:]


def test_sbatch_arguments_of_two_node_training(tmp_path):
    """Two nodes, one task each with the job's CPUs and 8 GPUs per node (--gres is per node; --gpus would be the
    job's total); `mpi` makes the job run the rule's command as it is, whose srun starts the tasks."""
    calls = sbatch_calls(tmp_path, TWO_NODES)
    assert sorted(calls["train"]) == [
        SBATCH_HEAD
        + [
            f"rule_train_wildcards_{variant}_42",
            "-t",
            "2880",
            "--mem",
            "256000",
            "--nodes=2",
            "--ntasks=2",
            "--cpus-per-task=48",
            "-D",
            "WORKDIR",
            "--gres=gpu:8",
        ]
        for variant in ("baseline", "multi_attempt")
    ]
    assert all(call[-1] == "--gpus=1" and "--nodes=1" in call for call in calls["evaluate"])  # unchanged


# ---------------------------------------------------------------------------------------------------------------
# A single-node cluster on localhost


def _run(cmd, timeout=60, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, **kw)


def _munge_works() -> bool:
    if not (shutil.which("munge") and shutil.which("unmunge")):
        return False
    try:
        cred = _run(["munge", "-n"], timeout=10)
        return cred.returncode == 0 and _run(["unmunge"], input=cred.stdout, timeout=10).returncode == 0
    except subprocess.TimeoutExpired:
        return False


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _install_packages():
    missing = [t for t in TOOLS if shutil.which(t) is None]
    if not missing:
        return
    if shutil.which("apt-get") is None:
        pytest.skip(f"SLURM/munge tools missing ({', '.join(missing)}) and no apt-get to install {PACKAGES}")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for cmd in (
        ["apt-get", "update", "-qq"],
        ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *PACKAGES],
    ):
        proc = _run(cmd, timeout=900, env=env)
        assert proc.returncode == 0, f"{' '.join(cmd)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    still = [t for t in TOOLS if shutil.which(t) is None]
    assert not still, f"still missing after installing {PACKAGES}: {still}"


def _node_hardware() -> str:
    """`slurmd -C` without NodeName and UpTime: CPUs, boards/sockets/cores/threads and RealMemory of this host."""
    out = _run(["slurmd", "-C"]).stdout
    line = next(line for line in out.splitlines() if line.startswith("NodeName="))
    return " ".join(field for field in line.split() if not field.startswith("NodeName="))


def _write_conf(folder: Path, ctld_port: int, slurmd_port: int, nodes: str = "") -> Path:
    """slurm.conf of one node, localhost; or of the nodes given as NodeName lines (with their own Port and
    NodeHostname: two slurmd on one host), whose spool, pid and log files are kept apart by node name (%n)."""
    for sub in ("state", "spool"):
        (folder / sub).mkdir()
    per_node = "-%n" if nodes else ""
    nodes = nodes or f"NodeName=localhost {_node_hardware()} State=UNKNOWN\n"
    names = ",".join(line.split()[0].removeprefix("NodeName=") for line in nodes.splitlines())
    conf = folder / "slurm.conf"
    conf.write_text(f"""\
ClusterName=pytest
SlurmctldHost=localhost
SlurmctldPort={ctld_port}
SlurmdPort={slurmd_port}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
SlurmctldParameters=enable_configless
StateSaveLocation={folder}/state
SlurmdSpoolDir={folder}/spool{per_node}
SlurmctldPidFile={folder}/slurmctld.pid
SlurmdPidFile={folder}/slurmd{per_node}.pid
SlurmctldLogFile={folder}/log/slurmctld.log
SlurmdLogFile={folder}/log/slurmd{per_node}.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
MpiDefault=none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
ReturnToService=2
MinJobAge=300
{nodes}PartitionName=debug Nodes={names} Default=YES MaxTime=INFINITE State=UP
""")
    return conf


def _logs(folder: Path) -> str:
    return "\n".join(
        f"--- {p.name}:\n{p.read_text(errors='replace')[-2500:]}"
        for p in sorted((folder / "log").glob("*"))
        if p.is_file()
    )


def _stop(proc: subprocess.Popen):
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def _daemon(cmd: list[str], folder: Path, **kw) -> subprocess.Popen:
    """Starts a daemon in the foreground (its own child, so the fixture stops exactly it); output to log/."""
    with open(folder / "log" / f"{Path(cmd[0]).name}.out", "w") as out:
        return subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, **kw)


def _wait(ready, daemons: list[subprocess.Popen], folder: Path, what: str, timeout: float = 60):
    deadline = time.monotonic() + timeout
    while not ready():
        exited = [p.args[0] for p in daemons if p.poll() is not None]
        assert not exited, f"{', '.join(exited)} exited:\n{_logs(folder)}"
        assert time.monotonic() < deadline, f"{what} after {timeout} s:\n{_logs(folder)}"
        time.sleep(0.5)


def _start_munge(folder: Path, started: list[subprocess.Popen]):
    """munged, unless one already answers (it then joins `started`)."""
    if _munge_works():
        return
    if not MUNGE_KEY.exists():
        _run(["mungekey", "--create", "--keyfile", str(MUNGE_KEY)], check=True)
        shutil.chown(MUNGE_KEY, "munge", "munge")
        MUNGE_KEY.chmod(0o600)
    MUNGE_RUN.mkdir(exist_ok=True)
    shutil.chown(MUNGE_RUN, "munge", "munge")
    started.append(_daemon(["munged", "--foreground"], folder, user="munge", group="munge"))
    _wait(_munge_works, started, folder, "munged does not answer", timeout=20)


def _skip_unless_cluster_possible():
    if not sys.platform.startswith("linux") or os.geteuid() != 0:
        pytest.skip("starts SLURM daemons and installs packages: needs root on Linux")
    if existing := [str(p) for p in SYSTEM_CONFIGS if p.exists() or p.is_symlink()]:
        pytest.skip(
            f"this machine already has a SLURM configuration ({', '.join(existing)}); "
            "the test cluster's job steps would use it"
        )
    _install_packages()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """A running single-node cluster; yields the environment for its client commands (SLURM_CONF set)."""
    _skip_unless_cluster_possible()
    folder = tmp_path_factory.mktemp("slurm")
    (folder / "log").mkdir()
    started: list[subprocess.Popen] = []
    made_run_dirs = [d for d in (RUN_SLURM, MUNGE_RUN) if not d.exists()]
    env = {**ENV, "SLURM_CONF": str(folder / "slurm.conf")}
    try:
        _start_munge(folder, started)
        ctld_port = _free_port()
        conf = _write_conf(folder, ctld_port, _free_port())
        started.append(_daemon(["slurmctld", "-D", "-f", str(conf)], folder, env=env))
        _wait(
            lambda: _run(["scontrol", "ping"], env=env, timeout=10).returncode == 0,
            started,
            folder,
            "slurmctld does not answer `scontrol ping`",
        )
        # configless: slurmd fetches slurm.conf from slurmctld and links its copy at /run/slurm/conf
        started.append(
            _daemon(
                ["slurmd", "-D", "-N", "localhost", "--conf-server", f"localhost:{ctld_port}"],
                folder,
                env={k: v for k, v in env.items() if k != "SLURM_CONF"},
            )
        )
        _wait(
            lambda: (
                _run(["sinfo", "-h", "-N", "-o", "%N %t"], env=env, timeout=10).stdout.strip() == "localhost idle"
                and Path("/run/slurm/conf/slurm.conf").exists()
            ),
            started,
            folder,
            "the node does not become idle",
        )
        yield env
    finally:
        if started and started[-1].args[0] == "slurmd":
            _run(["scancel", "--user", "root"], env=env, timeout=30)
        for proc in reversed(started):  # slurmd, slurmctld, then munged
            _stop(proc)
        if Path("/run/slurm/conf").is_symlink():  # slurmd's link into our spool folder
            Path("/run/slurm/conf").unlink()
        for made in made_run_dirs:
            shutil.rmtree(made, ignore_errors=True)


ALL_REDUCE = """
import os, torch, torch.distributed as dist
dist.init_process_group("gloo")
t = torch.tensor([dist.get_rank() + 1.0])
dist.all_reduce(t)
node = os.environ["SLURMD_NODENAME"]
print("RANK", dist.get_rank(), dist.get_world_size(), os.environ["LOCAL_WORLD_SIZE"], node, t.item(), flush=True)
dist.destroy_process_group()
"""


@pytest.mark.slurm
@pytest.mark.slow
def test_two_node_launch_line_on_a_two_node_cluster(tmp_path):
    """The launch line of train.nodes: 2 (from the dry run), with one CPU process per node running a gloo
    all-reduce instead of the trainer, on two nodes that are two slurmd on this host: the host's name and a
    second name at localhost (slurm.conf's NodeName=localhost stands for the host's name, and NodeHostnames must
    differ). The first node, the rendezvous host, is the host's own name, so it must resolve. The job runs the
    line as the plugin's job step runs an `mpi` rule: without the job's SLURM_* variables but its id. Runs
    before the module's `cluster` starts (it skips while another cluster's configuration is linked)."""
    _skip_unless_cluster_possible()
    host = socket.gethostname()
    try:
        socket.gethostbyname(host)
    except OSError:
        pytest.skip(f"this host's name {host!r} does not resolve")
    proc = subprocess.run(
        snakemake_cmd(tmp_path / "dry", "-n", "-p", "--config", "train={nodes: 2, gpus: 1}"),
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=ENV,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    line = next(line for line in (proc.stdout + proc.stderr).splitlines() if "srun --nodes 2 " in line)
    line = line[line.index("srun ") :]
    script = tmp_path / "all_reduce.py"
    script.write_text(ALL_REDUCE)
    launch = re.sub(r"--cpus-per-task \d+", "--cpus-per-task 1", line.split(" -m pipeline ")[0]) + f" {script}"
    job = tmp_path / "job.sh"
    job.write_text(
        "#!/bin/bash\nfor v in $(compgen -e | grep '^SLURM_' | grep -vx SLURM_JOB_ID); do unset $v; done\n"
        + launch
        + "\n"
    )
    folder = tmp_path / "slurm"
    (folder / "log").mkdir(parents=True)
    nodes = {host: host, f"{host}-b": "localhost"}
    for name in nodes:
        (folder / f"spool-{name}").mkdir()
    ctld_port = _free_port()
    conf = _write_conf(
        folder,
        ctld_port,
        _free_port(),
        "".join(
            f"NodeName={name} NodeHostname={hostname} Port={_free_port()} {_node_hardware()} State=UNKNOWN\n"
            for name, hostname in nodes.items()
        ),
    )
    env = {**ENV, "SLURM_CONF": str(conf)}
    started: list[subprocess.Popen] = []
    made_run_dirs = [d for d in (RUN_SLURM, MUNGE_RUN) if not d.exists()]
    try:
        _start_munge(folder, started)
        started.append(_daemon(["slurmctld", "-D", "-f", str(conf)], folder, env=env))
        _wait(lambda: _run(["scontrol", "ping"], env=env).returncode == 0, started, folder, "no slurmctld")
        for name in nodes:
            with open(folder / "log" / f"slurmd-{name}.out", "w") as out:
                started.append(
                    subprocess.Popen(
                        ["slurmd", "-D", "-N", name, "--conf-server", f"localhost:{ctld_port}"],
                        stdout=out,
                        stderr=subprocess.STDOUT,
                        env=ENV,
                    )
                )
        idle = "".join(f"{name} idle\n" for name in sorted(nodes))
        _wait(lambda: _run(["sinfo", "-h", "-N", "-o", "%N %t"], env=env).stdout == idle, started, folder, "not idle")
        log = tmp_path / "job.log"
        submit = ["sbatch", "--parsable", "--nodes=2", "--ntasks=2", "--cpus-per-task=1", "--mem", "500"]
        _run([*submit, "--output", str(log), str(job)], env=env, check=True)
        _wait(lambda: _run(["squeue", "-h"], env=env).stdout.strip() == "", started, folder, "job still queued", 120)
        # rank, world size, ranks on its node, node, sum of (rank + 1) over both: one group across the two nodes
        ranks = [line.split()[1:] for line in log.read_text().splitlines() if line.startswith("RANK ")]
        got = sorted(r[:3] + r[4:] for r in ranks), sorted(r[3] for r in ranks)
        assert got == ([["0", "2", "1", "3.0"], ["1", "2", "1", "3.0"]], sorted(nodes)), log.read_text()[-3000:]
    finally:
        _run(["scancel", "--user", "root"], env=env, timeout=30)
        for proc in reversed(started):
            _stop(proc)
        if Path("/run/slurm/conf").is_symlink():
            Path("/run/slurm/conf").unlink()
        for made in made_run_dirs:
            shutil.rmtree(made, ignore_errors=True)


def _snakemake_through_slurm(env: dict, workdir: Path, *args: str, timeout: int = 240) -> tuple[int, str]:
    """Runs Snakemake with the profile. On a timeout kills the whole process group: a Snakemake waiting for a job
    status that never comes (e.g. sacct without accounting) ignores SIGTERM."""
    cmd = snakemake_cmd(
        workdir, "--slurm-init-seconds-before-status-checks", "2", "--slurm-keep-successful-logs", *args
    )
    proc = subprocess.Popen(
        cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True
    )
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
        queue = _run(["squeue", "--states=all"], env=env).stdout
        raise AssertionError(f"{' '.join(cmd)} ran past {timeout} s:\n{out[-4000:]}\nsqueue:\n{queue}") from None
    return proc.returncode, out


def _slurm_jobids(out: str) -> list[str]:
    return [
        line.split("with SLURM jobid ")[1].split()[0]
        for line in out.splitlines()
        if "has been submitted with SLURM jobid" in line
    ]


@pytest.mark.slurm
@pytest.mark.slow
def test_data_rules_through_slurm(cluster, tmp_path):
    rc, out = _snakemake_through_slurm(cluster, tmp_path, "data", "--config", SMALL_DATA)
    assert rc == 0, out[-4000:]
    data = tmp_path / "results" / "tiny" / "data"
    assert len((data / "synthetic_train.jsonl").read_text().splitlines()) == 300
    assert len((data / "synthetic_heldout.jsonl").read_text().splitlines()) == 50
    assert (tmp_path / "results" / "tiny" / "logs" / "prepare_synthetic.log").is_file()
    # It ran as a SLURM batch job, inside which Snakemake's slurm-jobstep executor ran the rule with srun.
    (jobid,) = _slurm_jobids(out)
    slurm_log = tmp_path / ".snakemake" / "slurm_logs" / "rule_prepare_synthetic" / f"{jobid}.log"
    log = slurm_log.read_text()
    assert "--executor slurm-jobstep" in log and "rule prepare_synthetic:" in log, log[-3000:]
    assert _run(["squeue", "-h"], env=cluster).stdout.strip() == ""


@pytest.mark.slurm
@pytest.mark.slow
def test_a_failing_job_is_retried_then_reported(cluster, tmp_path):
    """A rule whose command fails inside its SLURM job is resubmitted (`retries`), then Snakemake stops with an
    error instead of waiting. `--retries 1` instead of the profile's 2: the plugin lengthens its polling interval
    by 10 s after every status check that finds no finished job (failures do not count), so each further attempt
    costs 10 s more. The failure: a `python` first on PATH that exits 3 (the rules call `python -m pipeline`;
    Snakemake runs itself with its interpreter's absolute path); sbatch exports the submitting environment, so the
    job sees this PATH."""
    fake = tmp_path / "fake-bin"
    fake.mkdir()
    (fake / "python").write_text("#!/bin/sh\necho 'simulated failure' >&2\nexit 3\n")
    (fake / "python").chmod(0o755)
    env = {**cluster, "PATH": f"{fake}{os.pathsep}{cluster['PATH']}"}
    workdir = tmp_path / "work"
    rc, out = _snakemake_through_slurm(env, workdir, "--retries", "1", "data", "--config", SMALL_DATA)
    assert rc != 0, out[-4000:]
    assert len(_slurm_jobids(out)) == 2 and "SLURM status is: 'FAILED'" in out, out[-4000:]
    assert "simulated failure" in (workdir / "results" / "tiny" / "logs" / "prepare_synthetic.log").read_text()
    assert not (workdir / "results" / "tiny" / "data" / "synthetic_train.jsonl").exists()
    assert _run(["squeue", "-h"], env=cluster).stdout.strip() == ""


# Training that outlasts its job, whatever the machine's speed: 2-minute jobs that keep 3 minutes before their limit,
# so that after any step no further one fits and each job makes exactly one step: 3 steps take 3 jobs (the last
# step ends the run instead of stopping it). Checkpoints only at the end (save_every above steps), so any other
# checkpoint is one the time limit made. (A margin below the job's length would make the number of jobs depend on
# the machine's speed: 160 steps took 2 jobs here and 1 on a faster CI machine.)
LIMITED = {"train": {"runtime_h": 2 / 60, "sessions": 4, "stop_before_end_min": 3}}
LIMITED_TRAIN = {"steps": 3, "eval_every": 0, "save_every": 1000}


def _local_snakemake(workdir: Path, configfile: Path, *args: str, background: bool = False):
    cmd = [sys.executable, "-m", "snakemake", "--snakefile", str(ROOT / "Snakefile"), "--directory", str(workdir)]
    cmd += ["--configfile", str(configfile), "--cores", "1", *args]
    if background:
        return subprocess.Popen(cmd, cwd=ROOT, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    proc = subprocess.run(cmd, cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


@pytest.mark.slurm
@pytest.mark.slow
def test_training_stops_before_the_time_limit_and_the_retry_resumes_to_the_same_weights(cluster, tmp_path):
    """A training job with a 2-minute limit stops with a checkpoint at a step boundary before SLURM would kill it
    (exit code 75: SLURM says FAILED, not TIMEOUT); Snakemake resubmits it (the train rule's retries,
    resources.train.sessions), the new job resumes from that checkpoint, and the model equals an uninterrupted
    run's, made beside it without SLURM from the same data and base model."""
    from tests.conftest import smoke_config

    configfile = tmp_path / "config.yaml"
    configfile.write_text(smoke_config(**LIMITED_TRAIN) + yaml.safe_dump({"resources": LIMITED}))
    target = "results/tiny/models/multi_attempt_s0"
    limited, free = tmp_path / "limited", tmp_path / "free"
    _local_snakemake(limited, configfile, "base_model")  # data and base model, here
    shutil.copytree(limited, free, symlinks=True)
    uninterrupted = _local_snakemake(free, configfile, target, background=True)
    try:
        rc, out = _snakemake_through_slurm(cluster, limited, target, "--configfile", str(configfile), timeout=900)
    finally:
        free_out, _ = uninterrupted.communicate(timeout=900)
    assert uninterrupted.returncode == 0, free_out[-3000:]
    assert rc == 0, out[-4000:]
    jobs = _slurm_jobids(out)
    assert len(jobs) == 3 and out.count("SLURM status is: 'FAILED'") == 2 and "TIMEOUT" not in out, out[-4000:]
    run_log = (limited / "results" / "tiny" / "logs" / "train" / "multi_attempt_s0.log").read_text()
    assert "resumed from " in run_log and "(step 2)" in run_log, run_log[-3000:]  # the last job's log
    slurm_logs = "\n".join(p.read_text() for p in (limited / ".snakemake" / "slurm_logs").rglob("*.log"))
    assert "exit status 75" in slurm_logs or "exit code 75" in slurm_logs, slurm_logs[-3000:]
    a = load_file(str(limited / target / "model.safetensors"))
    b = load_file(str(free / target / "model.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
