"""Random planar affine distortions (Sec. III-C): "horizontal and vertical translations, scaling,
squeezing (simultaneous horizontal compression and vertical elongation, or the reverse), and
horizontal shearing". The paper gives no ranges; ours are in RANGES and PAPER_NOTES.md says why.

Each distortion maps an output pixel (x, y), centred on the 32x32 field, to the input point
    A^-1 ((x, y) - t),   A = s [[q, 0], [0, 1/q]] [[1, h], [0, 1]],
with translation t, scale s, squeeze q and shear h drawn uniformly and independently per image.
The image is resampled bilinearly (as `grid_sample` does); what comes from outside the field is
background. The matrices are computed in float64 from elementwise operations only (a 2x2 inverse in
closed form, no LAPACK), and the resampling is done by the native code (repro/native/), so the
distorted images have the same bits on every x86-64 CPU; without a C compiler `grid_sample` does it,
with a warning. 540,000 images take seconds.
"""
import warnings

import torch
import torch.nn.functional as F

from . import paper
from .native import NativeUnavailable, distort_images

RANGES = dict(  # A11 (PAPER_NOTES.md): the paper gives no ranges
    translate=2.0,  # pixels, each axis: the 28x28 digit box has 2 pixels of margin in the 32x32 field
    scale=0.15,  # s in [0.85, 1.15]: MNIST digits are size-normalised to a 20x20 box
    squeeze=0.15,  # q in [0.85, 1.15]: width x q, height / q
    shear=0.3,  # h in [-0.3, 0.3]: x + h y, a slant of up to about 17 degrees
)


# config.distortion_ranges. "small" (the recipe study, PAPER_NOTES): the centres of mass of MNIST's test
# digits span 1 pixel per axis (0.5-99.5%), so a translation of +-2 pixels moves 3 in 4 distorted training
# digits outside that span and +-0.5 pixels 1 in 4; the other ranges halved. "huge" (a finding of make
# compare-findings, after the MNIST page's "LeNet-5, huge distortions", which gives no ranges): twice
# A11's scale, squeeze and shear, and translations of +-3 pixels, the most that keeps a 20x20 digit at
# scale 1.3 inside the 32x32 field
RANGE_SETS = {"a11": RANGES, "small": dict(translate=0.5, scale=0.075, squeeze=0.075, shear=0.15),
              "huge": dict(translate=3.0, scale=0.3, squeeze=0.3, shear=0.6)}


def random_affine(n, generator, ranges=RANGES):
    """(n, 2, 3) `affine_grid` matrices (output -> input, normalised coordinates) of n random distortions."""
    u = lambda: torch.rand(n, generator=generator, dtype=torch.float64) * 2 - 1
    t = torch.stack([u(), u()], 1) * ranges["translate"] * 2 / paper.INPUT_SIZE  # pixels -> [-1, 1] units
    s, q, h = 1 + u() * ranges["scale"], 1 + u() * ranges["squeeze"], u() * ranges["shear"]
    # A = [[a, b], [0, d]] with a = s q, b = s q h, d = s / q; its inverse is [[1/a, -b/(a d)], [0, 1/d]]
    a, b, d = s * q, s * q * h, s / q
    inverse = torch.zeros(n, 2, 2, dtype=torch.float64)
    inverse[:, 0, 0], inverse[:, 0, 1], inverse[:, 1, 1] = 1 / a, -b / (a * d), 1 / d
    shift = torch.stack([-(inverse[:, 0, 0] * t[:, 0] + inverse[:, 0, 1] * t[:, 1]), -(inverse[:, 1, 1] * t[:, 1])], 1)
    return torch.cat([inverse, shift.unsqueeze(-1)], 2)


@torch.no_grad()
def distort(images, generator, ranges=RANGES, batch=10_000):
    """Randomly distorted copies of `images` (N, 1, 32, 32) in the paper's scaling; same shape."""
    if images.dim() != 4 or images.shape[1:] != (1, paper.INPUT_SIZE, paper.INPUT_SIZE):
        raise ValueError(f"distort expects images of shape (N, 1, {paper.INPUT_SIZE}, {paper.INPUT_SIZE}), "
                         f"got {tuple(images.shape)}")
    theta = random_affine(len(images), generator, ranges)
    if images.dtype == torch.float32 and images.device.type == "cpu":
        try:
            return distort_images(images, theta, paper.INPUT_BACKGROUND)
        except NativeUnavailable as e:
            warnings.warn(f"distortions by grid_sample: the native code is unavailable ({e})", RuntimeWarning)
    return resample(images, theta, batch)


def resample(images, theta, batch=10_000):
    """`grid_sample`'s bilinear resampling by theta (N, 2, 3): the reference for the native code."""
    out = torch.empty_like(images)
    for i in range(0, len(images), batch):
        x = images[i:i + batch] - paper.INPUT_BACKGROUND  # background 0, so padding with zeros is background
        grid = F.affine_grid(theta[i:i + batch].to(x), list(x.shape), align_corners=False)
        out[i:i + batch] = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros",
                                         align_corners=False) + paper.INPUT_BACKGROUND
    return out


def ink_outside(images, side):
    """The share of each image's ink (above background) outside the central side x side box of its
    field, images (N, 1, F, F) in the paper's scaling: what a network with side x side inputs, which
    sees the distorted 32x32 field cropped (repro.train.crop), never sees. float64 (N,)."""
    ink = (images[:, 0] - paper.INPUT_BACKGROUND).clamp_min(0).double()  # in their own precision: background is 0
    m = (images.shape[-1] - side) // 2
    total = ink.sum((1, 2))
    inside = ink[:, m:m + side, m:m + side].sum((1, 2))
    return torch.where(total > 0, 1 - inside / total.clamp_min(1e-12), torch.zeros_like(total))


def distorted_pool(images, copies, generator, ranges=RANGES):
    """The paper's distorted training set: the originals, then `copies` distorted copies of each
    (pattern k >= N is a copy of original k mod N)."""
    n = len(images)
    pool = torch.empty((copies + 1) * n, *images.shape[1:], dtype=images.dtype)
    pool[:n] = images
    for k in range(1, copies + 1):
        pool[k * n:(k + 1) * n] = distort(images, generator, ranges)
    return pool
