"""The rejection of Fig. 10 (Sec. III-D): how many test patterns a classifier must reject to bring its
error down to 0.5%.

The paper rejects a pattern when "the difference between the scores of the top two classes" is below
a threshold, raised until the target error remains. Open in the paper, read here: the error is that
of the ACCEPTED patterns (errors among them / their number), and the answer is the fraction of ALL
patterns rejected; the threshold is set on the patterns measured (the paper does not say on which
set it was set). Patterns are rejected in order of increasing gap, and patterns with equal gaps are
rejected together, so that the answer is that of a real threshold.
"""
import torch

from . import paper

ROUNDING = 1e-9  # patterns: slack for target x accepted, whose product is not exact in float64


def as_scores(scores):
    """scores as float64 (N, C), C >= 2, with one clear error for anything else or NaN."""
    s = torch.as_tensor(scores).to(torch.float64)
    if s.ndim != 2 or s.shape[1] < 2:
        raise ValueError(f"scores must be (N, classes) with at least 2 classes, got shape {tuple(s.shape)}")
    if s.isnan().any():
        raise ValueError(f"scores contain NaN in {int(s.isnan().any(1).sum())} pattern(s)")
    return s


def top_two_gap(scores):
    """The largest score minus the second largest, float64 (N,). Equal scores give 0, infinite ones
    included (two -inf: no preference); a finite top over a -inf second gives +inf (the tangent
    distance's -inf for a class without candidates: the pattern has one class only)."""
    top = torch.topk(as_scores(scores), 2, dim=1).values
    first, second = top[:, 0], top[:, 1]
    return torch.where(first == second, torch.zeros_like(first), first - second)


def rejection_to_reach(scores, labels, target=paper.REJECTION_TARGET):
    """The smallest fraction of the N patterns that a threshold on top_two_gap must reject so that
    the error among the accepted patterns is at most `target`: 0 if the raw error already is, 1 if
    only rejecting everything does. The decision is scores.argmax(1) (the first of equal scores)."""
    s = as_scores(scores)
    y = torch.as_tensor(labels)
    n, classes = s.shape
    if y.shape != (n,) or y.dtype.is_floating_point or y.dtype == torch.bool:
        raise ValueError(f"labels must be {n} integers for scores of shape {tuple(s.shape)}, "
                         f"got {y.dtype} of shape {tuple(y.shape)}")
    if n == 0:
        raise ValueError("no patterns: the rejection needs at least one")
    if (y < 0).any() or (y >= classes).any():
        raise ValueError(f"labels must be classes 0..{classes - 1}, got {y.min().item()}..{y.max().item()}")
    if not 0 <= target < 1:
        raise ValueError(f"target is an error rate in [0, 1), got {target}")
    gap = top_two_gap(s)
    order = torch.argsort(gap, stable=True)
    wrong = (s.argmax(1) != y)[order].to(torch.int64)
    # rejecting the first r patterns in gap order, r = 0 or the end of a run of equal gaps
    rejected = torch.arange(n + 1)
    wrong_accepted = wrong.sum() - torch.cat([torch.zeros(1, dtype=torch.int64), wrong.cumsum(0)])
    sorted_gap = gap[order]
    cut = torch.cat([torch.tensor([True]), sorted_gap[1:] != sorted_gap[:-1], torch.tensor([True])])
    reaches = cut & (wrong_accepted <= target * (n - rejected) + ROUNDING)
    return rejected[reaches][0].item() / n
