"""The versions of MNIST that Sec. III-A describes, made from the verified 28x28 files: pure
transforms of the images (repro.data.load_version reads the files and applies them).

- regular: the MNIST files themselves (digits size-normalised into a 20x20 box, centred by their
  centre of mass in a 28x28 field);
- deslant: each image sheared horizontally, row by row, until the principal axis of its ink is
  vertical (second moments of inertia), then cropped to 20x20 (PAPER_NOTES, A14);
- 16x16: the central 20x20 box reduced to 16x16 (PAPER_NOTES, A15);
- deskew: the same shear as deslant, about the centre of mass, kept at 28x28 (not cropped): the
  "deskewing" that the MNIST page, not the paper, lists for the SVMs and the pairwise classifier
  (the SVM study, PAPER_NOTES).

Every version is uint8 with 0 as background, as the files are, so that memory counts (a byte per
pixel, Fig. 12) and the classifiers see the same kind of data whatever the version.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

VERSIONS = {"regular": 28, "deslant": 20, "16x16": 16, "deskew": 28}  # version -> side of its images
BOX = slice(4, 24)  # MNIST's 20x20 box: the digits are centred by their mass at (14, 14) of 28x28


def side_of(version):
    """The side of a version's images, with one clear error for an unknown version."""
    if version not in VERSIONS:
        raise ValueError(f"unknown data version {version!r}; versions: {', '.join(VERSIONS)}")
    return VERSIONS[version]


def check(images, version="regular"):
    """One clear error unless `images` are the version's: uint8 (N, side, side)."""
    side = side_of(version)
    if not isinstance(images, torch.Tensor) or images.dtype != torch.uint8 \
            or images.ndim != 3 or tuple(images.shape[1:]) != (side, side):
        desc = (f"{images.dtype} tensor of shape {tuple(images.shape)}"
                if isinstance(images, torch.Tensor) else type(images).__name__)
        raise ValueError(f"the {version} version has uint8 images of shape (N, {side}, {side}); got {desc}")


def pixels(images: torch.Tensor) -> torch.Tensor:
    """Images as float64 rows, pixels scaled to [0, 1] (what most classical methods take)."""
    return images.reshape(len(images), -1).to(torch.float64) / 255


def centre_of_mass(x: torch.Tensor):
    """(ybar, xbar) of float64 images (N, H, W), grey levels as mass: float64 (N, 1, 1) each."""
    n, h, w = x.shape
    ys = torch.arange(h, dtype=torch.float64).view(1, h, 1)
    xs = torch.arange(w, dtype=torch.float64).view(1, 1, w)
    mass = x.sum((1, 2)).clamp_min(1e-12)
    return (x * ys).sum((1, 2)).div(mass).view(n, 1, 1), (x * xs).sum((1, 2)).div(mass).view(n, 1, 1)


def slant(images: torch.Tensor) -> torch.Tensor:
    """mu11 / mu02 of each image's ink (grey levels as mass, y downwards): the horizontal shift per
    row that the principal axis makes. float64 (N,). An empty image has slant 0.

    The central moments come from raw moments that are exact integer sums (grey levels times pixel
    coordinates, all below 2^53), so the result does not depend on the order in which a CPU's
    vector code adds them: the same bits on every machine."""
    x = images.to(torch.float64)
    _, h, w = x.shape
    ys = torch.arange(h, dtype=torch.float64).view(1, h, 1)
    xs = torch.arange(w, dtype=torch.float64).view(1, 1, w)
    s, sx, sy = x.sum((1, 2)), (x * xs).sum((1, 2)), (x * ys).sum((1, 2))
    sxy, syy = (x * xs * ys).sum((1, 2)), (x * ys * ys).sum((1, 2))
    mass = s.clamp_min(1)
    mu11, mu02 = sxy - sx * sy / mass, syy - sy * sy / mass
    return torch.where(mu02 > 0, mu11 / mu02.clamp_min(1e-12), torch.zeros_like(mu02))


def shear(images: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
    """Row y of image i shifted horizontally by -s_i (y - ybar_i): the principal axis of slope s_i
    becomes vertical. Linear interpolation along the row, background outside; float64 (N, H, W)."""
    x = images.to(torch.float64)
    n, h, w = x.shape
    ys = torch.arange(h, dtype=torch.float64).view(1, h, 1)
    ybar, _ = centre_of_mass(x)
    source = torch.arange(w, dtype=torch.float64).view(1, 1, w) + s.view(n, 1, 1) * (ys - ybar)  # x' -> x
    left = source.floor()
    frac = source - left
    padded = F.pad(x, (1, 1))  # background on both sides; index 0 is column -1
    def at(col):
        idx = (col + 1).clamp(0, w + 1).long()
        inside = (col >= -1) & (col <= w)
        return torch.where(inside, padded.gather(2, idx.expand(n, h, w)), torch.zeros(()).double())
    return (1 - frac) * at(left) + frac * at(left + 1)


def deslant(images: torch.Tensor) -> torch.Tensor:
    """The deslanted version: (N, 28, 28) uint8 -> (N, 20, 20) uint8."""
    return deskew(images)[:, BOX, BOX]


def deskew(images: torch.Tensor) -> torch.Tensor:
    """The deskewed version: (N, 28, 28) uint8 -> (N, 28, 28) uint8, upright about the centre of mass."""
    check(images)
    return shear(images, slant(images)).round().clamp(0, 255).to(torch.uint8)


def reduce16(images: torch.Tensor) -> torch.Tensor:
    """The 16x16 version: the 20x20 box reduced with an antialiased bilinear (triangle) filter, (N, 16,
    16) uint8. The filter is applied row by row and column by column as a fixed sequence of
    elementwise multiply-adds (filter_weights), each rounded once, so that no CPU's kernels enter the
    result."""
    check(images)
    box = images[:, BOX, BOX].to(torch.float64)
    weights = filter_weights(box.shape[-1], 16)
    rows = torch.stack([sum(w * box[:, j] for j, w in enumerate(weights[i])) for i in range(16)], 1)
    out = torch.stack([sum(w * rows[:, :, j] for j, w in enumerate(weights[i])) for i in range(16)], 2)
    return out.round().clamp(0, 255).to(torch.uint8)


def filter_weights(size, out):
    """(out, size) float64: the antialiased bilinear reduction of `size` samples to `out` (PyTorch's
    F.interpolate(..., mode="bilinear", antialias=True, align_corners=False)): a triangle of
    half-width size / out around each output's centre, normalised to sum 1, from Python floats."""
    scale = size / out
    table = []
    for i in range(out):
        centre = (i + 0.5) * scale
        raw = [max(0.0, 1 - abs((j + 0.5 - centre) / scale)) for j in range(size)]
        table.append([v / sum(raw) for v in raw])
    return torch.tensor(table, dtype=torch.float64)


def make(version: str, images: torch.Tensor) -> torch.Tensor:
    """The images in one of VERSIONS."""
    side_of(version)
    if version == "regular":
        check(images)
        return images
    return {"deslant": deslant, "deskew": deskew, "16x16": reduce16}[version](images)
