"""Support vector machines with polynomial kernels (Sec. III-C.11): the plain SVM, the reduced-set
SVM (Burges 1996) and the virtual-support-vector SVM (Schoelkopf, Burges & Vapnik 1996).

The text: "dot products of the input image with a subset of the training images (the support
vectors), raised to the k-th power, combined linearly", i.e. the homogeneous kernel (g x.y)^k. The
quadratic program is scikit-learn's SVC (libsvm, one-versus-one over the 45 pairs of classes).
Open, chosen here (A22): pixels in [0, 1]; g = 1 / the mean of |x|^2 over the training images, so
that a typical K(x, x) is about 1 and C means the same for every degree; per degree the data version
(regular or deskewed, as the MNIST page lists), the kernel (the text's homogeneous one or
(g x.y + 1)^k) and C, chosen on a validation split by `make svm-search` (experiments/svm_search.py,
results/svm_search/).
"""
import hashlib
from pathlib import Path

import numpy as np
import torch
from sklearn.svm import SVC

from .. import data, distortions, paper, versions
from .linear import PAIRS

# Per degree, what `make svm-search` chose on the validation split (a test ties it to its decision.json):
# the data version (repro/versions.py), coef0 (0: the text's homogeneous kernel) and C
CHOSEN = {4: dict(version="deskew", coef0=1.0, c=1.0), 5: dict(version="deskew", coef0=1.0, c=1.0),
          9: dict(version="deskew", coef0=1.0, c=1.0)}


def kernel_options(degree, c=None, coef0=None):
    """(C, coef0) of a machine of this degree: the given ones, each by default the study's (CHOSEN); a
    degree the study did not measure takes the text's kernel and needs its C."""
    chosen = CHOSEN.get(degree, dict(coef0=0.0))
    if c is None and "c" not in chosen:
        raise ValueError(f"the SVM study chose no C for degree {degree}: pass c")
    return (chosen["c"] if c is None else c), (chosen["coef0"] if coef0 is None else coef0)


def pixels(images):
    """versions.pixels as the numpy array scikit-learn takes."""
    return versions.pixels(images).numpy()


def ovo_votes(decisions, classes=10):
    """One-versus-one votes over PAIRS (libsvm's order): each pair's decision d > 0 votes for its first
    class. The score is the vote count plus a graded part below half a vote: each decision squashed
    at the margin's scale, d / (|d| + 1), summed over the class's pairs (+ for the class, - against)
    and divided by 2 (classes - 1). It breaks ties, and it grades Fig. 10's top-two gap, which votes
    alone give a few values only (A30). scikit-learn squashes the sum instead, which saturates."""
    n = len(decisions)
    votes, confidence = np.zeros((n, classes)), np.zeros((n, classes))
    for p, (i, j) in enumerate(PAIRS):
        d = decisions[:, p]
        votes[:, i] += d > 0
        votes[:, j] += d <= 0
        squashed = d / (np.abs(d) + 1)
        confidence[:, i] += squashed
        confidence[:, j] -= squashed
    return torch.from_numpy(votes + confidence / (2 * (classes - 1)))


class SVM:
    """A polynomial-kernel SVM of degree `degree` on 28x28 images (regular or deskewed)."""

    def __init__(self, train_x, train_y, seed=0, degree=4, c=None, coef0=None):
        """c: the soft-margin constant, coef0: 0 for the text's homogeneous kernel (g x.y)^k, 1 for
        (g x.y + 1)^k; each by default the SVM study's choice for the degree (CHOSEN)."""
        x = pixels(train_x)
        self.gamma = 1 / float((x * x).sum(1).mean())
        c, coef0 = kernel_options(degree, c, coef0)
        self.svc = SVC(kernel="poly", degree=degree, gamma=self.gamma, coef0=coef0, C=c, cache_size=2000,
                       decision_function_shape="ovo", random_state=seed).fit(x, train_y.numpy())

    def scores(self, images):
        return ovo_votes(self.svc.decision_function(pixels(images)))

    def kernel(self, a, b):
        """This machine's kernel between the rows of a and b (float64 tensors, pixels in [0, 1])."""
        return kernel(a, b, self.gamma, self.svc.degree, self.svc.coef0)

    def support(self):
        """Indices of the support vectors in the training set."""
        return self.svc.support_

    def pair_expansion(self, p):
        """(support vectors, coefficients alpha_i y_i, bias) of pair p's decision function."""
        i, j = PAIRS[p]
        start = np.concatenate([[0], np.cumsum(self.svc.n_support_)])
        si, sj = np.arange(start[i], start[i + 1]), np.arange(start[j], start[j + 1])
        coef = np.concatenate([self.svc.dual_coef_[j - 1, si], self.svc.dual_coef_[i, sj]])
        vectors = self.svc.support_vectors_[np.concatenate([si, sj])]
        return vectors, coef, self.svc.intercept_[p]

    def parameters(self):
        return self.svc.support_vectors_.size + self.svc.dual_coef_.size + self.svc.intercept_.size

    def macs(self):
        """libsvm's one-versus-one decision: one dot product with each support vector (pixels x
        vectors; the kernel's scaling and power not counted), then per pair of classes one
        multiply-add per support vector of its two classes (each vector enters the 9 pairs of its class)."""
        n = self.svc.n_support_
        return self.svc.support_vectors_.size + sum(int(n[i] + n[j]) for i, j in PAIRS)


# ---- reduced set (Burges 1996) ---------------------------------------------------------------------
def kernel(a, b, gamma, degree, coef0=0.0):
    return (gamma * a @ b.T + coef0) ** degree


def reduce_pair(vectors, coef, k, sizes, iterations=40):
    """[(z, beta) for each size in `sizes` (ascending)]: vectors z and weights beta with sum_j beta_j
    Phi(z_j) close to sum_i coef_i Phi(x_i) in the feature space of the kernel k(u, v). Greedy: each z
    maximises (Psi_res . Phi(z))^2 / K(z, z) (L-BFGS from the support vector that scores best), then
    all weights are refitted by least squares in feature space; a smaller size is the larger one's
    first vectors with its own refitted weights, exactly what a run to that size gives."""
    x = torch.from_numpy(vectors)
    a = torch.from_numpy(coef)
    zs, beta, out = [], torch.zeros(0, dtype=torch.float64), []
    kxx = k(x, x)  # once: every start below scores all support vectors

    def projection(z):  # Psi_res . Phi(z) for z (m, d)
        out = k(z, x) @ a
        if zs:
            out = out - k(z, torch.stack(zs)) @ beta
        return out

    while len(zs) < max(sizes):
        at_x = kxx @ a - (k(x, torch.stack(zs)) @ beta if zs else 0)
        start = (at_x ** 2 / kxx.diagonal()).argmax()
        z = x[start].clone().requires_grad_(True)
        opt = torch.optim.LBFGS([z], max_iter=iterations, line_search_fn="strong_wolfe")

        def closure():
            opt.zero_grad()
            loss = -projection(z[None])[0] ** 2 / k(z[None], z[None])[0, 0]
            loss.backward()
            return loss
        opt.step(closure)
        zs.append(z.detach())
        zm = torch.stack(zs)
        beta = torch.linalg.solve(k(zm, zm), k(zm, x) @ a)
        if len(zs) in sizes:
            out.append((zm.numpy(), beta.numpy()))
    return out


class ReducedSetSVM:
    """An SVM of degree `degree` whose 45 decision functions are each replaced by `per_pair` reduced
    set vectors (A23): 45 x per_pair vectors in all, against the SVM's thousands of support vectors."""

    def __init__(self, train_x, train_y, seed=0, degree=5, per_pair=18, c=None, coef0=None):
        self.svm = SVM(train_x, train_y, seed, degree, c, coef0)
        self.expansions = self.reduce(self.svm, [per_pair])[per_pair].expansions

    @classmethod
    def reduce(cls, svm, counts):
        """{count: ReducedSetSVM} of the fitted SVM `svm` with each count of vectors per pair: one greedy
        run per pair to the largest count (the SVM study's report)."""
        counts = sorted(counts)
        out = {n: cls.__new__(cls) for n in counts}
        for n in counts:
            out[n].svm, out[n].expansions = svm, []
        for p in range(len(PAIRS)):
            vectors, coef, bias = svm.pair_expansion(p)
            for n, (z, beta) in zip(counts, reduce_pair(vectors, coef, svm.kernel, counts)):
                out[n].expansions.append((z, beta, bias))
        return out

    def scores(self, images):
        x = versions.pixels(images)
        decisions = torch.stack([self.svm.kernel(x, torch.from_numpy(z)) @ torch.from_numpy(beta) + b
                                 for z, beta, b in self.expansions], 1)
        return ovo_votes(decisions.numpy())

    def parameters(self):
        return sum(z.size + beta.size + 1 for z, beta, _ in self.expansions)

    def macs(self):
        """Per pair, one dot product with each of its own reduced-set vectors (the pairs share none)
        and one multiply-add per weight beta; the kernel's scaling and power not counted."""
        return sum(z.size + beta.size for z, beta, _ in self.expansions)


# ---- virtual support vectors ------------------------------------------------------------------------
def distorted_copies(images, copies, generator):
    """`copies` randomly distorted versions of each uint8 28x28 image (the paper's distortions, as
    LeNet-5's [dist] rows use them), as uint8 28x28: copy k of image i at row k * N + i."""
    x = data.preprocess(images)
    out = torch.cat([distortions.distort(x, generator) for _ in range(copies)])[:, 0, 2:30, 2:30]
    grey = (out - paper.INPUT_BACKGROUND) * (255 / (paper.INPUT_INK - paper.INPUT_BACKGROUND))
    return grey.round().clamp(0, 255).to(torch.uint8)


SHIFTS = ((0, 1), (0, -1), (1, 0), (-1, 0))  # (down, right) in pixels: right, left, down, up


def translated_copies(images):
    """The virtual SVs of Burges & Schoelkopf (1997): each uint8 28x28 image moved by one pixel to the
    right, left, down and up (background enters at the edge), as uint8 28x28: copy k of image i at row
    k * N + i, in the order of SHIFTS."""
    padded = torch.nn.functional.pad(images, (1, 1, 1, 1))
    size = images.shape[-1]
    return torch.cat([padded[:, 1 - dy:1 - dy + size, 1 - dx:1 - dx + size] for dy, dx in SHIFTS])


def first_stage_support(train_x, train_y, degree, c, coef0=0.0, cache_dir=None):
    """Training-set indices of the support vectors of the SVM that the virtual SVs start from. It
    does not depend on the seed (libsvm is deterministic), so with `cache_dir` it is computed once
    and shared by the seeds' processes (a file lock makes the others wait for it)."""
    if cache_dir is None:
        return SVM(train_x, train_y, 0, degree, c, coef0).support()
    import fcntl  # POSIX only: imported where the cache needs it, so that the rest imports anywhere
    cache_dir = Path(cache_dir)
    cache_dir.mkdir(parents=True, exist_ok=True)
    images = hashlib.sha256(train_x.numpy().tobytes()).hexdigest()[:16]  # the data version's images
    path = cache_dir / f"support-poly{degree}-coef0_{coef0:g}-C{c:g}-{images}.npy"
    with open(path.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not path.exists():
            np.save(path.with_suffix(".tmp.npy"), SVM(train_x, train_y, 0, degree, c, coef0).support())
            path.with_suffix(".tmp.npy").replace(path)
        return np.load(path)


class VirtualSVM:
    """Train an SVM, keep its support vectors, add `copies` distorted copies of each (the virtual
    support vectors, made with the paper's distortions: the [dist] of the row, A24), train again.
    virtual="translations": the copies are instead the 4 one-pixel translations (translated_copies)."""

    def __init__(self, train_x, train_y, seed=0, degree=9, copies=4, c=None, coef0=None, cache_dir=None,
                 virtual="distortions"):
        if virtual not in ("distortions", "translations"):
            raise ValueError(f"virtual must be 'distortions' or 'translations', got {virtual!r}")
        if virtual == "translations" and copies != len(SHIFTS):
            raise ValueError(f"the translations make {len(SHIFTS)} copies, got copies={copies}")
        c, coef0 = kernel_options(degree, c, coef0)
        sv = torch.from_numpy(first_stage_support(train_x, train_y, degree, c, coef0, cache_dir).astype(np.int64))
        generator = torch.Generator().manual_seed(seed)
        copied = (distorted_copies(train_x[sv], copies, generator) if virtual == "distortions"
                  else translated_copies(train_x[sv]))
        x = torch.cat([train_x[sv], copied])
        y = train_y[sv].repeat(copies + 1)
        self.svm = SVM(x, y, seed, degree, c, coef0)

    def scores(self, images):
        return self.svm.scores(images)

    def parameters(self):
        return self.svm.parameters()

    def macs(self):
        """The retrained SVM's (SVM.macs)."""
        return self.svm.macs()
