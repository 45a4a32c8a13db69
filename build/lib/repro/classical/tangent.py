"""Tangent distance (Sec. III-C.10; Simard, LeCun & Denker 1993): nearest neighbour on the 16x16
images, with the distance between the planes that seven small transformations of each image span:
translations in x and y, rotation, scaling, the two hyperbolic deformations ("squeezing" and
"skewing") and line thickness.

A Euclidean prefilter keeps, per test image, the CANDIDATES nearest training images (exact integer
distances, repro/classical/knn.py), as the paper cut the number of tangent distances by
prefiltering; the test image goes to the class of the candidate at the smallest two-sided tangent
distance. Open in the paper, chosen here (A21): the smoothing before differentiating, the number of
candidates, one neighbour, and a small spring term that keeps the solve well posed.
"""
import torch
import torch.nn.functional as F

from ..versions import pixels
from .knn import neighbours

CANDIDATES = 100
SMOOTHING = 0.9  # sigma (pixels) of the Gaussian blur that the tangent vectors are computed from
BLUR_RADIUS = 2  # the blur's taps: -2..2 in x, then in y
SPRING = 1e-3    # ridge on the 14 coefficients, relative to the tangents' scale
TANGENTS = ("x-translation", "y-translation", "rotation", "scaling", "hyperbolic-axis", "hyperbolic-diagonal",
            "thickness")


def blur(x, sigma=SMOOTHING):
    r = torch.arange(-BLUR_RADIUS, BLUR_RADIUS + 1, dtype=x.dtype)
    g = torch.exp(-r * r / (2 * sigma * sigma))
    g = g / g.sum()
    x = F.conv2d(x.unsqueeze(1), g.view(1, 1, 1, -1), padding=(0, BLUR_RADIUS))
    return F.conv2d(x, g.view(1, 1, -1, 1), padding=(BLUR_RADIUS, 0)).squeeze(1)


def tangent_vectors(images, sigma=SMOOTHING):
    """uint8 (N, S, S) -> float64 (N, 7, S*S), in TANGENTS' order, for pixels scaled to [0, 1]."""
    n, s = len(images), images.shape[-1]
    p = blur(pixels(images).view(n, s, s), sigma)
    gy, gx = torch.gradient(p, dim=(1, 2))
    c = torch.arange(s, dtype=torch.float64) - (s - 1) / 2
    y, x = c.view(1, s, 1), c.view(1, 1, s)
    t = torch.stack([gx, gy, y * gx - x * gy, x * gx + y * gy, x * gx - y * gy, y * gx + x * gy, gx * gx + gy * gy], 1)
    return t.reshape(n, 7, s * s)


def tangent_distances(x, tx, refs, trefs, spring=SPRING):
    """Two-sided tangent distances between x (P,) and refs (K, P) with tangents tx (7, P) and
    trefs (K, 7, P): min over a, b of |x + tx a - ref - tref b|^2 + spring (|a|^2 + |b|^2)."""
    k = len(refs)
    a = torch.cat([tx.expand(k, 7, -1), -trefs], 1)  # (K, 14, P)
    r = refs - x  # (K, P)
    gram = a @ a.transpose(1, 2)
    gram.diagonal(dim1=1, dim2=2).add_(spring)
    rhs = (a @ r.unsqueeze(2))
    coef = torch.linalg.solve(gram, rhs)
    residual = r - (coef.transpose(1, 2) @ a).squeeze(1)
    return (residual * residual).sum(1) + spring * (coef * coef).sum((1, 2))


def tangent_vectors_macs(p, tangents):
    """Multiply-adds of tangent_vectors for one image of p pixels: the blur's two passes, then two
    products per pixel for every tangent but the two translations (the gradients' differences are
    not counted)."""
    return 2 * (2 * BLUR_RADIUS + 1) * p + 2 * (tangents - 2) * p


def solve_macs(n):
    """Multiply-adds of solving an n x n system by Gaussian elimination, the textbook count of what
    torch.linalg.solve's LU does: sum over k of (n - k)^2 for the elimination, n (n - 1) for the two
    triangular solves (the divisions not counted)."""
    return (n - 1) * n * (2 * n - 1) // 6 + n * (n - 1)


def tangent_distance_macs(p, tangents):
    """Multiply-adds of one two-sided tangent distance in tangent_distances, as computed there with
    m = 2 x tangents columns: the full m x m Gram matrix (m^2 p: the batched product computes both
    halves and recomputes the test image's own block for every candidate), the right-hand side and
    the residual (m p each), the solve, the squared residual (p) and the spring term (m)."""
    m = 2 * tangents
    return m * m * p + 2 * m * p + solve_macs(m) + p + m


class TangentDistance:
    """1-nearest neighbour by tangent distance among the Euclidean prefilter's candidates."""

    def __init__(self, train_x, train_y, seed=None, candidates=CANDIDATES, smoothing=SMOOTHING):
        self.train_x, self.train_y, self.candidates, self.smoothing = train_x, train_y, candidates, smoothing
        self.train_t = tangent_vectors(train_x, smoothing)
        self.train_p = pixels(train_x)

    def scores(self, images):
        """Minus the smallest tangent distance to each class among the candidates (-inf: none)."""
        idx = neighbours(images, self.train_x, self.candidates)
        tt, tp = tangent_vectors(images, self.smoothing), pixels(images)
        out = torch.full((len(images), 10), -float("inf"), dtype=torch.float64)
        for i in range(len(images)):
            d = tangent_distances(tp[i], tt[i], self.train_p[idx[i]], self.train_t[idx[i]])
            out[i].scatter_reduce_(0, self.train_y[idx[i]], -d, reduce="amax")
        return out

    def parameters(self):
        """The stored images and their 7 tangent vectors each (computed once at training; train_p is
        the images again as floats, not counted twice)."""
        return self.train_x.numel() + self.train_t.numel()

    def macs(self):
        """The Euclidean prefilter over every stored image (one multiply-add per pixel each, as
        KNN.macs), the test image's tangent vectors, and a tangent distance per candidate."""
        n, p = self.train_p.shape
        tangents = self.train_t.shape[1]
        return n * p + tangent_vectors_macs(p, tangents) + self.candidates * tangent_distance_macs(p, tangents)
