"""The classical classifiers of Fig. 9 (Sec. III-C), one module per family, and METHODS: each row
of the comparison with its class, the data version it is trained and tested on (repro/versions.py),
its options and whether it is randomised (then several seeds are run). The paper's errors are in
repro.paper.FIG9_ERROR, under the same names.

Every class takes (train images uint8 (N, S, S), train labels, seed, **options), and has
scores(images) -> (N, 10) float64 (the largest wins; also the confidence for rejection, Fig. 10),
parameters() (numbers stored at recognition time, Fig. 12) and macs() (multiply-accumulates to
recognise one image, Fig. 11, counted from the fitted model's arrays as its scores() computes them:
every product of a matrix product, a product of two variables or of a variable and a weight; a
Euclidean distance is one multiply-add per pixel, as sum (x - y)^2 has, its norms left out. Not
counted anywhere: scaling pixels to [0, 1], additions and subtractions alone, comparisons and sorts,
nonlinearities (exp, tanh, sign, a kernel's power) and the tallying of votes (k-NN's, the SVMs'
one-versus-one).
"""
from dataclasses import dataclass, field

from .knn import KNN
from .linear import Linear, Pairwise
from .pca_quadratic import PCAQuadratic
from .rbf import RBFNetwork
from .svm import CHOSEN, SVM, ReducedSetSVM, VirtualSVM
from .tangent import TangentDistance
from ..versions import check


PAIRWISE_VERSION = "deskew"  # what `make svm-search` chose on the validation split (a test ties it)


def svm_what(degree):
    """The SVM rows' description: the kernel the SVM study chose for the degree."""
    kernel = "homogeneous" if CHOSEN[degree]["coef0"] == 0 else "inhomogeneous"
    return f"SVM, {kernel} polynomial kernel of degree {degree}"


@dataclass(frozen=True)
class Method:
    cls: type
    version: str
    what: str
    options: dict = field(default_factory=dict)
    randomised: bool = False
    shares_work: bool = False  # takes a cache_dir for work its seeds share (the virtual SVs' first SVM)


METHODS = {
    "linear": Method(Linear, "regular", "a weighted sum per class (least squares)"),
    "linear-deslant": Method(Linear, "deslant", "the same on the deslanted 20x20 images"),
    "pairwise": Method(Pairwise, PAIRWISE_VERSION, "45 linear units, one per pair of classes, voting"),
    "knn": Method(KNN, "regular", "3-nearest neighbours, Euclidean, raw pixels", dict(k=3)),
    "knn-deslant": Method(KNN, "deslant", "the same on the deslanted 20x20 images", dict(k=3)),
    "pca-quadratic": Method(PCAQuadratic, "regular", "40 principal components, all their products, linear"),
    "rbf-network": Method(RBFNetwork, "regular", "1,000 Gaussian units (K-means per class), linear", randomised=True),
    "tangent-distance": Method(TangentDistance, "16x16", "1-nearest neighbour by tangent distance, 16x16"),
    "svm-poly4": Method(SVM, CHOSEN[4]["version"], svm_what(4), dict(degree=4)),
    "rs-svm-poly5": Method(ReducedSetSVM, CHOSEN[5]["version"], svm_what(5) + ", 18 reduced-set vectors per pair",
                           dict(degree=5, per_pair=18)),
    "v-svm-poly9-dist": Method(VirtualSVM, CHOSEN[9]["version"], svm_what(9) + " retrained on its support vectors "
                               "and 4 distorted copies of each", dict(degree=9, copies=4), randomised=True,
                               shares_work=True),
}


def get(name):
    if name not in METHODS:
        raise ValueError(f"unknown method {name!r}; methods: {', '.join(METHODS)}")
    return METHODS[name]


def check_labels(labels, n):
    import torch
    if not isinstance(labels, torch.Tensor) or labels.dtype != torch.int64 or labels.shape != (n,):
        raise ValueError(f"expected {n} int64 labels, got {getattr(labels, 'dtype', type(labels).__name__)} "
                         f"of shape {tuple(getattr(labels, 'shape', ()))}")
    if n and (labels.min() < 0 or labels.max() > 9):
        raise ValueError(f"labels must be classes 0..9, got {labels.min().item()}..{labels.max().item()}")


def fit(name, train_x, train_y, seed=0, cache_dir=None, version=None, **options):
    """The method `name` trained on images of its version (checked first, with one clear error);
    `cache_dir`: where a method that shares work between seeds keeps it. `version` and `options`
    override the row's (the findings of results/compare_findings/ change one thing each)."""
    method = get(name)
    check(train_x, version or method.version)
    check_labels(train_y, len(train_x))
    shared = dict(cache_dir=cache_dir) if method.shares_work else {}
    return method.cls(train_x, train_y, seed, **{**method.options, **options}, **shared)


def scores(name, model, images, version=None):
    """model.scores(images) after checking that the images are of the method's version."""
    check(images, version or get(name).version)
    return model.scores(images)
