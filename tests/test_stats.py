"""experiments/stats.py: Holm-Bonferroni on known p-values, the paired t interval and p against scipy."""
import math

import pytest
from scipy.stats import ttest_rel

from stats import compare, holm, paired


def test_holm_on_known_p_values():
    # sorted: 0.01 <= 0.05/4, 0.015 <= 0.05/3, then 0.03 > 0.05/2 stops, so 0.04 is not rejected either
    out = holm([0.04, 0.01, 0.03, 0.015])
    assert [o["reject"] for o in out] == [False, True, False, True]
    assert [o["threshold"] for o in out] == pytest.approx([0.05, 0.0125, 0.025, 0.05 / 3])
    # adjusted: 4 x 0.01, max(0.04, 3 x 0.015), max(0.045, 2 x 0.03), max(0.06, 0.04)
    assert [o["p_holm"] for o in out] == pytest.approx([0.06, 0.04, 0.06, 0.045])
    assert all(o["reject"] == (o["p_holm"] <= 0.05) for o in out)


def test_holm_skips_untested_rows_and_caps_at_one():
    out = holm([math.nan, 0.5, 0.001])
    assert math.isnan(out[0]["p_holm"]) and not out[0]["reject"]  # not counted: m = 2
    assert out[2]["p_holm"] == pytest.approx(0.002) and out[2]["reject"]
    assert out[1]["p_holm"] == 0.5 and not out[1]["reject"]
    assert holm([0.6, 0.7])[0]["p_holm"] == 1.0


def test_paired_interval_and_p_match_scipy():
    x = [0.0101, 0.0111, 0.0086, 0.0098, 0.0120]
    base = [0.0093, 0.0102, 0.0090, 0.0089, 0.0105]
    r = paired(x, base)
    scipy = ttest_rel(x, base)
    low, high = scipy.confidence_interval(0.95)
    assert r["n"] == 5
    assert r["diff"] == pytest.approx(sum(a - b for a, b in zip(x, base)) / 5, rel=1e-12)
    assert (r["ci_low"], r["ci_high"]) == pytest.approx((low, high), rel=1e-9)
    assert r["p"] == pytest.approx(scipy.pvalue, rel=1e-9)


def test_paired_degenerate_cases():
    one = paired([0.01], [0.02])
    assert one["n"] == 1 and math.isnan(one["p"]) and math.isnan(one["ci_low"])
    assert paired([0.01, 0.02], [0.01, 0.02])["p"] == 1.0  # identical runs: no evidence
    shifted = paired([2.0, 3.0], [1.0, 2.0])
    assert shifted["p"] == 0.0 and shifted["ci_low"] == shifted["ci_high"] == 1.0


def test_compare_pairs_by_seed_and_corrects_over_tested_rows():
    values = {"base": {0: 1.0, 1: 2.0, 2: 3.0},
              "worse": {2: 13.1, 0: 11.0, 1: 12.2},  # order of seeds does not matter
              "same": {0: 1.1, 1: 1.9, 2: 3.05},
              "one": {0: 5.0}}
    rows = {r["row"]: r for r in compare(values, "base")}
    assert "p" not in rows["base"] and rows["base"]["n"] == 3
    assert rows["worse"]["diff"] == pytest.approx(10.1)
    assert rows["worse"]["p"] == pytest.approx(ttest_rel([11.0, 12.2, 13.1], [1.0, 2.0, 3.0]).pvalue)
    assert rows["worse"]["threshold"] == pytest.approx(0.025)  # two tested rows; "one" is not counted
    assert rows["worse"]["verdict"] == "higher"
    assert rows["same"]["verdict"] == "not separated"
    assert rows["one"]["verdict"] == "not tested" and rows["one"]["n"] == 1


def test_one_sided_paired_p_matches_scipy():
    x = [0.0101, 0.0091, 0.0086, 0.0098, 0.0100]
    base = [0.0093, 0.0102, 0.0090, 0.0109, 0.0105]
    assert paired(x, base, lower=True)["p"] == pytest.approx(ttest_rel(x, base, alternative="less").pvalue, rel=1e-9)
    assert paired(base, x, lower=True)["p"] == pytest.approx(ttest_rel(base, x, alternative="less").pvalue, rel=1e-9)
    assert paired([1, 2], [2, 3], lower=True)["p"] == 0.0 and paired([3, 4], [2, 3], lower=True)["p"] == 1.0
