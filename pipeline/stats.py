"""Percentile-bootstrap intervals over questions: of a mean, of a macro average over benchmarks (stratified), of a
paired gain, and the resampled column sums that `metrics.retry_intervals` turns into ratios. The paper gives no
error bars (spec §9); every interval here is deterministic for its seed (a numpy Generator).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

# Keep each bootstrap block under about this many resampled entries (8 bytes each) to bound memory.
BLOCK_ELEMENTS = 4_000_000


def as_vector(values: Sequence[float], name: str = "values") -> np.ndarray:
    v = np.asarray(values, dtype=np.float64)
    if v.ndim != 1 or v.size == 0:
        raise ValueError(f"{name} must be a non-empty 1-D sequence, got shape {v.shape}")
    if not np.all(np.isfinite(v)):
        raise ValueError(f"{name} contains NaN or infinite values")
    return v


def check_boot(n_boot: int, alpha: float) -> None:
    if not isinstance(n_boot, int) or isinstance(n_boot, bool) or n_boot < 1:
        raise ValueError(f"n_boot must be an int >= 1, got {n_boot!r}")
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must lie in (0, 1), got {alpha!r}")


def boot_means(v: np.ndarray, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """n_boot bootstrap means of v, drawn in blocks of rows (vectorised, bounded memory).

    Deviations from v[0] are averaged and v[0] added back, so a constant vector gives exactly its value.
    """
    n = v.size
    dev = v - v[0]
    out = np.empty(n_boot, dtype=np.float64)
    rows = max(1, BLOCK_ELEMENTS // n)
    for start in range(0, n_boot, rows):
        stop = min(n_boot, start + rows)
        idx = rng.integers(0, n, size=(stop - start, n))
        out[start:stop] = dev[idx].mean(axis=1)
    return out + v[0]


def interval(stats: np.ndarray, alpha: float) -> tuple[float, float]:
    lo, hi = np.quantile(stats, [alpha / 2, 1 - alpha / 2])
    return float(lo), float(hi)


def bootstrap_ci(
    values: Sequence[float], n_boot: int = 1000, alpha: float = 0.05, seed: int = 0
) -> tuple[float, float]:
    """Percentile-bootstrap (1 - alpha) CI of the mean: the paper gives no error bars (spec §9), we do.

    Deterministic for a given seed (numpy Generator); 1000 x 5000 resamples take well under a second.

    Args:
        values: per-question scores (0/1 solved indicators, or floats).
        n_boot: number of resamples; alpha: two-sided level; seed: RNG seed.
    Returns:
        (low, high) as floats; (c, c) exactly for a constant vector.
    Example:
        >>> bootstrap_ci([1, 1, 1])
        (1.0, 1.0)
    """
    check_boot(n_boot, alpha)
    v = as_vector(values)
    return interval(boot_means(v, n_boot, np.random.default_rng(seed)), alpha)


def macro_average(per_benchmark: Mapping[str, float]) -> float:
    """Plain (unweighted) mean of per-benchmark accuracies: the paper's 'average' over its 5 benchmarks.

    Example:
        >>> macro_average({"a": 0.5, "b": 1.0})
        0.75
    """
    if not per_benchmark:
        raise ValueError("per_benchmark is empty: nothing to average")
    vals = [float(x) for x in per_benchmark.values()]
    if not all(np.isfinite(vals)):
        raise ValueError(f"per_benchmark contains NaN or infinite values: {dict(per_benchmark)}")
    return sum(vals) / len(vals)


def macro_ci(
    per_benchmark_values: Mapping[str, Sequence[float]], n_boot: int = 1000, alpha: float = 0.05, seed: int = 0
) -> tuple[float, float]:
    """Bootstrap CI of the macro average, resampling questions within each benchmark independently (stratified).

    Stratifying keeps each benchmark's size fixed, as in the real evaluation, so small benchmarks (AIME24: 30
    questions) carry their own, larger, uncertainty into the average with weight 1/B.

    Args:
        per_benchmark_values: {benchmark: per-question 0/1 (or float) scores}.
    Returns:
        (low, high). Benchmarks are resampled in sorted-name order, so the result ignores dict order.
    """
    check_boot(n_boot, alpha)
    if not per_benchmark_values:
        raise ValueError("per_benchmark_values is empty: nothing to average")
    rng = np.random.default_rng(seed)
    names = sorted(per_benchmark_values)
    means = np.stack([boot_means(as_vector(per_benchmark_values[b], f"benchmark {b!r}"), n_boot, rng) for b in names])
    return interval(means.mean(axis=0), alpha)


def gain_ci(
    values_a: Sequence[float], values_b: Sequence[float], n_boot: int = 1000, alpha: float = 0.05, seed: int = 0
) -> tuple[float, float]:
    """Paired bootstrap CI of mean(values_b) - mean(values_a): the gain from run a to run b on the same questions.

    Question indices are resampled jointly, so the per-question correlation between the runs (most questions are
    solved or failed at every k) narrows the interval compared with two independent CIs.

    Args:
        values_a, values_b: aligned per-question scores, e.g. `metrics.paired(traces_k1, traces_k2)`.
    Returns:
        (low, high); (0.0, 0.0) for identical runs.
    Example:
        >>> gain_ci([0, 0, 1], [1, 1, 1])  # per-question gains (1, 1, 0): resampled means lie in [0, 1]
        (0.0, 1.0)
    """
    a = as_vector(values_a, "values_a")
    b = as_vector(values_b, "values_b")
    if a.shape != b.shape:
        raise ValueError(f"values_a and values_b must be aligned (same length), got {a.size} and {b.size}")
    return bootstrap_ci(b - a, n_boot=n_boot, alpha=alpha, seed=seed)


def boot_sums(table: np.ndarray, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """n_boot bootstrap column sums of table [row, column]: rows redrawn with replacement, in blocks (bounded
    memory, as `boot_means`)."""
    n, width = table.shape
    out = np.empty((n_boot, width), dtype=np.float64)
    rows = max(1, BLOCK_ELEMENTS // (n * width))
    for start in range(0, n_boot, rows):
        stop = min(n_boot, start + rows)
        idx = rng.integers(0, n, size=(stop - start, n))
        out[start:stop] = table[idx].sum(axis=1)
    return out
