"""Random affine distortions (Sec. III-C): the ranges hold, the identity is exact, background stays
background, and the paper's distorted training set is laid out as the training loop expects."""
import pytest
import torch

from repro import paper
from repro.distortions import RANGES, distort, distorted_pool, random_affine
from repro.train import pass_indices

IDENTITY = dict(translate=0.0, scale=0.0, squeeze=0.0, shear=0.0)


def test_drawn_parameters_stay_in_their_ranges():
    theta = random_affine(10_000, torch.Generator().manual_seed(0)).double()
    a = torch.linalg.inv(theta[:, :, :2])  # input -> output: s [[q, q h], [0, 1/q]]
    t = -(a @ theta[:, :, 2:]).squeeze(-1) * paper.INPUT_SIZE / 2  # in pixels
    s, q, h = (a[:, 0, 0] * a[:, 1, 1]).sqrt(), (a[:, 0, 0] / a[:, 1, 1]).sqrt(), a[:, 0, 1] / a[:, 0, 0]
    assert torch.allclose(a[:, 1, 0], torch.zeros(1, dtype=a.dtype), atol=1e-6)  # shear is horizontal only
    for value, bound in [(t.abs(), RANGES["translate"]), ((s - 1).abs(), RANGES["scale"]),
                         ((q - 1).abs(), RANGES["squeeze"]), (h.abs(), RANGES["shear"])]:
        assert value.max() <= bound * (1 + 1e-5) and value.max() > 0.95 * bound  # the whole range is used


def test_identity_is_exact(mnist):
    x = mnist["train_x"][:50]
    assert torch.equal(distort(x, torch.Generator().manual_seed(1), IDENTITY), x)


def test_background_stays_background_and_ink_stays_in_range(mnist):
    blank = torch.full((20, 1, 32, 32), paper.INPUT_BACKGROUND)
    torch.testing.assert_close(distort(blank, torch.Generator().manual_seed(2)), blank)
    x = distort(mnist["train_x"][:500], torch.Generator().manual_seed(3))
    assert x.min() >= paper.INPUT_BACKGROUND - 1e-6 and x.max() <= paper.INPUT_INK + 1e-6


def test_same_seed_same_distortions(mnist):
    x = mnist["train_x"][:100]
    a = distort(x, torch.Generator().manual_seed(4))
    assert torch.equal(a, distort(x, torch.Generator().manual_seed(4)))
    assert not torch.equal(a, distort(x, torch.Generator().manual_seed(5)))


def test_pool_is_originals_then_copies(mnist):
    x = mnist["train_x"][:30]
    pool = distorted_pool(x, paper.DISTORTED_COPIES, torch.Generator().manual_seed(0))
    assert pool.shape == (30 * (paper.DISTORTED_COPIES + 1), 1, 32, 32)
    assert torch.equal(pool[:30], x) and not torch.equal(pool[30:60], x)
    # each copy keeps its original's ink roughly (an affine map scales area by s^2 <= 1.15^2)
    ink = lambda t: (t - paper.INPUT_BACKGROUND).sum((1, 2, 3))
    ratio = ink(pool[30:]) / ink(x).repeat(paper.DISTORTED_COPIES)
    assert ratio.min() > (1 - RANGES["scale"]) ** 2 * 0.9 and ratio.max() < (1 + RANGES["scale"]) ** 2 * 1.1


def test_wrong_shape_is_a_clear_error():
    with pytest.raises(ValueError, match=r"\(N, 1, 32, 32\)"):
        distort(torch.zeros(3, 28, 28), torch.Generator())


def test_paper_regime_shows_every_pattern_twice_in_twenty_passes():
    n, order = 30, torch.randperm(30 * (paper.DISTORTED_COPIES + 1), generator=torch.Generator().manual_seed(0))
    seen = torch.cat([pass_indices(p, n, order) for p in range(paper.PASSES)])
    assert len(seen) == paper.PASSES * n
    assert torch.equal(torch.bincount(seen), torch.full((len(order),), 2))


def test_the_huge_ranges_are_twice_a11s_and_the_small_ones_half():
    from repro.distortions import RANGE_SETS, RANGES
    assert RANGE_SETS["a11"] is RANGES
    for kind in ("scale", "squeeze", "shear"):
        assert RANGE_SETS["huge"][kind] == 2 * RANGES[kind] and RANGE_SETS["small"][kind] == RANGES[kind] / 2
    assert RANGE_SETS["small"]["translate"] < RANGES["translate"] < RANGE_SETS["huge"]["translate"]


def test_ink_outside_counts_what_a_crop_cuts():
    from repro.distortions import ink_outside
    x = torch.full((3, 1, 32, 32), paper.INPUT_BACKGROUND)
    x[0, 0, 10:20, 10:20] = paper.INPUT_INK  # inside the central 28x28
    x[1, 0, 0:2, 10:20] = paper.INPUT_INK  # 20 pixels in the 2-pixel band outside it ...
    x[1, 0, 10:16, 10:20] = paper.INPUT_INK  # ... and 60 inside
    assert ink_outside(x, 28).tolist() == [0.0, 0.25, 0.0]  # an empty image loses nothing
