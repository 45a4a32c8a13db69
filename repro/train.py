"""Online training (Sec. III-B): one update per pattern, a constant random order, 20 passes.

    train()     set up (or resume) a run, then for each pass: one_pass(), record()
    one_pass()  SDLM step sizes eps_k = eta / (mu + h_kk) from h_kk estimated on `hessian_samples`
                patterns and held fixed for the pass (Appendix C); the pass over the patterns;
                the errors on the training and test sets
    record()    one metrics row and an atomic checkpoint, so an interrupted run resumes where it
                stopped and ends with the same numbers as an uninterrupted one

Randomness has one source per purpose, each seeded from the run's seed: the initial weights
(`seed`), the pattern order (`seed + ORDER`), the patterns used to estimate h (`seed + HESSIAN`) and
the distortions (`seed + DISTORT`, Sec. III-C). The order depends on the seed and the number of
training patterns only, so every variant without distortions sees the same sequence of patterns.

The same bits on every x86-64 CPU: with the native step (the CPU default) every floating-point
number of a run is computed by repro/native/'s C code or by elementwise PyTorch operations that
round once (no reductions, no BLAS), and the means recorded are exact sums (math.fsum) rounded once.
A checkpoint is tied to the library's source hash: code that changed since refuses to resume it.
"""
import functools
import json
import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from . import data as mnist
from . import paper
from .config import Config
from .distortions import RANGE_SETS, distort, distorted_pool
from .files import atomic_save, load_checked, run_lock, write_rows
from .model import FeedForward, build, check_labels
from .networks import LENET5, get as get_network
from .provenance import library_sha256, provenance
from .sdlm import below_mu, eps_stats, shared_curvature, step_sizes
from .step import BLOCK, Adam, make_step

ORDER, HESSIAN, DISTORT = 10_000, 20_000, 30_000
CHECK_EVERY = 1000  # patterns between finiteness checks and progress updates
PORTABLE_STEPS = ("native",)  # the step kinds whose numbers are the same on every x86-64 CPU
METRIC_FIELDS = ("pass", "eta", "train_error_online", "train_loss_online", "train_error", "train_loss",
                 "test_error", "test_loss", "test_misses", "eps_min", "eps_median", "eps_max",
                 "seconds", "eval_seconds", "samples_per_s", "failed")


class TrainingDiverged(RuntimeError):
    pass


class TrainingFailed(RuntimeError):
    """A run that stays at chance without diverging: every number finite, nothing learnt."""


# A run has failed once its on-the-fly training error has been at least FAILED_ERROR (chance is 90%)
# for FAILED_PASSES passes in a row: with eta x 1000 the network saturates and stays there.
FAILED_ERROR, FAILED_PASSES = 0.8, 3


def failed_at(metrics):
    """The pass at which the rule above fired on these metric rows, or None."""
    run = 0
    for row in metrics:
        run = run + 1 if row["train_error_online"] >= FAILED_ERROR else 0
        if run == FAILED_PASSES:
            return row["pass"]
    return None


def run_pass(update, xs, ys, block=BLOCK, every_chunk=None):
    """One pass over the patterns (xs, ys) in this order, `block` patterns per `update(xs, ys)` call
    (the online step's block, or Adam's mini-batch). Returns each pattern's loss and predicted
    class, computed before its update. `every_chunk(done, losses)` is called every CHECK_EVERY
    patterns and at the end with the losses of the patterns since the last call (finiteness checks,
    progress).

    The loop body is only the update and a list append: stacking and argmin happen once per pass."""
    n, blocks, since = len(xs), [], 0
    for i in range(0, n, block):
        blocks.append(update(xs[i:i + block], ys[i:i + block]))
        done = min(i + block, n)
        if every_chunk is not None and (done // CHECK_EVERY > since // CHECK_EVERY or done == n):
            every_chunk(done, torch.cat([b[0] for b in blocks[since // block:]]))
            since = done
    return torch.cat([b[0] for b in blocks]), torch.cat([b[1] for b in blocks]).argmin(1)


def pass_indices(p, n, order):
    """Pass p's n patterns when the pool is larger than a pass: consecutive stretches of one constant
    order of the whole pool, so 20 passes of 60,000 show each of 600,000 patterns twice (Sec. III-C)."""
    return order[(torch.arange(n, device=order.device) + p * n) % len(order)]


def exact_mean(values):
    """The mean of a tensor's values from their exact sum, rounded once: the same on every CPU."""
    return math.fsum(values.double().tolist()) / len(values)


@torch.no_grad()
def evaluate(step, params, x, labels, batch=1000):
    """(error fraction, misses, mean loss) of the network `params` on (x, labels), in batches."""
    check_labels(labels, len(x))
    misses, losses = 0, []
    for i in range(0, len(x), batch):
        loss, y = step.evaluate(params, x[i:i + batch], labels[i:i + batch])
        misses += (y.argmin(1) != labels[i:i + batch]).sum().item()
        losses.append(loss)
    return misses / len(x), misses, exact_mean(torch.cat(losses))


def prepare_inputs(images, config: Config, train_images):
    """The paper's scaling (-0.1 background, 1.175 ink) comes from repro.data, and the networks whose
    field is smaller than the padded 32x32 see its centre (crop); LeNet-5's input variants
    rescale it: "unit" maps pixels to [0, 1], "standardized" to zero mean and unit variance over the
    (padded) training images, both computed exactly (exact_moments)."""
    if config.input == "paper":
        return crop(images, config)
    unit = lambda t: (t + 0.1) / 1.275
    if config.input == "unit":
        return unit(images)
    mean, std = exact_moments(unit(train_images))
    return (unit(images) - mean) / std


def crop(images, config: Config):
    """The central field of the config's network: the 28x28 networks read the regular images
    without LeNet-5's padding (distorted at 32x32 like LeNet-5's, then cropped)."""
    side = input_side(config)
    margin = (images.shape[-1] - side) // 2
    return images[..., margin:margin + side, margin:margin + side] if margin > 0 else images


def input_side(config: Config):
    return data_version(config)[1]


def data_version(config: Config):
    """(version of repro/versions.py, side of the input field) of the images the config's network reads."""
    if config.network == LENET5:
        return "regular", paper.INPUT_SIZE
    spec = get_network(config.network)
    return spec.version, spec.field


def load_data(config: Config):
    """The images a network reads: LeNet-5's padded regular set (also the source of the other regular
    networks' fields), or another version in its network's field (repro/versions.py)."""
    version, side = data_version(config)
    return mnist.load_mnist() if version == "regular" else mnist.load_field(version, side)


def exact_moments(t):
    """Mean and standard deviation (n - 1) of a tensor of few distinct values (images of 256 grey
    levels), from exact sums over its distinct values: the same on every CPU."""
    values, counts = torch.unique(t, return_counts=True)
    values, counts, n = values.double().tolist(), counts.tolist(), t.numel()
    mean = math.fsum(v * c for v, c in zip(values, counts)) / n
    return mean, math.sqrt(math.fsum(c * (v - mean) ** 2 for v, c in zip(values, counts)) / (n - 1))


class Progress:
    """mode "bar": a per-pass line and, on an interactive terminal, a bar redrawn within the pass;
    "lines": per-pass lines only (several runs sharing a terminal); None: silent."""

    def __init__(self, mode, label):
        if mode not in ("bar", "lines", None):
            raise ValueError(f"progress={mode!r}: expected 'bar', 'lines' or None")
        self.enabled, self.label = mode is not None, label
        self.bar = mode == "bar" and sys.stdout.isatty()

    def update(self, p, done, total, t0):
        if self.bar:
            n = int(30 * done / total)
            rate = done / max(time.perf_counter() - t0, 1e-9)
            print(f"\r{self.label} pass {p + 1:2d} [{'#' * n}{'.' * (30 - n)}] {done}/{total} {rate:,.0f}/s",
                  end="", flush=True)

    def line(self, text):
        if self.enabled:
            print(("\r" if self.bar else "") + f"{self.label} {text}", flush=True)


@dataclass
class Run:
    """Everything one training run holds between passes."""
    config: Config
    seed: int
    dir: Path
    data: dict  # train_x/train_y/test_x/test_y, prepared for the config, on the device
    originals: torch.Tensor  # the training images before the input variant (for fresh distortions)
    raw_train: torch.Tensor  # the whole training set in the paper's scaling (for the input variants)
    pool_x: torch.Tensor  # the patterns training draws from (with the paper's distortions, 600,000)
    pool_y: torch.Tensor
    order: torch.Tensor
    ordered: tuple  # (images, labels) of the training set in `order`, the same every pass (None with the paper's distortions)
    model: FeedForward
    params: dict
    step: object  # the online step (repro.step), which also evaluates and estimates the curvature
    adam: Adam = None
    hessian_gen: torch.Generator = None
    metrics: list = field(default_factory=list)
    eps_rows: list = field(default_factory=list)
    start: int = 0

    @property
    def checkpoint(self):
        return self.dir / "checkpoint.pt"


def train(config: Config, seed: int, run_dir, data=None, device="cpu", progress="bar", label=None, fast=True,
          eval_train="every", require_portable=False, may_fail=False):
    """Train (or resume) one run in `run_dir`; returns the list of per-pass metric rows.

    `fast` selects the fast online step (repro.step.make_step: native on a CPU, torch.compile on
    CUDA) over the eager one: the same mathematics, many times faster; it does not change the
    config. `require_portable` refuses to train unless the step gives the same bits on every x86-64
    CPU (the targets that write results/ set it). `eval_train="last"` measures the error on the
    whole training set after the last pass only (the on-the-fly error is recorded every pass), which
    saves time where only the final numbers are compared. A run that stays at chance (failed_at)
    raises TrainingFailed, unless `may_fail` (the literal text, the ablations, the findings: variants
    that may not train), which trains on and marks its rows `failed` from that pass on.

    One process at a time trains a run folder (a lock): a second one waits, then resumes or reads."""
    if eval_train not in ("every", "last"):
        raise ValueError(f"eval_train={eval_train!r}: expected 'every' or 'last'")
    show = Progress(progress, label or f"[seed {seed}]")
    with run_lock(run_dir, show.line):
        run = setup(config, seed, Path(run_dir), data, torch.device(device), fast, require_portable)
        check_failed(run, may_fail)
        started = time.perf_counter()
        for p in range(run.start, config.passes):
            row = one_pass(run, p, show, evaluate_train=eval_train == "every" or p + 1 == config.passes)
            per_pass = (time.perf_counter() - started) / (p + 1 - run.start)
            row["failed"] = failed_at(run.metrics + [row]) is not None
            record(run, row)
            eps_range = f" eps {row['eps_min']:.1e}..{row['eps_max']:.1e}" if config.optimizer != "adam" else ""
            show.line(f"pass {p + 1:2d}/{config.passes} eta={row['eta']:.0e} online train err {row['train_error_online']:.2%} "
                      f"train err {row['train_error']:.2%} test err {row['test_error']:.2%} ({row['test_misses']})"
                      f"{eps_range} {row['samples_per_s']:,.0f}/s" + (" FAILED (at chance)" if row["failed"] else "")
                      + (f" ETA {eta_text(per_pass * (config.passes - p - 1))}" if p + 1 < config.passes else ""))
            check_failed(run, may_fail)
    return run.metrics


def eta_text(seconds):
    return f"{seconds:.0f} s" if seconds < 90 else f"{seconds / 60:.1f} min"


def check_failed(run, may_fail):
    """TrainingFailed where the run's rows show it stayed at chance and it may not fail."""
    p = failed_at(run.metrics)
    if p is not None and not may_fail:
        raise TrainingFailed(f"{run.dir}: the training error stayed at chance ({FAILED_ERROR:.0%} or more on the fly) "
                             f"for {FAILED_PASSES} passes up to pass {p}; nothing finite went wrong, the network did "
                             "not learn (a rate too large saturates it). Its checkpoint is kept; delete the folder "
                             "to train it again")


def trained(config: Config, seed: int, run_dir, data=None, require_portable=False, progress=None, label=None,
            may_fail=False):
    """The network a finished run in `run_dir` left (trained, or its training resumed, first): the
    config's network with its final weights. Several processes may ask for the same run (LeNet-4's
    for its own row and for the rows built on its features): train()'s lock has them train it once."""
    run_dir = Path(run_dir)
    train(config, seed, run_dir, data, progress=progress, label=label, eval_train="last",
          require_portable=require_portable, may_fail=may_fail)
    model = build(config)
    model.load_state_dict(read_checkpoint(run_dir)["model"])
    return model


def read_checkpoint(run_dir, map_location=None):
    """A run's checkpoint, checked against its SHA-256 (repro.files)."""
    return load_checked(Path(run_dir) / "checkpoint.pt", f"delete {run_dir} to train the run again",
                        map_location=map_location)


def setup(config, seed, run_dir, data, device, fast, require_portable):
    """The run's data, network and step, resumed from its checkpoint where one exists."""
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' was asked for but torch.cuda.is_available() is False")
    data = data or load_data(config)
    if config.train_size > len(data["train_x"]):
        raise ValueError(f"config.train_size={config.train_size} but the training split holds only "
                         f"{len(data['train_x'])} images")
    originals = data["train_x"][:config.train_size]
    prepare = functools.partial(prepare_inputs, config=config, train_images=data["train_x"])
    prepared = dict(train_x=prepare(originals).to(device), train_y=data["train_y"][:config.train_size].to(device),
                    test_x=prepare(data["test_x"]).to(device), test_y=data["test_y"].to(device))
    for split in ("train", "test"):  # one clear message before any step meets the pixel mid-pass
        bad = ~torch.isfinite(prepared[f"{split}_x"]).flatten(1).all(dim=1)
        if bad.any():
            raise ValueError(f"{int(bad.sum())} {split}ing images hold NaN or infinite pixels (the first: {split}ing "
                             f"image #{int(bad.nonzero()[0])}); the data given to train() must be finite")
    pool_x, pool_y = prepared["train_x"], prepared["train_y"]
    if config.distortions == "paper":  # the originals and their 540,000 distorted copies, drawn once per seed
        copies = distorted_pool(originals, paper.DISTORTED_COPIES, torch.Generator().manual_seed(seed + DISTORT),
                                RANGE_SETS[config.distortion_ranges])
        pool_x, pool_y = prepare(copies).to(device), pool_y.repeat(paper.DISTORTED_COPIES + 1)
    order = torch.randperm(len(pool_x), generator=torch.Generator().manual_seed(seed + ORDER)).to(device)
    ordered = (prepared["train_x"][order], prepared["train_y"][order]) if config.distortions != "paper" else None

    model = build(config, seed=seed).to(device)
    params = {k: p.detach().requires_grad_(True) for k, p in model.named_parameters()}  # the model's storage
    step, compile_seconds = make_step(config, device, fast)
    if require_portable and step.kind not in PORTABLE_STEPS:
        raise RuntimeError(f"this run must give the same numbers on every x86-64 CPU, but its step is "
                           f"{step.kind!r}, not the portable native one (unset REPRO_NATIVE_FAST; install gcc)")
    run = Run(config, seed, run_dir, prepared, originals, data["train_x"], pool_x, pool_y, order, ordered, model,
              params, step,
              adam=Adam(step, params, config.lr) if config.optimizer == "adam" else None,
              hessian_gen=torch.Generator().manual_seed(seed + HESSIAN))
    run_dir.mkdir(parents=True, exist_ok=True)
    if run.checkpoint.exists():
        resume(run)
    else:
        (run_dir / "config.json").write_text(json.dumps(dict(config.to_dict(), seed=seed), indent=1))
    if run.start < config.passes:  # a finished run is only read: its meta.json already says what made it
        meta = dict(seed=seed, **provenance(device), resumed_from_pass=run.start, step=step.kind,
                    compile_seconds=compile_seconds)
        (run_dir / (f"meta_pass{run.start}.json" if run.start else "meta.json")).write_text(json.dumps(meta, indent=1))
    return run


def resume(run):
    """Load the run's checkpoint, refusing one from another config, seed or library source."""
    ckpt = read_checkpoint(run.dir, map_location=next(iter(run.params.values())).device)
    stored = Config.from_dict(ckpt["config"])
    if stored != run.config or ckpt["seed"] != run.seed:
        raise ValueError(f"{run.checkpoint} belongs to another config or seed; use another run directory")
    if ckpt.get("library_sha256") != library_sha256():
        raise ValueError(f"{run.checkpoint} was made by other code (library source {str(ckpt.get('library_sha256'))[:12]}, "
                         f"now {library_sha256()[:12]}); its numbers would mix two versions. Delete {run.dir} "
                         "to train it again with this code.")
    run.model.load_state_dict(ckpt["model"])
    run.hessian_gen.set_state(ckpt["hessian_rng"])
    if run.adam is not None:
        run.adam.load_state_dict(ckpt["adam"])
    run.metrics, run.eps_rows, run.start = ckpt["metrics"], ckpt["eps"], ckpt["passes_done"]


def pass_patterns(run, p):
    """Pass p's patterns in training order, their labels, and their numbers in the pool."""
    config, n = run.config, len(run.data["train_x"])
    if config.distortions == "paper":
        idx = pass_indices(p, n, run.order)
        return run.pool_x[idx], run.pool_y[idx], idx
    xs, ys = run.ordered
    if config.distortions == "fresh":  # distort anew every pass the share of patterns the paper's pool holds
        g = torch.Generator().manual_seed(run.seed + DISTORT + p)
        pick = (torch.rand(n, generator=g) < paper.DISTORTED_COPIES / (paper.DISTORTED_COPIES + 1)).nonzero()[:, 0]
        raw = run.originals[run.order.cpu()]
        raw[pick] = distort(raw[pick], g, RANGE_SETS[config.distortion_ranges])
        xs = prepare_inputs(raw, config, run.raw_train).to(xs.device)
    return xs, ys, run.order


def step_sizes_for_pass(run, p):
    """({parameter: eps}, {parameter: h}) for pass p: SDLM's eta / (mu + h) with h estimated now, or
    plain SGD's single rate (and h None)."""
    config = run.config
    if config.optimizer == "sgd":
        return {k: torch.full_like(v, rate(config, p)) for k, v in run.params.items()}, None
    h = curvature_for_pass(run)
    eps = step_sizes(h, config.eta[p], config.mu)
    broken = [k for k, v in eps.items() if not torch.isfinite(v).all()]
    if broken:
        raise TrainingDiverged(f"step sizes are not finite before pass {p + 1} (parameters {', '.join(broken)}): "
                               "the curvature estimate met a non-finite pattern or weight")
    return eps, h


def curvature_for_pass(run):
    """h_kk for the coming pass: the Gauss-Newton diagonal at the current weights, averaged over
    `hessian_samples` patterns of the pool drawn by the run's own generator, summed over the
    connections that share each weight or averaged over them (config.h_sharing)."""
    config = run.config
    pick = torch.randperm(len(run.pool_x), generator=run.hessian_gen)[:config.hessian_samples].to(run.pool_x.device)
    h = run.step.curvature(run.params, run.pool_x[pick], run.pool_y[pick], config.boundary)
    counts = run.model.connections_per_weight() if config.h_sharing == "mean" else None
    return shared_curvature(h, config.h_sharing, counts)


def rate(config, p):
    """The global rate of pass p: SDLM's eta, SGD's rate (the paper's schedule scaled to start at
    config.lr), Adam's constant rate."""
    if config.optimizer == "adam":
        return config.lr
    return config.lr * config.eta[p] / config.eta[0] if config.optimizer == "sgd" else config.eta[p]


def one_pass(run, p, show, evaluate_train=True):
    """Pass p: step sizes, one update per pattern (or mini-batch), then the errors. Returns its metrics row."""
    config, n, nan = run.config, len(run.data["train_x"]), float("nan")
    t0 = time.perf_counter()
    if config.optimizer == "adam":  # the modern recipe: mini-batches, no step sizes of our own
        update, block, stats = run.adam, config.batch_size, None
    else:
        eps, h = step_sizes_for_pass(run, p)
        stats = eps_stats(eps)
        below = below_mu(h, config.mu) if h is not None else {}
        run.eps_rows += [{"pass": p + 1, "layer": k, **v, "h_below_mu": below.get(k, nan)} for k, v in stats.items()]
        update, block = functools.partial(run.step, run.params, eps), BLOCK
    xs, ys, patterns = pass_patterns(run, p)

    def every_chunk(done, losses):
        bad = (~torch.isfinite(losses)).nonzero()
        if len(bad):
            j = done - len(losses) + bad[0].item()
            k = patterns[j].item()
            what = f"training pattern #{k}" if k < n else f"distorted copy {k // n} of training pattern #{k % n}"
            kept = f"the last good checkpoint {run.checkpoint} is kept" if run.checkpoint.exists() else "no pass had finished"
            raise TrainingDiverged(f"loss became {losses[bad[0].item()].item()} in pass {p + 1} at sample {j + 1} "
                                   f"({what}); {kept}")
        show.update(p, done, n, t0)

    losses, preds = run_pass(update, xs, ys, block, every_chunk)
    seconds = time.perf_counter() - t0

    t1 = time.perf_counter()
    d = run.data
    train_err, _, train_loss = evaluate(run.step, run.params, d["train_x"], d["train_y"]) if evaluate_train else (nan, 0, nan)
    test_err, test_misses, test_loss = evaluate(run.step, run.params, d["test_x"], d["test_y"])
    return {"pass": p + 1, "eta": rate(config, p), "train_error_online": (preds != ys).sum().item() / n,
            "train_loss_online": exact_mean(losses), "train_error": train_err, "train_loss": train_loss,
            "test_error": test_err, "test_loss": test_loss, "test_misses": test_misses,
            **{f"eps_{k}": stats["all"][k] if stats else nan for k in ("min", "median", "max")},
            "seconds": seconds, "eval_seconds": time.perf_counter() - t1, "samples_per_s": n / seconds}


def record(run, row):
    """Append the pass's row; write the checkpoint (atomically) and the run's CSVs."""
    run.metrics.append(row)
    atomic_save(dict(model=run.model.state_dict(), config=run.config.to_dict(), seed=run.seed,
                     passes_done=row["pass"], metrics=run.metrics, eps=run.eps_rows,
                     hessian_rng=run.hessian_gen.get_state(), library_sha256=library_sha256(),
                     adam=run.adam.state_dict() if run.adam is not None else None), run.checkpoint)
    write_rows(run.dir / "metrics.csv", ("seed",) + METRIC_FIELDS, [dict(r, seed=run.seed) for r in run.metrics])
    write_rows(run.dir / "eps.csv", ("seed", "pass", "layer", "min", "median", "max", "h_below_mu"),
               [dict(r, seed=run.seed) for r in run.eps_rows])
