"""Paired comparisons with a baseline over seeds, corrected for the number of comparisons.

A seed fixes the pattern order (and the initial weights where shapes and initialisation agree), so
a variant's run and the baseline's run with the same seed form a pair. For each compared row:
the mean of the per-seed differences (variant - baseline), its confidence interval from the t
distribution with n - 1 degrees of freedom, and the two-sided paired t-test's p-value; then Holm's
step-down correction over all compared rows.
"""
import math
import statistics

from scipy.stats import t as student_t

ALPHA = 0.05
TRAINS_BELOW = 0.10  # a run "trains" when its final test error is below this (chance is 90%)


def paired(x, base, confidence=0.95, lower=False):
    """Differences x[i] - base[i] (pairs in the same order): dict(n, diff, ci_low, ci_high, p). With
    fewer than two pairs there is no test: the interval and p are NaN. Identical differences give a
    zero-width interval, and p = 1 when they are all zero, else 0 (scipy would give NaN resp. 0).
    p is two-sided, or with `lower` one-sided for H1: x is lower than base (then identical
    differences give p = 0 only when they are negative)."""
    d = [a - b for a, b in zip(x, base, strict=True)]
    n = len(d)
    diff = statistics.fsum(d) / n if n else math.nan
    if n < 2:
        return dict(n=n, diff=diff, ci_low=math.nan, ci_high=math.nan, p=math.nan)
    se = statistics.stdev(d) / math.sqrt(n)
    if se == 0:
        return dict(n=n, diff=diff, ci_low=diff, ci_high=diff, p=0.0 if diff < 0 or (diff > 0 and not lower) else 1.0)
    half = student_t.ppf((1 + confidence) / 2, n - 1) * se
    p = student_t.cdf(diff / se, n - 1) if lower else 2 * student_t.sf(abs(diff) / se, n - 1)
    return dict(n=n, diff=diff, ci_low=diff - half, ci_high=diff + half, p=float(p))


def holm(pvalues, alpha=ALPHA):
    """Holm-Bonferroni over the given p-values (NaN: not compared, not counted): one dict(p_holm,
    threshold, reject) per p-value, in their order. The i-th smallest of m p-values is compared with
    alpha / (m - i), stopping at the first that fails; p_holm is the adjusted p-value
    (max over j <= i of (m - j) * p_(j), at most 1), so reject == (p_holm <= alpha)."""
    tested = sorted((p, i) for i, p in enumerate(pvalues) if not math.isnan(p))
    out = [dict(p_holm=math.nan, threshold=math.nan, reject=False) for _ in pvalues]
    m, adjusted, rejecting = len(tested), 0.0, True
    for rank, (p, i) in enumerate(tested):
        adjusted = max(adjusted, min(1.0, (m - rank) * p))
        rejecting = rejecting and p <= alpha / (m - rank)
        out[i] = dict(p_holm=adjusted, threshold=alpha / (m - rank), reject=rejecting)
    return out


def compare(values, baseline, alpha=ALPHA):
    """values: {row: {seed: value}}, one row being `baseline`. One dict per row, in order: n (pairs;
    the baseline's own seeds for its row), mean, std, min, max (over the row's seeds), and for every
    other row the paired comparison with the baseline over their common seeds, p_holm, threshold and a
    verdict: "lower" / "higher" where Holm rejects, "not separated" where it does not, "not tested"
    with fewer than two pairs. The number of comparisons Holm corrects for is the number of tested rows."""
    base = values[baseline]
    rows = []
    for name, by_seed in values.items():
        v = list(by_seed.values())
        row = dict(row=name, n=len(v), mean=statistics.fmean(v), std=statistics.stdev(v) if len(v) > 1 else math.nan,
                   min=min(v), max=max(v))
        if name != baseline:
            seeds = [s for s in by_seed if s in base]
            row.update(paired([by_seed[s] for s in seeds], [base[s] for s in seeds]))
        rows.append(row)
    corrected = holm([r.get("p", math.nan) for r in rows], alpha)
    for r, h in zip(rows, corrected):
        if r["row"] != baseline:
            r.update(h, verdict=("not tested" if math.isnan(r["p"]) else
                             ("lower" if r["diff"] < 0 else "higher") if h["reject"] else "not separated"))
    return rows
