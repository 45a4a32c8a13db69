"""One typed configuration whose defaults are the recipe `make reproduce` runs; variants are small
tables of overrides, not copies of code.

Each field names the paper's choice first. Where the faithful recipe departs from the text, the
field's comment says so and `paper-literal` sets the text's value. A1..A13 are the assumptions of
PAPER_NOTES.md ("Ambiguities"), with the reason for each choice and the run that tests it.
"""
import math

import numpy
from dataclasses import asdict, dataclass, fields, replace
from numbers import Integral, Real

from . import networks, paper

CHOICES = {
    "network": (networks.LENET5, *networks.NETWORKS),
    "activation": ("scaled_tanh", "relu"),
    "subsampling": ("trainable", "average", "max"),
    "subsampling_input": ("sum", "average"),
    "c3": ("table", "full"),
    "output": ("rbf", "linear"),
    "prototypes": ("bitmaps", "distant"),
    "init": ("paper", "default"),
    "bias_init": ("uniform", "zero"),
    "subsampling_init": ("uniform", "one", "authors"),
    "input": ("paper", "unit", "standardized"),
    "loss": ("map", "ml", "ce"),
    "boundary": ("paper", "exact"),
    "h_sharing": ("sum", "mean"),
    "optimizer": ("sdlm", "sgd", "adam"),
    "distortions": ("none", "paper", "fresh"),
    "distortion_ranges": ("a11", "small", "huge"),
}

# Numeric fields: (kind, lowest allowed, whether the lowest itself is allowed, highest allowed).
# Reals must be finite; bool is refused though Python counts it as an int; ints are fine for reals.
POSITIVE = (Real, 0, False, None)
NUMBERS = {
    "init_scale": POSITIVE,
    "init_fan_power": (Real, 0, True, None),
    "j": (Real, None, None, None),  # eq. 9's constant: any finite real
    "passes": (Integral, 1, True, None),
    "mu": POSITIVE,  # eps = eta / (mu + h) with h >= 0
    "hessian_samples": (Integral, 1, True, None),
    "batch_size": (Integral, 1, True, None),
    "lr": POSITIVE,
    "train_size": (Integral, 1, True, paper.TRAIN_SIZE),
}


def _number_error(name, value, kind, low, closed, high):
    """Why `value` is not allowed for the field `name`, or None if it is."""
    what = "an integer" if kind is Integral else "a finite real number"
    if high is not None:
        what += f" from {low} to {high}"
    elif low is not None:
        what += f" {'>=' if closed else '>'} {low}"
    ok = (isinstance(value, kind) and not isinstance(value, bool)
          and (isinstance(value, Integral) or math.isfinite(value))
          and (low is None or (value >= low if closed else value > low)) and (high is None or value <= high))
    return None if ok else f"config.{name}={value!r}: expected {what}"


@dataclass(frozen=True)
class Config:
    # network (Sec. II-B); the others of Sec. III-C (repro/networks.py) keep the paper's choices below
    network: str = networks.LENET5
    activation: str = "scaled_tanh"
    subsampling: str = "trainable"  # coefficient x (2x2 field) + bias, then squash
    subsampling_input: str = "average"  # A1, DEPARTURE: Sec. II-B adds the four inputs (Sec. II-A: "average")
    c3: str = "table"  # Table I
    output: str = "rbf"  # Euclidean RBF with fixed 7x12 prototypes (A4)
    prototypes: str = "bitmaps"  # A4: the hand-drawn 7x12 bitmaps, or "distant" codes (repro/prototypes.py)
    init: str = "paper"  # uniform +-init_scale / F**init_fan_power (Appendix A)
    init_scale: float = paper.INIT_SCALE
    init_fan_power: float = 0.5  # A2, DEPARTURE: the text's +-2.4/F is 1.0; 0.5 is +-2.4/sqrt(F)
    bias_init: str = "uniform"  # A3: not stated in the paper
    # A13: S2/S4's coefficients and biases, not stated either: "uniform" draws them like every other weight
    # (+-init_scale / 4**init_fan_power); "one" starts every coefficient at exactly 1.0 and every bias at 0
    # (a plain sum, or with subsampling_input="average" a plain average, of the 2x2 field); they are set
    # after all weights are drawn as with "uniform", so every other weight is the same in both; "authors" is
    # the authors' later code (EBLearn's s_layer::forget): the constant 1/sqrt(4) on the sum of the 2x2 field
    # (2.0 on its average), bias 0
    subsampling_init: str = "uniform"
    input: str = "paper"  # background -0.1, ink 1.175 (A5)
    # loss (Sec. II-C)
    loss: str = "map"  # A7: eq. 9; "ml" is eq. 8; "ce" is softmax/cross-entropy for the linear head
    j: float = 1.0  # A6: eq. 9's constant, not stated in the paper
    # training (Sec. III-B, Appendix C)
    optimizer: str = "sdlm"
    passes: int = paper.PASSES
    eta: tuple = paper.ETA_SCHEDULE  # global rate per pass (SDLM and SGD)
    mu: float = 0.1  # A10: the recipe study's choice (results/recipe_study/decision.json); the text's is paper.MU
    hessian_samples: int = paper.HESSIAN_SAMPLES  # A9
    boundary: str = "paper"  # A8: d2E/dx^2 at F6's outputs: "paper" = 2 (stated for eq. 8), "exact" = the loss's own
    # A9: h_kk of a shared weight: "sum" over the connections that share it (Appendix C), "mean" = that sum
    # divided by their number (LeNet5.connections_per_weight: 784 for C1's weights, 1 for F6's)
    h_sharing: str = "sum"
    batch_size: int = 1  # online: one update per pattern; the Adam variants use mini-batches
    lr: float = 1e-3  # not in the paper: "sgd": rate of pass 1, scaled down with `eta`; "adam": its constant rate
    train_size: int = paper.TRAIN_SIZE
    # A12, Sec. III-C: "paper" adds 9 random affine distortions of each pattern, drawn once (600,000 patterns,
    # passes of train_size); "fresh" distorts 9 in 10 patterns anew every pass (repro/distortions.py)
    distortions: str = "none"
    distortion_ranges: str = "a11"  # repro/distortions.py RANGE_SETS: A11's, the recipe study's smaller set, "huge"

    def __post_init__(self):
        for name, allowed in CHOICES.items():
            if getattr(self, name) not in allowed:
                raise ValueError(f"config.{name}={getattr(self, name)!r}: expected one of {allowed}")
        for name, rule in NUMBERS.items():
            if error := _number_error(name, getattr(self, name), *rule):
                raise ValueError(error)
        if isinstance(self.eta, list):  # as JSON gives it back; a tuple keeps the config hashable
            object.__setattr__(self, "eta", tuple(self.eta))
        if not isinstance(self.eta, tuple) or any(_number_error("eta", r, *POSITIVE) for r in self.eta):
            raise ValueError(f"config.eta={self.eta!r}: expected a tuple of finite real numbers > 0, one per pass")
        if len(self.eta) < self.passes:
            raise ValueError(f"config.eta has {len(self.eta)} rates for {self.passes} passes")
        if (self.batch_size > 1) != (self.optimizer == "adam"):
            raise ValueError("SDLM and SGD train online (batch_size=1); Adam trains on mini-batches (batch_size > 1)")
        if (self.output == "linear") != (self.loss == "ce"):
            raise ValueError("the linear output trains with loss='ce' and the RBF output with 'map' or 'ml'")
        for name in ("mu", "lr") + tuple(f"eta[{i}]" for i in range(len(self.eta))):
            value = self.eta[int(name[4:-1])] if name.startswith("eta[") else getattr(self, name)
            with numpy.errstate(over="ignore"):  # an overflow is what is reported here
                single = float(numpy.float32(value))
            if not 0 < single < math.inf:  # the steps are computed in float32
                raise ValueError(f"config.{name}={value!r} is {single} in float32, the precision of the step sizes "
                                 "eps = eta / (mu + h): choose a value float32 can hold")
        if self.network != networks.LENET5:
            self._check_other_network()

    def _check_other_network(self):
        """The networks of Sec. III-C are built from the paper's layers only: LeNet-5's ablations
        (another activation, pooling, head, C3 table, Adam, the input variants) do not apply to them."""
        lenet5_only = ("activation", "subsampling", "c3", "output", "prototypes", "input", "optimizer")
        changed = [f for f in lenet5_only if getattr(self, f) != getattr(Config, f)]
        if changed:
            raise ValueError(f"config.network={self.network!r} keeps the paper's {', '.join(changed)}; "
                             "those variants are LeNet-5's ablations")
        if self.distortions != "none" and networks.get(self.network).version != "regular":
            raise ValueError(f"config.network={self.network!r} reads the {networks.get(self.network).version} "
                             "images; the paper's distortions are drawn on the regular ones")

    def to_dict(self):
        return asdict(self)

    @classmethod
    def from_dict(cls, stored):
        """The config a run folder or a file stored (config.json, a checkpoint, weights): "seed" is not a
        field, and a field added to Config since then has its default."""
        return cls(**{k: v for k, v in stored.items() if k != "seed"})


# Variants measured not to train, which train() records as failed instead of stopping (PAPER_NOTES:
# "The literal text does not train"); the ablations and findings may fail too (their scripts say so).
MAY_NOT_TRAIN = ("paper-literal",)

# The common modern "LeNet-5" of tutorials.
MODERN = dict(activation="relu", subsampling="max", c3="full", output="linear", loss="ce",
              init="default", optimizer="adam", batch_size=64)

# Named variants: overrides of the defaults above. One paper choice at a time is swapped for its
# modern counterpart; then the modern network, and the modern network with one paper choice put back.
# `lr` and `batch_size` of the SGD and Adam rows are chosen on a validation split by `make ablations`.
VARIANTS = {
    "paper": {},
    "paper-literal": dict(init_fan_power=1.0, subsampling_input="sum", mu=paper.MU),  # the text word for word
    "paper-mu0.02": dict(mu=paper.MU),  # the text's mu (A10), the one change from the recipe study's choice
    "relu": dict(activation="relu"),
    "average-pool": dict(subsampling="average"),
    "max-pool": dict(subsampling="max"),
    "full-c3": dict(c3="full"),
    "softmax-ce": dict(output="linear", loss="ce"),
    "distant-codes": dict(prototypes="distant"),  # A4: RBF codes 40-42 apart instead of the bitmaps (11 for 0-6)
    "place-code": dict(network="lenet5-place"),  # LeNet-4's head: C5's 120 units feed 10 place-code units, no F6/RBF
    "eq8": dict(loss="ml"),
    "default-init": dict(init="default"),
    "unit-input": dict(input="unit"),
    "standardized-input": dict(input="standardized"),
    "sgd": dict(optimizer="sgd"),  # one global rate, no curvature
    "adam": dict(optimizer="adam", batch_size=64),
    "distortions": dict(distortions="paper"),
    "distortions-fresh": dict(distortions="fresh"),
    "modern": MODERN,
    "modern+tanh": dict(MODERN, activation="scaled_tanh"),
    "modern+rbf": dict(MODERN, output="rbf", loss="map"),
    "modern+sdlm": dict(MODERN, optimizer="sdlm", batch_size=1),
}


def get_config(name="paper", **overrides) -> Config:
    if name not in VARIANTS:
        raise ValueError(f"unknown variant {name!r}; known variants: {', '.join(VARIANTS)}")
    known = {f.name for f in fields(Config)}
    bad = set(overrides) - known
    if bad:
        raise ValueError(f"unknown config field(s) {sorted(bad)}; fields are {sorted(known)}")
    return replace(Config(), **{**VARIANTS[name], **overrides})
