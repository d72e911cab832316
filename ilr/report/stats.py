"""Every resampling statistic of the study, through scipy.stats: the evaluation stage's CI, the tables' CIs
and their paired tests.

- `per_question(records)`: question id -> mean correctness over its samples (the unit of every statistic).
- `bootstrap_ci(*samples)`: the 95% percentile-bootstrap interval of the mean over `samples` of each sample's
  mean, each sample resampled independently (`scipy.stats.bootstrap`, method 'percentile'). One sample: the
  CI of an accuracy (a benchmark, or a merged column's pooled questions); several: the Avg column's.
- `paired_test(pairs)`: two rows on the same questions (per column, the rows' aligned per-question
  vectors). Δ = mean over columns of mean(a - b). Its 95% CI: `bootstrap_ci` of the per-question
  differences (both rows resampled together: paired). Its two-sided p: a permutation test that flips the
  sign of each question's difference, i.e. swaps the two rows' answers to that question
  (`scipy.stats.permutation_test`, permutation_type 'samples'); with several columns each question's
  difference is weighted by 1 / (columns x its column's n), so that the permuted statistic is Δ's.
- `paired_t_test(a, b)`: the paired t-test over seeds (`scipy.stats.ttest_rel`), seed k against seed k.

`resamples` is `evaluation.bootstrap`; `seed` seeds numpy's default_rng, so every number is reproducible.
scipy is imported when a statistic is computed, not when a table module is (config checks stay light).
"""

from __future__ import annotations

import numpy as np


def per_question(records: list[dict]) -> dict[str, float]:
    """Question id -> mean correctness over its samples."""
    by_id: dict[str, list[float]] = {}
    for r in records:
        by_id.setdefault(str(r["id"]), []).append(float(bool(r["correct"])))
    return {k: sum(v) / len(v) for k, v in by_id.items()}


def bootstrap_ci(*samples, resamples: int, seed: int = 0, level: float = 0.95) -> tuple[float, float]:
    """Percentile-bootstrap interval of the mean over `samples` of each sample's mean (scipy.stats.bootstrap)."""
    from scipy import stats

    xs = [np.asarray(s, dtype=float) for s in samples]
    if not xs or any(len(x) == 0 for x in xs):
        return float("nan"), float("nan")
    varying = [x for x in xs if len(x) > 1]      # scipy resamples samples of two or more observations;
    fixed = sum(float(x[0]) for x in xs if len(x) == 1)   # a one-question sample resamples to itself
    if not varying:
        return fixed / len(xs), fixed / len(xs)

    def mean_of_means(*resampled, axis=-1):
        return (sum(x.mean(axis=axis) for x in resampled) + fixed) / len(xs)

    ci = stats.bootstrap(varying, mean_of_means, n_resamples=resamples, method="percentile", vectorized=True,
                         confidence_level=level, rng=np.random.default_rng(seed)).confidence_interval
    return float(ci.low), float(ci.high)


def sign_flip_p(y: np.ndarray, resamples: int, seed: int = 0) -> float:
    """Two-sided p of mean(y) against flipping the sign of each y_i (scipy.stats.permutation_test)."""
    from scipy import stats

    if len(y) < 2:
        return float("nan")
    return float(stats.permutation_test((y,), np.mean, permutation_type="samples", vectorized=True,
                                        n_resamples=resamples, alternative="two-sided",
                                        rng=np.random.default_rng(seed)).pvalue)


def paired_test(pairs: list[tuple[np.ndarray, np.ndarray]], resamples: int, seed: int = 0) -> dict:
    """{delta, lo, hi, p} of two rows over the same questions (see the module docstring)."""
    diffs = [np.asarray(a, dtype=float) - np.asarray(b, dtype=float) for a, b in pairs]
    delta = float(np.mean([d.mean() for d in diffs]))
    lo, hi = bootstrap_ci(*diffs, resamples=resamples, seed=seed)
    total = sum(len(d) for d in diffs)
    weighted = np.concatenate([d * (total / (len(diffs) * len(d))) for d in diffs]) if total else np.zeros(0)
    return {"delta": delta, "lo": lo, "hi": hi, "p": sign_flip_p(weighted, resamples, seed)}


def paired_t_test(a: list[float], b: list[float]) -> tuple[float, float]:
    """Paired t-test over seeds (per-seed values of two rows, seed k against seed k). (difference, p)."""
    from scipy import stats

    d = np.asarray(a, float) - np.asarray(b, float)
    if len(d) < 2:
        return float(d.mean()), float("nan")
    if np.allclose(d, d[0]):  # no spread over seeds: the t statistic is undefined (1 when every d is 0)
        return float(d.mean()), 1.0 if np.allclose(d, 0) else float("nan")
    return float(d.mean()), float(stats.ttest_rel(a, b).pvalue)
