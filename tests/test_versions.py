"""The data versions of Sec. III-C (repro/versions.py), on strokes whose answer is known: deslanting
makes them upright, the 16x16 version keeps the digit box, bad images are a clear error."""
import pytest
import torch

from repro import versions


def stroke(slope, side=28, width=1.5):
    """A vertical bar through the centre, sheared so that x = 14 + slope (y - 14): uint8 (side, side)."""
    y, x = torch.meshgrid(torch.arange(side, dtype=torch.float64), torch.arange(side, dtype=torch.float64), indexing="ij")
    centre = side / 2 + slope * (y - side / 2)
    ink = ((x - centre).abs() < width) & ((y - side / 2).abs() < 8)
    return (ink * 255).to(torch.uint8)


def test_deslant_makes_a_sheared_stroke_upright():
    images = torch.stack([stroke(s) for s in (-0.4, 0.0, 0.3)])
    assert versions.slant(images).tolist() == pytest.approx([-0.4, 0.0, 0.3], abs=0.02)
    upright = versions.deslant(images)
    assert upright.shape == (3, 20, 20) and upright.dtype == torch.uint8
    assert versions.slant(upright).abs().max() < 0.02
    def ink_columns(im):  # columns holding at least a tenth of the fullest column's ink
        c = im.double().sum(1)
        return (c > 0.1 * c.max(1, keepdim=True).values).sum(1)
    assert ink_columns(images[:, versions.BOX, versions.BOX])[[0, 2]].min() >= 7  # slanted: spread out
    assert ink_columns(upright).max() <= 5  # upright: the bar's 3 columns and interpolation's edges


def test_deskew_is_deslant_not_cropped():
    """The MNIST page's deskewing: the same shear about the centre of mass, at 28x28, so strokes that
    lean out of the central 20x20 box keep their ink."""
    images = torch.stack([stroke(s) for s in (-0.4, 0.0, 0.3)])
    upright = versions.deskew(images)
    assert upright.shape == (3, 28, 28) and upright.dtype == torch.uint8
    assert torch.equal(upright[:, versions.BOX, versions.BOX], versions.deslant(images))
    assert versions.slant(upright).abs().max() < 0.02
    ink = lambda im: im.double().sum((1, 2)) / 255
    assert torch.allclose(ink(upright), ink(images), rtol=0.02)


def test_16x16_keeps_the_digit_box():
    images = torch.stack([stroke(0.0)])
    small = versions.reduce16(images)
    assert small.shape == (1, 16, 16) and small.dtype == torch.uint8
    ink = lambda im: im.double().sum().item() / 255
    assert ink(small) == pytest.approx(ink(images) * (16 / 20) ** 2, rel=0.05)  # the area scales, the ink stays


def test_versions_reject_bad_input():
    with pytest.raises(ValueError, match="unknown data version"):
        versions.make("deskewed", torch.zeros(1, 28, 28, dtype=torch.uint8))
    with pytest.raises(ValueError, match=r"regular version has uint8 images of shape \(N, 28, 28\)"):
        versions.deslant(torch.zeros(2, 32, 32, dtype=torch.uint8))
    with pytest.raises(ValueError, match="uint8"):
        versions.reduce16(torch.zeros(2, 28, 28))
