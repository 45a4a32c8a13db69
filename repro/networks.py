"""The other networks of Sec. III-C, as data: LeNet-1, LeNet-4 and the fully connected networks,
made of LeNet-5's layer types (repro/layers.py) and trained by the same recipe (repro/train.py).
repro.model.Network builds them; repro.native's NetworkStep trains them.

Each network names the data version it reads (repro/versions.py), the side of its input field
and its layers from input to output:
    ("conv", maps, kernel, table)  a convolution; `table` lists the input maps of each output
                                   map (None: all of them), like LeNet-5's Table I;
    ("pool", maps)                 trainable 2x2 subsampling; with more maps than its input,
                                   each input map feeds maps / input maps consecutive ones;
    ("full", units)                a full connection;
every layer squashed by the scaled tanh. The last layer has 10 units, and the output compares
them with the place code of each class (+1 for the class's unit, -1 for the others; Sec. II-B
calls it the alternative to LeNet-5's distributed code): a Euclidean RBF on 10 units whose
penalty is the squared distance to those targets, so eq. 8 is the mean-squared error of the
networks of 1989-1995 and eq. 9 adds LeNet-5's competition term. Why these readings and the
arithmetic of each count: PAPER_NOTES.md, A25-A29.
"""
from dataclasses import dataclass

import torch

from . import paper

LENET5 = "lenet5"  # repro.model.LeNet5, the network of Sec. II, not described here

# LeNet-1's H3 (LeCun et al. 1990): 12 maps on the 4 S2 maps through 20 kernels in all. The 1990
# counts (2,578 parameters, 98,442 connections) fix 8 maps on two S2 maps and 4 on one; which ones
# they are is our choice: each S2 map feeds 5 maps (A26).
LENET1_C3 = ((0,), (1,), (2,), (3,), (0, 1), (1, 2), (2, 3), (0, 3), (0, 2), (1, 3), (0, 2), (1, 3))

# LeNet-4's C3: 16 maps on the 8 S2 maps, three each, so that the network has about 260,000
# connections as Sec. III-C.8 says (A27). Maps 0-7 see three neighbours, maps 8-15 three spread
# maps; each S2 map feeds 6 maps.
LENET4_C3 = tuple(tuple(sorted({o % 8, (o + 1) % 8, (o + 2) % 8})) for o in range(8)) + \
    tuple(tuple(sorted({o % 8, (o + 3) % 8, (o + 5) % 8})) for o in range(8))


@dataclass(frozen=True)
class Spec:
    what: str
    version: str  # repro.versions: "regular", "deslant" or "16x16"
    field: int  # side of the input layer; the version's images are centred in it
    layers: tuple  # (name, layer spec), input to output
    # the output's targets: "place", the place code on the last layer's 10 units; "bitmaps", LeNet-5's
    # 7x12 prototypes on its 84 units (Sec. II-B, repro/prototypes.py)
    output: str = "place"


def mlp(*hidden):
    """Fully connected layers fc1, fc2, ...: the hidden units, then the 10 outputs."""
    return tuple((f"fc{i + 1}", ("full", n)) for i, n in enumerate((*hidden, 10)))


NETWORKS = {
    "lenet1": Spec("LeNet-1 (LeCun et al. 1990): 16x16 digits in a 28x28 field", "16x16", 28, (
        ("c1", ("conv", 4, 5, None)), ("s2", ("pool", 4)), ("c3", ("conv", 12, 5, LENET1_C3)), ("s4", ("pool", 12)),
        ("f5", ("full", 10)))),
    "lenet4": Spec("LeNet-4: 4 maps, 8 subsampling maps in pairs, 16 maps, 16, 120 units, 10", "regular", 32, (
        ("c1", ("conv", 4, 5, None)), ("s2", ("pool", 8)), ("c3", ("conv", 16, 5, LENET4_C3)), ("s4", ("pool", 16)),
        ("f5", ("full", 120)), ("f6", ("full", 10)))),
    # the head study (PAPER_NOTES, "The head study"): each network's layers with the other's head
    "lenet5-place": Spec("LeNet-5's layers, C5's 120 units feeding 10 place-code units (LeNet-4's head)", "regular", 32, (
        ("c1", ("conv", 6, 5, None)), ("s2", ("pool", 6)), ("c3", ("conv", 16, 5, paper.C3_TABLE)), ("s4", ("pool", 16)),
        # C5 as a full connection of S4's 16 x 5 x 5 units: the same function as its 5x5 convolution
        # on a 5x5 input, which the generic native step computes several times slower
        ("c5", ("full", 120)), ("f6", ("full", 10)))),
    "lenet4-rbf": Spec("LeNet-4's layers, then F6's 84 units and LeNet-5's RBF output (LeNet-5's head)", "regular", 32, (
        ("c1", ("conv", 4, 5, None)), ("s2", ("pool", 8)), ("c3", ("conv", 16, 5, LENET4_C3)), ("s4", ("pool", 16)),
        ("f5", ("full", 120)), ("f6", ("full", 84))), output="bitmaps"),
    "mlp-300": Spec("28x28-300-10", "regular", 28, mlp(300)),
    "mlp-1000": Spec("28x28-1000-10", "regular", 28, mlp(1000)),
    "mlp-300-100": Spec("28x28-300-100-10", "regular", 28, mlp(300, 100)),
    "mlp-500-150": Spec("28x28-500-150-10", "regular", 28, mlp(500, 150)),
    "mlp-300-deslant": Spec("20x20-300-10 on the deslanted images", "deslant", 20, mlp(300)),
    # a finding (make compare-findings): the 28x28 networks see the distorted 32x32 field cropped to its
    # centre, and a distorted digit can lose ink to the crop; in the whole field it loses none
    "mlp-300-field32": Spec("32x32-300-10: the digits in LeNet-5's 32x32 field", "regular", 32, mlp(300)),
}


def get(name):
    if name not in NETWORKS:
        raise ValueError(f"unknown network {name!r}; networks: {', '.join((LENET5, *NETWORKS))}")
    return NETWORKS[name]


def place_code(classes=10):
    """The targets of the 10 output units: +1 for the class's own unit, -1 for the others."""
    return 2 * torch.eye(classes) - 1


# The rows of Fig. 9 (repro.paper.FIG9_ERROR's names) that one trained network makes: its network
# and distortions ("paper": LeNet-5's distorted training set of 600,000 patterns, Sec. III-C).
ROWS = {
    "mlp-300": ("mlp-300", "none"), "mlp-300-dist": ("mlp-300", "paper"), "mlp-300-deslant": ("mlp-300-deslant", "none"),
    "mlp-1000": ("mlp-1000", "none"), "mlp-1000-dist": ("mlp-1000", "paper"),
    "mlp-300-100": ("mlp-300-100", "none"), "mlp-300-100-dist": ("mlp-300-100", "paper"),
    "mlp-500-150": ("mlp-500-150", "none"), "mlp-500-150-dist": ("mlp-500-150", "paper"),
    "lenet1": ("lenet1", "none"), "lenet4": ("lenet4", "none"),
}
# LeNet-5's rows: make reproduce and make distortions train them and make compare reads them; a
# finding of make compare-findings trains one with a change
LENET5_ROWS = {"lenet5": (LENET5, "none"), "lenet5-dist": (LENET5, "paper")}

