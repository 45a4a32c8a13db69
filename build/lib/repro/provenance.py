"""Which code made a run: the git commit, whether the code differed from it (and a hash of the
difference), a hash of the library's own source, and the software and machine it ran on.

Only changes to the code count (CODE_PATHS): the make targets write results/, RESULTS.md and
README.md, and those must not make the next run look as if it came from modified code. The library
hash is taken from the files under this module's folder, not from git, so it identifies the code that
computed the numbers even outside a git checkout (a source archive, an installed copy)."""
import hashlib
import platform
import subprocess
import sys
import time
from pathlib import Path

CODE_PATHS = ("repro", "experiments", "Makefile", "pyproject.toml")
LIBRARY = Path(__file__).resolve().parent
ROOT = LIBRARY.parent  # the repository: repro/ and pyproject.toml live here


class DirtyTree(RuntimeError):
    """A target that writes results/ was started from code with uncommitted changes."""


def _git(root, *args):
    """stdout of `git args` run in `root` as bytes, or None where git is missing, the folder is not a
    git checkout or the command fails (callers then record "unknown" instead of failing a run)."""
    try:
        done = subprocess.run(["git", *args], cwd=root, capture_output=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout if done.returncode == 0 else None


def _changed_paths(root):
    """Paths (relative to the repository's top level) of modified, staged or untracked-but-not-ignored
    files under CODE_PATHS, and which of them are untracked; None outside a git checkout."""
    out = _git(root, "status", "--porcelain=v1", "-z", "--untracked-files=all", "--", *CODE_PATHS)
    if out is None:
        return None
    changed, untracked = [], []
    entries = iter(out.decode(errors="surrogateescape").split("\0"))
    for entry in entries:
        if not entry:
            continue
        status, path = entry[:2], entry[3:]
        if status[0] in "RC":
            next(entries, None)  # -z puts a rename's or copy's old path in the next entry
        changed.append(path)
        if status == "??":
            untracked.append(path)
    return changed, untracked


def _diff_sha256(root, untracked):
    """sha256 of the tracked changes against HEAD plus the paths and bytes of the untracked files."""
    h = hashlib.sha256(_git(root, "diff", "--binary", "--no-ext-diff", "HEAD", "--", *CODE_PATHS) or b"")
    top = Path((_git(root, "rev-parse", "--show-toplevel") or b"").decode().strip() or root)
    for path in sorted(untracked):
        _hash_file(h, path, top / path)
    return h.hexdigest()


def _hash_file(h, name, path):
    """Add one file to h, with its name and length, so that moving bytes between files changes the hash."""
    try:
        data = path.read_bytes()
    except OSError:  # deleted or unreadable since git listed it
        data = b""
    h.update(name.encode(errors="surrogateescape") + b"\0" + str(len(data)).encode() + b"\0" + data)


def library_sha256(library=LIBRARY):
    """sha256 over the library's source files (*.py, *.c, *.h under repro/, its subpackages included:
    the native code lives in repro/native/) and pyproject.toml beside it: the code that computes the
    numbers, whatever git knows about it."""
    library = Path(library)
    files = sorted(p for pattern in ("*.py", "*.c", "*.h") for p in library.rglob(pattern))
    project = library.parent / "pyproject.toml"
    if project.exists():
        files.append(project)
    h = hashlib.sha256()
    for path in sorted(files, key=lambda p: p.relative_to(library.parent).as_posix()):
        _hash_file(h, path.relative_to(library.parent).as_posix(), path)
    return h.hexdigest()


def code_state(root=None):
    """git_commit, code_dirty, code_changes, code_diff_sha256 of the checkout at `root` (default: this
    repository), and library_sha256 of this library. Outside a git checkout the commit is "unknown"
    and the code counts as clean: there is nothing to compare with, and library_sha256 still names
    the code."""
    root = Path(root) if root is not None else ROOT
    commit = (_git(root, "rev-parse", "HEAD") or b"").decode().strip() or "unknown"
    changed, untracked = _changed_paths(root) or ([], [])
    return dict(git_commit=commit, code_dirty=bool(changed), code_changes=changed,
                code_diff_sha256=_diff_sha256(root, untracked) if changed else None,
                library_sha256=library_sha256())


def cpu_model():
    """The CPU's model name from /proc/cpuinfo (Linux), else what platform reports."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def provenance(device):
    """What a run's meta.json records: software versions, machine, device and code_state()."""
    import numpy
    import torch
    return dict(**code_state(), python=sys.version.split()[0], torch=torch.__version__,
                numpy=numpy.__version__, platform=platform.platform(),
                processor=platform.processor() or platform.machine(), cpu_model=cpu_model(),
                device=str(device), torch_threads=torch.get_num_threads(),
                mkldnn=torch.backends.mkldnn.enabled, started=time.strftime("%Y-%m-%d %H:%M:%S"))


def require_clean_code(target, root=None):
    """Raise DirtyTree when the code has uncommitted changes: results/ must come from a commit."""
    state = code_state(root)
    if state["code_dirty"]:
        raise DirtyTree(f"{target} writes results/ and refuses to run from a tree with uncommitted changes "
                        f"to code: {', '.join(state['code_changes'])}. Commit them first, or pass --scratch "
                        "(make: SCRATCH=1) to write under scratch/ instead.")
