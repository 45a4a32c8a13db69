"""Linear classifiers (Sec. III-C.1): one weighted sum per class, and the pairwise net of 45 units.

Both are trained by solving a linear system, one of the trainings the paper says "gave similar
results" (PAPER_NOTES, A16): least squares on +-1 targets with a small ridge, and a constant bias input.
Pixels are kept as their integers 0..255 (the bias input is 255, the same scale): every product and
sum of the Gram matrix and of x^T targets is then an integer below 2^53, exact in float64 in any
order, so the only CPU-dependent roundings are those of the solve and of the scores' products.
"""
import itertools

import torch

TANH_ITERATIONS = 200
RIDGE = 1e-3  # lambda = RIDGE * n * 255^2 (pixels as 0..255); only fixes the pixels that are always 0 (A16)


def features(images):
    """uint8 images (N, H, W) -> float64 (N, H*W + 1): the pixels as integers and a bias input of 255."""
    x = images.reshape(len(images), -1).to(torch.float64)
    return torch.cat([x, torch.full((len(x), 1), 255.0, dtype=torch.float64)], 1)


def least_squares(x, targets, ridge):
    """W minimising |x W - targets|^2 + ridge |W|^2."""
    gram = x.T @ x
    gram.diagonal().add_(ridge)
    return torch.linalg.solve(gram, x.T @ targets)


def one_vs_rest_targets(labels, classes=10):
    t = -torch.ones(len(labels), classes, dtype=torch.float64)
    t[torch.arange(len(labels)), labels] = 1
    return t


def tanh_units(x, targets, weights, iterations=TANH_ITERATIONS):
    """The weights refined for tanh units, tanh(x W) against the targets in squared error, by
    full-batch L-BFGS from `weights` (the paper's "sigmoid units ... gradient descent" reading)."""
    scale = 255.0  # optimise on pixels in [0, 1], where the weights are of order 1
    w = (weights * scale).contiguous().requires_grad_(True)
    xs = x / scale
    opt = torch.optim.LBFGS([w], max_iter=iterations, line_search_fn="strong_wolfe", tolerance_grad=1e-12)

    def closure():
        opt.zero_grad()
        loss = ((torch.tanh(xs @ w) - targets) ** 2).mean()
        loss.backward()
        return loss
    opt.step(closure)
    return w.detach() / scale


class Linear:
    """A weighted sum per class plus a bias; the largest sum wins. 10 (HW + 1) parameters.
    units="tanh" (a finding only): the sums pass through tanh and are fitted by tanh_units()."""

    def __init__(self, train_x, train_y, seed=None, units="linear"):
        if units not in ("linear", "tanh"):
            raise ValueError(f"units must be 'linear' or 'tanh', got {units!r}")
        x, targets = features(train_x), one_vs_rest_targets(train_y)
        self.weights = least_squares(x, targets, RIDGE * len(train_x) * 255**2)
        if units == "tanh":
            self.weights = tanh_units(x, targets, self.weights)

    def scores(self, images):
        return features(images) @ self.weights

    def parameters(self):
        return self.weights.numel()

    def macs(self):
        """One multiply-add per weight: the HW pixels and the bias input, into each class's sum."""
        return self.weights.numel()


PAIRS = list(itertools.combinations(range(10), 2))  # unit i/j: +1 on class i, -1 on class j


class Pairwise:
    """45 linear units, one per pair of classes, each trained on those two classes only. The score
    of class i is the sum of the outputs of the units i/x minus the sum of those of the units y/i.
    A unit's output is its vote, the sign of its weighted sum (A17): the raw sums of units that
    never saw a class are unbounded on it. Equal scores go to the lower class."""

    def __init__(self, train_x, train_y, seed=None):
        x = features(train_x)
        columns = []
        for i, j in PAIRS:
            mask = (train_y == i) | (train_y == j)
            target = torch.where(train_y[mask] == i, 1.0, -1.0).to(torch.float64).unsqueeze(1)
            columns.append(least_squares(x[mask], target, RIDGE * int(mask.sum()) * 255**2))
        self.weights = torch.cat(columns, 1)  # (HW + 1, 45)
        self.sign = torch.zeros(45, 10, dtype=torch.float64)  # unit -> class: +1 for i, -1 for j
        for u, (i, j) in enumerate(PAIRS):
            self.sign[u, i], self.sign[u, j] = 1, -1

    def scores(self, images):
        return self.outputs(images).sign() @ self.sign

    def outputs(self, images):
        """The 45 units' weighted sums."""
        return features(images) @ self.weights

    def parameters(self):
        return self.weights.numel()

    def macs(self):
        """The 45 weighted sums, one multiply-add per weight, and the votes' product with the 45 x 10
        matrix of +1, -1 and 0 that scores() computes in full (45 x 10, zeros included)."""
        return self.weights.numel() + self.sign.numel()
