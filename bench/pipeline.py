"""The default experiment end to end: `snakemake --cores all` of the default config, from scratch, timed.

Targets (issue 5): wall time <= 15 min on 2 cores (goal 10), peak memory <= 4 GiB. The run happens in a
throwaway copy of the working tree (tracked files and untracked ones git does not ignore), so the user's
results/ and reports/ are neither reused nor overwritten. Peak memory is the largest sum, over the snakemake
process tree, of each process's PSS (RSS where the system has no PSS), sampled every second: PSS splits the
pages processes share (every rule's interpreter maps the same torch libraries), so the sum is what the tree
really holds, where summed RSS would count those libraries once per process.

Snakemake's own output goes to stderr. Run: `python bench/pipeline.py`. The last line printed is one JSON object.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]
SUMMARY = Path("reports") / "summary.json"  # the default config's report_dir
VARIANTS = ("multi_attempt", "baseline")


def copy_checkout(dst: Path) -> None:
    """The working tree as git sees it, without ignored outputs (results/, reports/, .snakemake/, .venv/)."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    for rel in filter(None, listed.split("\0")):
        if (ROOT / rel).is_file():  # a tracked file deleted in the working tree is listed too
            (dst / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / rel, dst / rel)


def memory_kind() -> str:
    """The psutil field to sum: PSS where the system reports it (Linux), else RSS."""
    return "pss" if hasattr(psutil.Process().memory_full_info(), "pss") else "rss"


def tree_memory(root: psutil.Process, kind: str) -> int:
    """Bytes (PSS or RSS, per kind) summed over root and its descendants alive now."""
    try:
        procs = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:  # root has exited
        return 0
    total = 0
    for proc in procs:
        try:
            total += getattr(proc.memory_full_info(), kind)
        except psutil.NoSuchProcess:  # ended since listed
            pass
    return total


def run_snakemake(workdir: Path, kind: str) -> tuple[int, float, int]:
    """(exit code, wall seconds, peak bytes) of `snakemake --cores all` in workdir."""
    # Rules call `python -m pipeline`: this environment's interpreter must come first on PATH.
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "snakemake", "--cores", "all"],
        cwd=workdir,
        env=env,
        stdout=sys.stderr,
        stderr=subprocess.STDOUT,
    )
    root, peak = psutil.Process(proc.pid), 0
    while True:
        peak = max(peak, tree_memory(root, kind))
        try:
            code = proc.wait(timeout=1)
            break
        except subprocess.TimeoutExpired:
            pass
    return code, time.perf_counter() - t0, peak


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="bench-pipeline-") as tmp:
        workdir = Path(tmp)
        copy_checkout(workdir)
        kind = memory_kind()
        code, wall_s, peak = run_snakemake(workdir, kind)
        if code != 0:
            print(f"bench/pipeline.py: snakemake exited with {code} (its output is above, on stderr)", file=sys.stderr)
            return 1
        summary = json.loads((workdir / SUMMARY).read_text())
    figures = {"wall_s": round(wall_s, 1), "peak_mem_gib": round(peak / 2**30, 3)}
    print(
        f"default pipeline from scratch (snakemake --cores all, {os.cpu_count()} CPUs): {wall_s:.1f} s wall, "
        f"peak memory {peak / 2**30:.2f} GiB (summed {kind.upper()} of the process tree, sampled every 1 s)"
    )
    print(f"{'variant':<16}{'acc@1':>8}{'acc@2':>8}{'gain':>8}")
    for variant in VARIANTS:
        v = summary["variants"][variant]
        acc, gain = v["accuracy_at_k"], v["gain_k1_to_k2"]["gain"]
        print(f"{variant:<16}{acc['1']:>8.3f}{acc['2']:>8.3f}{gain:>+8.3f}")
        figures |= {f"{variant}_acc_k1": acc["1"], f"{variant}_acc_k2": acc["2"], f"{variant}_gain_k1_to_k2": gain}
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
