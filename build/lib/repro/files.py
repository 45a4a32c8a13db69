"""The files a run writes and reads back: written atomically under a name no other process uses,
checked by a SHA-256 of their contents when read, and one trainer per run folder at a time.

torch.load verifies nothing: a flipped byte in a checkpoint loads without a word (a weight of 2.5e38,
or a slightly different resume). Every checkpoint and published weights file therefore carries
`sha256`, a digest of everything else it holds (tensors by dtype, shape and bytes; numbers by their
exact repr), and load_checked() refuses a file whose contents no longer match it.
"""
import csv
import fcntl
import hashlib
import os
import pickle
import zipfile
from contextlib import contextmanager
from pathlib import Path

import torch


class CorruptFile(RuntimeError):
    """A checkpoint or weights file that cannot be read, or whose contents do not match its SHA-256."""


def digest(obj):
    """SHA-256 (hex) of nested dicts, lists and tuples of tensors, numbers, strings, bools and None."""
    h = hashlib.sha256()
    _feed(h, obj)
    return h.hexdigest()


def _feed(h, obj):
    if isinstance(obj, torch.Tensor):
        t = obj.detach().cpu().contiguous()
        h.update(f"T{t.dtype}{tuple(t.shape)}".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    elif isinstance(obj, dict):
        h.update(f"D{len(obj)}".encode())
        for k, v in obj.items():
            _feed(h, k)
            _feed(h, v)
    elif isinstance(obj, (list, tuple)):
        h.update(f"L{len(obj)}".encode())
        for v in obj:
            _feed(h, v)
    elif obj is None or isinstance(obj, (bool, int, float, str)):
        h.update(f"{type(obj).__name__}:{obj!r};".encode())
    else:
        raise TypeError(f"digest: cannot hash a {type(obj).__name__}")


def temporary(path):
    """A temporary name beside `path` that no other process or thread writes (writers that share
    one name remove each other's files)."""
    return Path(f"{path}.{os.getpid()}.{os.urandom(4).hex()}.tmp")


def atomic_save(obj, path):
    """torch.save(obj) to `path` with its SHA-256 added under "sha256", atomically."""
    if "sha256" in obj:
        raise ValueError("atomic_save adds the key 'sha256' itself")
    tmp = temporary(path)
    try:
        torch.save({**obj, "sha256": digest(obj)}, tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def load_checked(path, remedy, map_location=None):
    """The dict atomic_save wrote to `path`, without its "sha256", after checking it. A file that
    cannot be read, lacks the digest or no longer matches it raises CorruptFile naming the file and
    `remedy` (what to delete or rerun)."""
    path = Path(path)
    try:
        obj = torch.load(path, map_location=map_location, weights_only=True)
    except (RuntimeError, EOFError, OSError, pickle.UnpicklingError, zipfile.BadZipFile, ValueError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise CorruptFile(f"{path} cannot be read ({first}): it is truncated or damaged; {remedy}") from None
    if not isinstance(obj, dict) or "sha256" not in obj:
        raise CorruptFile(f"{path} carries no SHA-256 of its contents (written by older code, or not by this "
                          f"library); {remedy}")
    stored = obj.pop("sha256")
    if digest(obj) != stored:
        raise CorruptFile(f"{path} does not match the SHA-256 it carries: its contents are damaged; {remedy}")
    return obj


def write_rows(path, fields, rows):
    """A CSV of `rows` (dicts) with the columns `fields`, atomically."""
    tmp = temporary(path)
    try:
        with open(tmp, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=fields, extrasaction="ignore")
            w.writeheader()
            w.writerows(rows)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


@contextmanager
def run_lock(run_dir, say=None):
    """Hold the run folder's lock: a second process training the same folder waits (and then finds
    the run finished, or resumes it) instead of writing the same files at the same time. `say(text)`
    is told when it has to wait."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    with open(run_dir / "train.lock", "w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if say is not None:
                say(f"waiting for the other process that trains {run_dir}")
            fcntl.flock(lock, fcntl.LOCK_EX)
        yield
