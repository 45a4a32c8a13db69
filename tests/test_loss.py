import math

import torch
import torch.nn.functional as F

from repro.loss import ce_loss, map_loss, ml_loss


def test_eq8_is_the_correct_class_penalty():
    y = torch.tensor([[3.0, 1.0, 2.0], [0.5, 4.0, 9.0]])
    assert ml_loss(y, torch.tensor([1, 2])).item() == (1.0 + 9.0) / 2


def test_eq9_matches_its_formula():
    y = torch.tensor([[3.0, 1.0, 2.0, 8.0]], dtype=torch.float64)
    j = 1.5
    naive = y[0, 2] + math.log(math.exp(-j) + sum(math.exp(-v) for v in y[0].tolist()))
    assert map_loss(y, torch.tensor([2]), j).item() == naive.item()


def test_eq9_is_stable_for_large_and_small_penalties():
    for scale in (1e-3, 1e4):
        y = torch.rand(4, 10) * scale
        assert torch.isfinite(map_loss(y, torch.tensor([0, 1, 2, 3]), 1.0))


def test_eq9_without_its_constant_is_cross_entropy_on_negated_penalties():
    y = torch.randn(6, 10, dtype=torch.float64)
    labels = torch.randint(0, 10, (6,))
    torch.testing.assert_close(map_loss(y, labels, 1e4), F.cross_entropy(-y, labels))
    torch.testing.assert_close(ce_loss(y, labels), F.cross_entropy(-y, labels))
