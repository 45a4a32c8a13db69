"""Classify digit images with a published network:

    python -m repro.predict digit.png scans/ --model paper --seed 0 [--show]

Each file (PNG, JPEG, ...; a folder stands for the images in it) holds one digit of any size, dark
on light or light on dark. It is normalised as MNIST's digits were (LeCun et al., the MNIST page):
the digit's bounding box scaled to fit 20x20 keeping its aspect ratio (anti-aliased), placed in a
28x28 field so that its centre of mass lies at the centre; then the paper's padding to 32x32 and
scaling (repro.data.preprocess). One line per image: `<path>: <digit> (top-two gap ...)`, the gap
between the two best scores being the paper's confidence (Fig. 10: a small gap is a doubtful digit).
"""
import argparse
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from .data import preprocess
from .rejection import top_two_gap
from .weights import pretrained

SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")
BOX, FIELD = 20, 28  # MNIST: the digit fits a 20x20 box, centred by its mass in 28x28
INK = 0.25  # a pixel is part of the digit's bounding box above this share of the darkest ink


def normalise(image: Image.Image) -> torch.Tensor:
    """One digit image as MNIST's (28, 28) uint8: ink high, background 0, box 20x20, centred by mass."""
    x = np.asarray(image.convert("L"), dtype=np.float64)
    border = np.concatenate([x[0], x[-1], x[:, 0], x[:, -1]])
    background = np.median(border)
    if background > 127:  # dark ink on a light page: MNIST's ink is the high value
        x, background = 255 - x, 255 - background
    x = np.clip(x - background, 0, None)
    if x.max() <= 0:
        raise ValueError("no digit: the image is blank")
    x = x * (255 / x.max())
    rows, cols = np.nonzero(x > INK * 255)
    x = x[rows.min():rows.max() + 1, cols.min():cols.max() + 1]
    h, w = x.shape
    scale = BOX / max(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    box = np.asarray(Image.fromarray(x.astype(np.float32), mode="F").resize(size, Image.Resampling.LANCZOS))
    box = np.clip(box, 0, 255)
    field = np.zeros((FIELD, FIELD))
    total = box.sum()
    cy = (box.sum(1) * np.arange(box.shape[0])).sum() / total
    cx = (box.sum(0) * np.arange(box.shape[1])).sum() / total
    top = int(np.clip(round(FIELD / 2 - cy), 0, FIELD - box.shape[0]))
    left = int(np.clip(round(FIELD / 2 - cx), 0, FIELD - box.shape[1]))
    field[top:top + box.shape[0], left:left + box.shape[1]] = box
    return torch.from_numpy(np.round(field).astype(np.uint8))


def image_files(paths):
    """The files named, with each folder replaced by its images (sorted)."""
    out = []
    for p in map(Path, paths):
        if p.is_dir():
            out += sorted(f for f in p.iterdir() if f.suffix.lower() in SUFFIXES)
        elif p.exists():
            out.append(p)
        else:
            raise FileNotFoundError(f"{p}: no such file or folder")
    return out


def ascii_art(digit):
    shades = " .:-=+*#%@"
    return "\n".join("".join(shades[int(v) * (len(shades) - 1) // 255] for v in row) for row in digit.tolist())


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m repro.predict", description=__doc__, allow_abbrev=False,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("paths", nargs="+", metavar="FILE", help="digit images, or folders of them")
    ap.add_argument("--model", default="paper", help="the published variant (default: paper, the faithful recipe)")
    ap.add_argument("--seed", type=int, default=0, help="which seed's network (default 0)")
    ap.add_argument("--show", action="store_true", help="print each normalised 28x28 digit")
    args = ap.parse_args(argv)
    try:
        files = image_files(args.paths)
        net = pretrained(args.model, args.seed)
    except (FileNotFoundError, ValueError) as e:
        ap.error(str(e))
    if not files:
        ap.error("no image files found")
    status = 0
    for f in files:
        try:
            with Image.open(f) as image:
                digit = normalise(image)
        except (UnidentifiedImageError, OSError, ValueError) as e:
            print(f"{f}: cannot read a digit ({e})", file=sys.stderr)
            status = 1
            continue
        scores = net.scores(preprocess(digit.unsqueeze(0)))
        print(f"{f}: {int(scores.argmax(1))} (top-two gap {top_two_gap(scores).item():.1f})")
        if args.show:
            print(ascii_art(digit))
    return status


if __name__ == "__main__":
    sys.exit(main())
