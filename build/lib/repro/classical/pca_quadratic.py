"""40 PCA + quadratic classifier (Sec. III-C.3): the image minus the training mean, projected on the
40 principal components of the training set, then every product of two of the 40 projections
(squares included: 40 * 41 / 2 = 820) and a bias, the paper's 821 inputs, into a linear classifier
trained like repro/classical/linear.py's (least squares on +-1 targets, A16). The projections are
divided by their standard deviation first, so that the ridge treats every product alike (A19).
"""
import torch

from ..versions import pixels
from .linear import RIDGE, least_squares, one_vs_rest_targets

COMPONENTS = 40


def quadratic(z, linear_terms=False):
    """All products z_i z_j, i <= j, and a bias of 1: (N, d (d + 1) / 2 + 1); with linear_terms
    also the d projections themselves (the full quadratic, a finding only)."""
    i, j = torch.triu_indices(z.shape[1], z.shape[1])
    return torch.cat([z[:, i] * z[:, j]] + ([z] if linear_terms else []) + [torch.ones(len(z), 1, dtype=z.dtype)], 1)


class PCAQuadratic:
    """whiten=False and linear_terms=True are findings only (results/compare_findings/)."""

    def __init__(self, train_x, train_y, seed=None, components=COMPONENTS, whiten=True, linear_terms=False):
        x = pixels(train_x)
        self.mean = x.mean(0)
        centred = x - self.mean
        values, vectors = torch.linalg.eigh(centred.T @ centred / len(x))  # ascending
        top = vectors[:, -components:].flip(1)
        top = top * torch.sign(top[top.abs().argmax(0), torch.arange(components)])  # a fixed sign per axis
        self.basis = top / values[-components:].flip(0).clamp_min(1e-12).sqrt() if whiten else top
        self.linear_terms = linear_terms
        self.weights = least_squares(quadratic(centred @ self.basis, linear_terms), one_vs_rest_targets(train_y),
                                     RIDGE * len(x))

    def scores(self, images):
        return quadratic((pixels(images) - self.mean) @ self.basis, self.linear_terms) @ self.weights

    def parameters(self):
        return self.mean.numel() + self.basis.numel() + self.weights.numel()

    def macs(self):
        """The projection (HW x d, the whitening being folded into the basis), the d (d + 1) / 2
        products of pairs, and the linear layer, one multiply-add per weight. The mean's subtraction
        is not counted. Fig. 11's 39,570 counts the projection and the layer only."""
        d = self.basis.shape[1]
        return self.basis.numel() + d * (d + 1) // 2 + self.weights.numel()
