"""The rejection of Fig. 10 (repro/rejection.py) on hand-made scores whose answer is known, and the
figures and table of Figs. 10-12 (experiments/cost_figures.py)."""
import numpy as np
import pandas as pd
import pytest
import torch

from repro import paper
from repro.rejection import rejection_to_reach, top_two_gap

import cost_figures

INF = float("inf")


def decided(gaps, wrong, classes=10):
    """Scores and labels for patterns of the given top-two gaps: each decided for class 0 by that gap
    over class 1, its label 1 where wrong (else 0)."""
    scores = torch.zeros(len(gaps), classes, dtype=torch.float64)
    scores[:, 0] = torch.tensor(gaps, dtype=torch.float64)
    return scores, torch.tensor(wrong, dtype=torch.int64)


def test_top_two_gap():
    s = torch.tensor([[1.0, 5.0, 2.0], [3.0, 3.0, 0.0], [-2.0, -INF, -INF], [-INF, -INF, -INF]])
    assert top_two_gap(s).tolist() == [3.0, 0.0, INF, 0.0]  # a lone finite class: +inf; all -inf: no preference
    assert top_two_gap(s.numpy()).tolist() == [3.0, 0.0, INF, 0.0]


def test_no_rejection_when_the_raw_error_is_already_low_enough():
    assert rejection_to_reach(*decided([1, 2, 3, 4], [0, 0, 0, 0]), target=0.0) == 0
    assert rejection_to_reach(*decided([1, 2, 3, 4], [0, 1, 0, 0]), target=0.25) == 0


def test_patterns_are_rejected_in_order_of_increasing_gap():
    # the wrong pattern has the third smallest gap: rejecting it takes the two below with it
    assert rejection_to_reach(*decided([4, 1, 3, 2, 5], [0, 0, 1, 0, 0]), target=0.0) == 3 / 5
    # 1 wrong in 10 at the fourth smallest gap: rejecting the right ones below it only raises its
    # share (1/9, 1/8, 1/7), so below 10% it goes with them, 4 of 10
    gaps, wrong = list(range(10)), [0] * 10
    wrong[3] = 1
    assert rejection_to_reach(*decided(gaps, wrong), target=0.1) == 0  # 1 / 10 is the target itself
    assert rejection_to_reach(*decided(gaps, wrong), target=0.09) == 4 / 10
    # a nonzero target keeps a wrong pattern: 3 wrong in 20 (gaps 0, 2, 15), 1 / 17 accepted is below 6%
    wrong = [0] * 20
    wrong[0] = wrong[2] = wrong[15] = 1
    assert rejection_to_reach(*decided(list(range(20)), wrong), target=0.06) == 3 / 20


def test_equal_gaps_are_rejected_together():
    # the wrong pattern shares its gap with two right ones: a threshold takes all three
    assert rejection_to_reach(*decided([2, 1, 2, 2, 3], [0, 0, 0, 1, 0]), target=0.0) == 4 / 5
    # an error that only rejecting everything removes: the largest gap, shared by no one
    assert rejection_to_reach(*decided([1, 2, 3], [0, 0, 1]), target=0.0) == 1.0


def test_a_lone_candidate_class_is_the_most_confident():
    scores, labels = decided([1, 2, 3], [1, 0, 0])
    scores[0, 1:] = -INF  # the wrong pattern saw one class only (tangent distance): gap +inf
    assert rejection_to_reach(scores, labels, target=0.0) == 1.0
    scores[1, 1:] = -INF  # a right one at +inf too: the tie goes together (not the wrong one first, 2/3)
    assert rejection_to_reach(scores, labels, target=0.0) == 1.0


def test_the_target_is_met_despite_the_rounding_of_target_times_accepted():
    wrong = [1] * 63 + [0] * 117
    assert 0.35 * 180 < 63  # 63 / 180 is exactly 0.35, the float product falls short
    assert rejection_to_reach(*decided(list(range(180)), wrong), target=0.35) == 0


def test_rejection_default_target_is_the_papers():
    gaps, wrong = list(range(1000)), [0] * 1000
    wrong[0] = wrong[1] = 1
    assert paper.REJECTION_TARGET == 0.005
    assert rejection_to_reach(*decided(gaps, wrong)) == 0
    wrong[500:504] = [1] * 4  # 6 wrong: the two below the median go, leaving 4 among 998
    assert rejection_to_reach(*decided(gaps, wrong)) == 2 / 1000


def test_rejection_rejects_bad_input():
    scores, labels = decided([1, 2], [0, 0])
    with pytest.raises(ValueError, match=r"scores must be \(N, classes\)"):
        rejection_to_reach(scores[:, 0], labels)
    with pytest.raises(ValueError, match=r"scores must be \(N, classes\)"):
        top_two_gap(scores[:, :1])
    with_nan = scores.clone()
    with_nan[1, 3] = float("nan")
    with pytest.raises(ValueError, match=r"NaN in 1 pattern"):
        rejection_to_reach(with_nan, labels)
    with pytest.raises(ValueError, match="labels must be 2 integers"):
        rejection_to_reach(scores, labels[:1])
    with pytest.raises(ValueError, match="labels must be 2 integers"):
        rejection_to_reach(scores, labels.double())
    with pytest.raises(ValueError, match=r"classes 0..9, got 0..10"):
        rejection_to_reach(scores, torch.tensor([0, 10]))
    with pytest.raises(ValueError, match="no patterns"):
        rejection_to_reach(scores[:0], labels[:0])
    with pytest.raises(ValueError, match=r"target is an error rate in \[0, 1\)"):
        rejection_to_reach(scores, labels, target=1.0)


# ---- Figs. 10-12 and their table ----------------------------------------------------------------------
def costs():
    return pd.DataFrame(dict(method=["linear", "knn-deslant", "lenet5"], rejection=[np.nan, 0.09, 0.01],
                             macs=[7_850, 24_000_000, 341_000], memory=[7_850, 24_000_000, 61_706]))


@pytest.mark.parametrize("figure", [cost_figures.fig10, cost_figures.fig11, cost_figures.fig12])
def test_cost_figures_draw_a_png(figure, tmp_path):
    path = tmp_path / "figure.png"
    figure(costs(), path)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 1000


def test_cost_table_puts_ours_beside_the_papers_in_fig9_order():
    lines = cost_figures.cost_table(costs())
    assert lines[0] == ("| method | rejection to 0.5%, ours | paper | MACs, ours | paper | memory, ours | paper |")
    rows = {line.split(" | ")[0][2:]: line for line in lines[2:]}
    assert rows["linear"] == "| linear | – | – | 7,850 | 4,000 | 7,850 | 4,000 |"
    assert rows["knn-deslant"] == "| knn-deslant | 9.00% | 8.1% | 24,000,000 | 24,000,000 | 24,000,000 | 24,000,000 |"
    assert rows["lenet4"] == "| lenet4 | – | 1.8% | – | 260,000 | – | 17,000 |"  # the paper's rows we lack too
    assert list(rows) == [n for n in paper.FIG9_ERROR if n in rows]


def test_cost_figures_reject_bad_rows():
    with pytest.raises(ValueError, match="lack the column"):
        cost_figures.cost_table(costs().drop(columns="memory"))
    with pytest.raises(ValueError, match="methods not in Fig. 9: svm"):
        cost_figures.cost_table(pd.concat([costs(), pd.DataFrame(dict(method=["svm"], rejection=[0.0], macs=[1],
                                                                             memory=[1]))]))
    with pytest.raises(ValueError, match="repeated: linear"):
        cost_figures.cost_table(pd.concat([costs(), costs().iloc[:1]]))


def test_papers_figures_10_to_12_use_fig9_row_names():
    assert set(paper.FIG10_REJECTION) <= set(paper.FIG11_MACS) == set(paper.FIG12_MEMORY) <= set(paper.FIG9_ERROR)
    assert len(paper.FIG10_REJECTION) == 9 and len(paper.FIG11_MACS) == 19  # the bars of Figs. 10 and 11-12
