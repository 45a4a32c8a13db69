"""Online training (Sec. III-B): one update per pattern, a constant random order, 20 passes.

Before each pass the SDLM step sizes eps_k = eta / (mu + h_kk) are computed from h_kk estimated on
`hessian_samples` patterns and held fixed for the pass (Appendix C). After each pass the run directory
gets one metrics row and an atomic checkpoint, so an interrupted run resumes where it stopped and ends
with the same numbers as an uninterrupted one.

Randomness has one source per purpose, each seeded from the run's seed: the initial weights
(`seed`), the pattern order (`seed + ORDER`), the patterns used to estimate h (`seed + HESSIAN`) and
the distortions (`seed + DISTORT`, Sec. III-C). The order depends on the seed and the number of
training patterns only, so every variant without distortions sees the same sequence of patterns.
"""
import csv
import functools
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import torch

from . import data as mnist
from . import paper
from .config import Config
from .distortions import distort, distorted_pool
from .loss import make_loss
from .model import LeNet5
from .sdlm import eps_stats, hessian_diagonal, step_sizes
from .step import BLOCK, make_adam_step, make_step

ORDER, HESSIAN, DISTORT = 10_000, 20_000, 30_000
CHECK_EVERY = 1000  # patterns between finiteness checks and progress updates
METRIC_FIELDS = ("pass", "eta", "train_error_online", "train_loss_online", "train_error", "train_loss",
                 "test_error", "test_loss", "test_misses", "eps_min", "eps_median", "eps_max",
                 "seconds", "eval_seconds", "samples_per_s")


class TrainingDiverged(RuntimeError):
    pass


def run_pass(update, xs, ys, block=BLOCK, every_chunk=None):
    """One pass over the patterns (xs, ys) in this order, `block` patterns per `update(xs, ys)` call
    (the online step's unrolled block, or Adam's mini-batch). Returns each pattern's loss and predicted
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


@torch.no_grad()
def evaluate(forward, x, labels, loss_fn, batch=1000):
    """(error fraction, misses, mean loss) of `forward` (a model, or the native step's forward pass)
    on (x, labels), in batches."""
    misses, loss = 0, 0.0
    for i in range(0, len(x), batch):
        y = forward(x[i:i + batch])
        misses += (y.argmin(1) != labels[i:i + batch]).sum().item()
        loss += loss_fn(y, labels[i:i + batch]).item() * len(y)
    return misses / len(x), misses, loss / len(x)


def prepare_inputs(images, config: Config, train_images):
    """The paper's scaling (-0.1 background, 1.175 ink) comes from repro.data; the input variants
    rescale it: "unit" maps pixels to [0, 1], "standardized" to zero mean and unit variance over the
    (padded) training images."""
    if config.input == "paper":
        return images
    unit = lambda t: (t + 0.1) / 1.275
    if config.input == "unit":
        return unit(images)
    ref = unit(train_images)
    return (unit(images) - ref.mean()) / ref.std()


def provenance(device):
    def git(*args):
        try:
            return subprocess.run(["git", *args], capture_output=True, text=True, timeout=10,
                                  cwd=Path(__file__).parent).stdout.strip()
        except OSError:
            return ""
    import numpy
    return dict(git_commit=git("rev-parse", "HEAD") or "unknown",
                git_dirty=bool(git("status", "--porcelain", "--untracked-files=no")),
                python=sys.version.split()[0], torch=torch.__version__, numpy=numpy.__version__,
                platform=platform.platform(), processor=platform.processor() or platform.machine(),
                device=str(device), torch_threads=torch.get_num_threads(),
                mkldnn=torch.backends.mkldnn.enabled, started=time.strftime("%Y-%m-%d %H:%M:%S"))


def atomic_save(obj, path):
    tmp = Path(str(path) + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def write_rows(path, fields, rows):
    tmp = Path(str(path) + ".tmp")
    with open(tmp, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=fields, extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)
    os.replace(tmp, path)


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


def train(config: Config, seed: int, run_dir, data=None, device="cpu", progress="bar", label=None, compile=True,
          eval_train="every"):
    """Train (or resume) one run in `run_dir`; returns the list of per-pass metric rows.

    `compile` selects the fast online step (repro.step.make_step: native on a CPU, torch.compile on
    CUDA) over the eager one: the same mathematics, many times faster; it does not change the
    config. With the native step, evaluation uses its forward pass too. `eval_train="last"`
    measures the error on the whole training set after the last pass only (the on-the-fly error is
    recorded every pass), which saves time where only the final numbers are compared."""
    device = torch.device(device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' was asked for but torch.cuda.is_available() is False")
    if eval_train not in ("every", "last"):
        raise ValueError(f"eval_train={eval_train!r}: expected 'every' or 'last'")
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    data = data or mnist.load_mnist()
    originals = data["train_x"][:config.train_size]
    train_x = prepare_inputs(originals, config, data["train_x"]).to(device)
    train_y = data["train_y"][:config.train_size].to(device)
    test_x = prepare_inputs(data["test_x"], config, data["train_x"]).to(device)
    test_y = data["test_y"].to(device)
    n = len(train_x)
    # The patterns training draws from: the originals, or with the paper's distortions the originals
    # and their 540,000 distorted copies, drawn once per seed.
    pool_x, pool_y = train_x, train_y
    if config.distortions == "paper":
        copies = distorted_pool(originals, paper.DISTORTED_COPIES, torch.Generator().manual_seed(seed + DISTORT))
        pool_x = prepare_inputs(copies, config, data["train_x"]).to(device)
        pool_y = train_y.repeat(paper.DISTORTED_COPIES + 1)

    model = LeNet5(config, seed=seed).to(device)
    params = {k: p.detach().requires_grad_(True) for k, p in model.named_parameters()}  # the model's storage
    loss_fn = make_loss(config)
    order = torch.randperm(len(pool_x), generator=torch.Generator().manual_seed(seed + ORDER)).to(device)
    hessian_gen = torch.Generator().manual_seed(seed + HESSIAN)
    metrics, eps_rows, start = [], [], 0
    if config.optimizer == "adam":  # the modern recipe: mini-batches, no step sizes of our own
        step, adam = make_adam_step(model, loss_fn, config.lr)

    ckpt_path = run_dir / "checkpoint.pt"
    if ckpt_path.exists():
        ckpt = torch.load(ckpt_path, map_location=device, weights_only=False)
        stored = {**Config().to_dict(), **ckpt["config"]}  # a field added since then has its default value
        if stored != config.to_dict() or ckpt["seed"] != seed:
            raise ValueError(f"{ckpt_path} belongs to another config or seed; use another run directory")
        model.load_state_dict(ckpt["model"])
        hessian_gen.set_state(ckpt["hessian_rng"])
        if config.optimizer == "adam":
            adam.load_state_dict(ckpt["adam"])
        metrics, eps_rows, start = ckpt["metrics"], ckpt["eps"], ckpt["passes_done"]
        if start >= config.passes:
            return metrics  # finished earlier
    else:
        (run_dir / "config.json").write_text(json.dumps(dict(config.to_dict(), seed=seed), indent=1))
    if config.optimizer == "adam":
        compile_seconds, step_kind = 0.0, "eager mini-batch"
    else:
        step, compile_seconds = make_step(config, device, compile)
        step_kind = step.kind
    meta = dict(seed=seed, **provenance(device), resumed_from_pass=start, step=step_kind,
                compile_seconds=compile_seconds)
    (run_dir / f"meta_pass{start}.json" if start else run_dir / "meta.json").write_text(json.dumps(meta, indent=1))

    show = Progress(progress, label or f"[seed {seed}]")
    if config.distortions != "paper":
        ordered_x, ordered_y = train_x[order], train_y[order]  # the same constant order every pass

    def pass_patterns(p):
        """Pass p's n patterns in training order, and their numbers in the pool."""
        if config.distortions == "paper":
            idx = pass_indices(p, n, order)
            return pool_x[idx], pool_y[idx], idx
        if config.distortions == "none":
            return ordered_x, ordered_y, order
        # "fresh": every pass distorts anew the same share of patterns as the paper's pool holds
        g = torch.Generator().manual_seed(seed + DISTORT + p)
        pick = (torch.rand(n, generator=g) < paper.DISTORTED_COPIES / (paper.DISTORTED_COPIES + 1)).nonzero()[:, 0]
        raw = originals[order.cpu()]
        raw[pick] = distort(raw[pick], g)
        return prepare_inputs(raw, config, data["train_x"]).to(device), ordered_y, order

    def describe(k):
        return f"training pattern #{k}" if k < n else f"distorted copy {k // n} of training pattern #{k % n}"
    for p in range(start, config.passes):
        eta = config.eta[p]  # the pass's global rate: SDLM's eta, SGD's rate, Adam's (constant) rate
        t0 = time.perf_counter()
        if config.optimizer == "adam":
            update, block, stats, eta = step, config.batch_size, None, config.lr
        else:
            if config.optimizer == "sdlm":
                pick = torch.randperm(len(pool_x), generator=hessian_gen)[:config.hessian_samples].to(device)
                h = hessian_diagonal(model, pool_x[pick], pool_y[pick], loss_fn, config.boundary)
                eps_by_name = step_sizes(h, eta, config.mu)
            else:  # plain SGD: one global rate for every parameter, the paper's schedule scaled to start at lr
                eta = config.lr * eta / config.eta[0]
                eps_by_name = {k: torch.full_like(v, eta) for k, v in model.named_parameters()}
            broken = [k for k, v in eps_by_name.items() if not torch.isfinite(v).all()]
            if broken:
                raise TrainingDiverged(f"step sizes are not finite before pass {p + 1} (parameters {', '.join(broken)}): "
                                       "the curvature estimate met a non-finite pattern or weight")
            stats = eps_stats(eps_by_name)
            eps_rows += [{"pass": p + 1, "layer": k, **v} for k, v in stats.items()]
            update, block = functools.partial(step, params, eps_by_name), BLOCK

        def every_chunk(done, losses):
            bad = (~torch.isfinite(losses)).nonzero()
            if len(bad):
                j = done - len(losses) + bad[0].item()
                kept = f"the last good checkpoint {ckpt_path} is kept" if ckpt_path.exists() else "no pass had finished"
                raise TrainingDiverged(f"loss became {losses[bad[0].item()].item()} in pass {p + 1} at sample {j + 1} "
                                       f"({describe(patterns[j].item())}); {kept}")
            show.update(p, done, n, t0)

        xs, ys, patterns = pass_patterns(p)
        losses, preds = run_pass(update, xs, ys, block, every_chunk)
        wrong = preds != ys
        seconds = time.perf_counter() - t0

        t1 = time.perf_counter()
        nan = float("nan")
        forward = functools.partial(step.forward, params) if hasattr(step, "forward") else model
        train_err, _, train_loss = (evaluate(forward, train_x, train_y, loss_fn)
                                    if eval_train == "every" or p + 1 == config.passes else (nan, 0, nan))
        test_err, test_misses, test_loss = evaluate(forward, test_x, test_y, loss_fn)
        metrics.append({
            "pass": p + 1, "eta": eta, "train_error_online": wrong.float().mean().item(),
            "train_loss_online": losses.mean().item(), "train_error": train_err, "train_loss": train_loss,
            "test_error": test_err, "test_loss": test_loss, "test_misses": test_misses,
            **{f"eps_{k}": stats["all"][k] if stats else nan for k in ("min", "median", "max")},
            "seconds": seconds, "eval_seconds": time.perf_counter() - t1, "samples_per_s": n / seconds})
        atomic_save(dict(model=model.state_dict(), config=config.to_dict(), seed=seed, passes_done=p + 1,
                         metrics=metrics, eps=eps_rows, hessian_rng=hessian_gen.get_state(),
                         adam=adam.state_dict() if config.optimizer == "adam" else None), ckpt_path)
        write_rows(run_dir / "metrics.csv", ("seed",) + METRIC_FIELDS,
                   [dict(r, seed=seed) for r in metrics])
        write_rows(run_dir / "eps.csv", ("seed", "pass", "layer", "min", "median", "max"),
                   [dict(r, seed=seed) for r in eps_rows])
        eps_range = f" eps {stats['all']['min']:.1e}..{stats['all']['max']:.1e}" if stats else ""
        show.line(f"pass {p + 1:2d}/{config.passes} eta={eta:.0e} online train err {metrics[-1]['train_error_online']:.2%} "
                  f"train err {train_err:.2%} test err {test_err:.2%} ({test_misses}){eps_range} {n / seconds:,.0f}/s")
    return metrics
