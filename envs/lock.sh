#!/usr/bin/env bash
# Writes envs/<env>.linux-64.lock.txt: every package, direct and indirect, that pip installs for the pip section
# of envs/<env>.yaml on linux-64 with the env's Python (3.11), as resolved by `uv pip compile` with pip's rule for
# several indexes (the best version across them). These lock the pip level only: the conda level of each env is
# python=3.11 and pip from conda-forge, unlocked (no conda solver could run where these were made).
# Build an env exactly as locked: create it from envs/<env>.yaml, then
#   pip install --no-deps -r envs/<env>.linux-64.lock.txt      (plus --extra-index-url for the CPU envs' torch)
# Usage: envs/lock.sh [env ...]   (all envs by default; needs uv, PyPI, and PyTorch's CPU index or CPU_TORCH)
# CPU_TORCH replaces the CPU envs' `--extra-index-url https://download.pytorch.org/whl/cpu`, e.g. a folder with
# torch-2.13.0+cpu's wheel: CPU_TORCH="--find-links /opt/wheels" envs/lock.sh
set -euo pipefail
cd "$(dirname "$0")"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
envs=("$@")
[ ${#envs[@]} -gt 0 ] || envs=($(ls *.yaml | sed 's/\.yaml$//'))
for env in "${envs[@]}"; do
  sed -n '/^  - pip:$/,$ s/^      - //p' "$env.yaml" > "$tmp/$env.in"  # the pip section's entries
  index=()
  if grep -q -- '^--extra-index-url https://download.pytorch.org/whl/cpu$' "$tmp/$env.in" && [ -n "${CPU_TORCH:-}" ]; then
    sed -i '/^--extra-index-url/d' "$tmp/$env.in"
    read -r -a index <<< "$CPU_TORCH"
  fi
  source="PyPI"
  [ ${#index[@]} -eq 0 ] || source="PyPI; torch's CPU build from ${CPU_TORCH} (standing in for PyTorch's CPU index)"
  (cd "$tmp" && uv pip compile "$env.in" "${index[@]}" --python-version 3.11 --python-platform x86_64-manylinux_2_28 \
    --index-strategy unsafe-best-match --annotation-style line --custom-compile-command "envs/lock.sh $env" \
    --quiet -o "$env.txt")
  { echo "# The pip section of envs/$env.yaml (\"-r $env.in\" below), resolved for linux-64 (manylinux_2_28 x86_64),"
    echo "# Python 3.11, from $source. Not locked: the conda packages (python, pip)."
    cat "$tmp/$env.txt"; } > "$env.linux-64.lock.txt"
done
