"""The hand-written CPU step (lenet5_step.c): built with the system C compiler on first use, loaded
with ctypes, and wrapped with the signature of the steps in repro.step.

Same mathematics as the eager step, other code: the online step of every network repro.config
builds (both activations, the three kinds of subsampling, any C3 table, both heads, the three
losses) and its forward pass for evaluation. One build per machine and number type, cached by a hash
of the source and flags in $XDG_CACHE_HOME/repro-lenet5 (default ~/.cache). `-march=native`: the
library is built for this CPU, so numbers are reproducible on the same machine, as everywhere in
this project. No -ffast-math: NaN must stay NaN so that training can stop on it; only the
reassociation the compiler needs to vectorise sums is allowed.
"""
import ctypes
import hashlib
import os
import platform
import subprocess
import tempfile
from pathlib import Path

import torch

from . import paper
from .model import check_input

SOURCE = Path(__file__).with_name("lenet5_step.c")
FLAGS = ["-O3", "-march=native", "-fno-math-errno", "-fassociative-math", "-fno-signed-zeros",
         "-fno-trapping-math", "-fopenmp-simd", "-fPIC", "-shared"]
LIBS = ["-lmvec", "-lm"]  # glibc's vector tanh
SLOTS = ("c1.weight", "c1.bias", "s2.weight", "s2.bias", "c3.weight", "c3.bias", "s4.weight", "s4.bias",
         "c5.weight", "c5.bias", "f6.weight", "f6.bias", "output.weight", "output.bias")  # the C enum's order
CODES = dict(activation={"scaled_tanh": 0, "relu": 1}, subsampling={"trainable": 0, "average": 1, "max": 2},
             output={"rbf": 0, "linear": 1}, loss={"map": 0, "ml": 1, "ce": 2})
TYPES = {torch.float32: ("float", ctypes.c_float), torch.float64: ("double", ctypes.c_double)}
_LIBRARIES = {}


class NativeUnavailable(RuntimeError):
    pass


def cache_dir():
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "repro-lenet5"


def library(dtype):
    """The compiled library for `dtype` (float32 or float64), built now if this machine has none."""
    if dtype not in TYPES:
        raise NativeUnavailable(f"the native step computes in float32 or float64, not {dtype}")
    if dtype in _LIBRARIES:
        return _LIBRARIES[dtype]
    if platform.system() != "Linux":
        raise NativeUnavailable(f"the native step is built for Linux, not {platform.system()}")
    real = TYPES[dtype][0]
    command = [os.environ.get("CC", "gcc"), *FLAGS, f"-DREAL={real}"]
    key = hashlib.sha256(SOURCE.read_bytes() + " ".join(command).encode() + platform.machine().encode())
    path = cache_dir() / f"lenet5_step_{real}_{key.hexdigest()[:16]}.so"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=path.parent) as tmp:  # built aside, then moved: processes may race
            out = Path(tmp) / path.name
            try:
                done = subprocess.run([*command, str(SOURCE), "-o", str(out), *LIBS], capture_output=True, text=True)
            except OSError as e:
                raise NativeUnavailable(f"no C compiler ({e})") from e
            if done.returncode:
                raise NativeUnavailable(f"building {SOURCE.name} failed: {done.stderr.strip()[:300]}")
            os.replace(out, path)
    lib = ctypes.CDLL(str(path))
    lib.lenet5_block.restype = None
    _LIBRARIES[dtype] = lib
    return lib


class NativeStep:
    """step(params, eps, xs, labels) -> (losses, penalties), as repro.step's steps; forward(params, x)
    -> penalties. Parameters are updated in place through their storage; the number type is that of
    the tensors given (float32 for training, float64 for the tests)."""
    kind = "native"

    def __init__(self, template):
        self.config = template.config
        pairs = [(m, i) for m, inputs in enumerate(template.c3.table) for i in inputs]
        self.pair_out = torch.tensor([m for m, _ in pairs], dtype=torch.int32)
        self.pair_in = torch.tensor([i for _, i in pairs], dtype=torch.int32)
        self.prototypes = template.output.prototypes if self.config.output == "rbf" else None
        scale = getattr(template.s2, "scale", None)  # the 1/4 of averaging, a buffer of the layer (none for max)
        self.pool_scale = float(scale) if scale is not None else 1.0
        self._nets = {}
        self._net(torch.float32)  # build now, so that a missing compiler shows at once

    def _net(self, dtype):
        """(library, network description) for computing in `dtype`."""
        if dtype not in self._nets:
            lib, real, c = library(dtype), TYPES[dtype][1], self.config

            class Net(ctypes.Structure):
                _fields_ = [("act", ctypes.c_int), ("pool", ctypes.c_int), ("head", ctypes.c_int),
                            ("loss", ctypes.c_int), ("pairs", ctypes.c_int), ("squash_a", real), ("squash_s", real),
                            ("pool_scale", real), ("j", real),
                            ("pair_out", ctypes.c_void_p), ("pair_in", ctypes.c_void_p), ("prototypes", ctypes.c_void_p)]

            prototypes = self.prototypes.to(dtype).contiguous() if self.prototypes is not None else None
            net = Net(CODES["activation"][c.activation], CODES["subsampling"][c.subsampling], CODES["output"][c.output],
                      CODES["loss"][c.loss], len(self.pair_out), paper.SQUASH_A, paper.SQUASH_S, self.pool_scale,
                      float(c.j), self.pair_out.data_ptr(), self.pair_in.data_ptr(),
                      prototypes.data_ptr() if prototypes is not None else None)
            self._nets[dtype] = (lib, net, prototypes)  # the tensors the struct points into stay alive here
        return self._nets[dtype][:2]

    def _pointers(self, tensors, dtype):
        slots = (ctypes.c_void_p * len(SLOTS))()
        for k, t in tensors.items():
            if t.dtype != dtype or t.device.type != "cpu" or not t.is_contiguous():
                raise ValueError(f"native step: {k} must be a contiguous CPU {dtype} tensor, got {t.dtype} on {t.device}")
            slots[SLOTS.index(k)] = t.data_ptr()
        return slots

    def _run(self, params, eps, xs, labels, train):
        check_input(xs)
        dtype = next(iter(params.values())).dtype
        lib, net = self._net(dtype)
        xs = xs.to(dtype).contiguous()
        n = len(xs)
        losses, outs = xs.new_empty(n), xs.new_empty(n, 10)
        if labels is not None:
            labels = labels.to(torch.int64).contiguous()
        with torch.no_grad():
            lib.lenet5_block(ctypes.byref(net), self._pointers(params, dtype),
                             self._pointers(eps, dtype) if eps is not None else None, ctypes.c_void_p(xs.data_ptr()),
                             ctypes.c_void_p(labels.data_ptr() if labels is not None else None), ctypes.c_int(n),
                             ctypes.c_int(train), ctypes.c_void_p(losses.data_ptr()), ctypes.c_void_p(outs.data_ptr()))
        return losses, outs

    def __call__(self, params, eps, xs, labels):
        return self._run(params, eps, xs, labels, 1)

    def forward(self, params, x):
        return self._run(params, None, x, None, 0)[1]
