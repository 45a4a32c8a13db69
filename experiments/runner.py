"""Runs many trainings side by side: one process per core, one thread each (batch-1 steps gain
nothing from more threads, and the processes do not compete for cores). Every run lives in its own
directory with a checkpoint after each pass, so an interrupted invocation resumes and finished runs
are read, not retrained."""
import argparse
import json
import math
import multiprocessing as mp
import os
import shutil
import sys
import threading
import time
from dataclasses import replace
from pathlib import Path

import torch

from repro import data as mnist
from repro import paper
from repro.config import Config, get_config
from repro.provenance import DirtyTree, library_sha256, require_clean_code
from repro.train import eta_text, train
from repro.weights import publish
from blocks import write, write_invocation

ROOT = Path(__file__).resolve().parents[1]


def job(label, config, seed, run_dir, split="train", device="cpu", progress="lines", eval_train="every", may_fail=False):
    """One training for run_all: `config` is a repro Config (sent to the worker as a dict), `split`
    "train" (all 60,000 images) or "validation" (repro.data.validation_split); `may_fail`: see
    repro.train.train."""
    return dict(label=label, config=config.to_dict(), seed=seed, run_dir=str(run_dir), split=split, device=device,
                progress=progress, eval_train=eval_train, may_fail=may_fail)


def run_one(job):
    """Train one job made by `job` in this process."""
    label, config, seed, run_dir, split = (job[k] for k in ("label", "config", "seed", "run_dir", "split"))
    config = Config(**config)
    torch.set_num_threads(1)
    data = mnist.load_mnist()
    if split == "validation":  # the config records the 50,000 images that train
        data = mnist.validation_split(data)
        config = replace(config, train_size=min(config.train_size, len(data["train_x"])))
    t0 = time.time()
    train(config, seed, Path(run_dir), data, device=job["device"], progress=job["progress"], label=f"[{label}]",
          eval_train=job["eval_train"], require_portable=not in_scratch(run_dir), may_fail=job["may_fail"])
    return label, time.time() - t0


def exit_with_parent():
    """Pool initializer: end this worker when the process that started it is gone (killed with -9,
    it cannot stop its pool), instead of training on for nobody."""
    parent = os.getppid()

    def watch():
        while os.getppid() == parent:
            time.sleep(1)
        os._exit(1)
    threading.Thread(target=watch, daemon=True).start()


def run_all(jobs, workers=None, on_finish=None):
    """Run the jobs (see run_one), at most `workers` at a time (default: one per core); then
    `on_finish(label)` in this process as each one ends."""
    if not jobs:
        return
    workers = max(1, min(workers or os.cpu_count() or 1, len(jobs)))
    if workers == 1:
        finished = map(run_one, jobs)
    else:
        pool = mp.get_context("spawn").Pool(workers, initializer=exit_with_parent)
        finished = pool.imap_unordered(run_one, jobs)
    t0 = time.time()
    try:
        for done, (label, secs) in enumerate(finished, 1):
            left = (time.time() - t0) / done * (len(jobs) - done)  # the invocation's pace so far
            print(f"finished {label} in {secs / 60:.1f} min [{done}/{len(jobs)}"
                  + (f", invocation ETA {eta_text(left)}]" if done < len(jobs) else "]"), flush=True)
            if on_finish is not None:
                on_finish(label)
    finally:
        if workers > 1:
            pool.terminate()


def keep_provenance(run_dir, dest, weights=False):
    """Make `dest` a copy of a finished run's config.json and meta*.json (seed, versions, git commit,
    device), and with `weights` its final network as model.pt (repro.weights: with its config,
    provenance and SHA-256). `dest` is emptied first, so a file of an earlier run kept there (a
    meta_pass12.json of a resumed run) cannot pass for this run's."""
    run_dir, dest = Path(run_dir), Path(dest)
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    for name in os.listdir(run_dir):
        if name.endswith(".json"):
            shutil.copy(run_dir / name, dest / name)
    if weights:
        publish(run_dir, dest / "model.pt")


# Where an invocation writes. Only a target's full default run may write results/ (and RESULTS.md, README.md);
# anything less (fewer passes or images, other seeds, a subset, --scratch) goes under scratch/, which
# git ignores, so a quick look can neither replace committed results nor leave a checkpoint in runs/
# that the full run would then refuse as belonging to another config.

def output_dirs(experiment, quick, root=ROOT, overrides=None):
    """(results dir, run-cache dir) of one invocation: results/<experiment> and runs/<experiment> for
    a full default run, scratch/results/<experiment> and scratch/runs/<experiment>/code-<library
    hash>/[<overrides>] otherwise. train() refuses to resume a checkpoint made with another config or
    by other library code; quick runs, made while the code changes, therefore cache per code version
    and per set of config `overrides`, and a changed library trains them anew instead of failing."""
    if not quick:
        return Path(root) / "results" / experiment, Path(root) / "runs" / experiment
    scratch = Path(root) / "scratch"
    runs = scratch / "runs" / experiment / f"code-{library_sha256()[:12]}"
    if overrides:
        runs = runs / ",".join(f"{k}={v}" for k, v in sorted(overrides.items()))
    return scratch / "results" / experiment, runs


def in_scratch(path, root=ROOT):
    """Whether `path` is a quick run's (under scratch/): only those may use a step whose numbers
    depend on the CPU (REPRO_NATIVE_FAST, torch.compile, CUDA); runs for results/ refuse one."""
    return Path(path).resolve().is_relative_to((Path(root) / "scratch").resolve())


def confirm_outputs(target, quick, results, runs=None):
    """Called once the invocation's arguments are checked, before it trains or writes: a quick run
    says where it writes; a full run checks that the code is committed, and otherwise exits with
    status 2 and DirtyTree's message (a traceback would bury the one line that says what to do)."""
    if quick:
        cache = f" and caching runs in {runs}" if runs else ""
        print(f"not the full `{target}`: writing {results}{cache}", flush=True)
        return
    try:
        require_clean_code(target)
    except DirtyTree as e:
        print(e, file=sys.stderr)
        sys.exit(2)


# Command-line checks shared by the scripts, so a bad value stops an invocation before any training.

def at_least_one(text):
    """argparse type: an integer >= 1 (passes, workers)."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def train_size(text):
    """argparse type: a number of training images, 1 to 60,000."""
    value = int(text)
    if not 1 <= value <= paper.TRAIN_SIZE:
        raise argparse.ArgumentTypeError(f"must be between 1 and {paper.TRAIN_SIZE:,}, got {value}")
    return value


def positive_seconds(text):
    """argparse type: a finite number of seconds above 0 (inf would never end; nan passes no bound)."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not 0 < value < math.inf:
        raise argparse.ArgumentTypeError(f"must be a finite number of seconds above 0, got {text!r}")
    return value


def torch_device(text):
    """argparse type: cpu or cuda[:N], and only a GPU this machine has (checked here, as a bad device
    otherwise fails only inside every training's worker process)."""
    try:
        device = torch.device(text)
    except RuntimeError:
        device = None
    if device is None or device.type not in ("cpu", "cuda"):
        raise argparse.ArgumentTypeError(f"must be cpu or cuda[:N], got {text!r}")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise argparse.ArgumentTypeError(f"{text!r} asked for, but torch.cuda.is_available() is False here")
    if device.type == "cuda" and (device.index or 0) >= torch.cuda.device_count():
        raise argparse.ArgumentTypeError(f"{text!r} asked for, but this machine has {torch.cuda.device_count()} GPU(s)")
    return text


def add_scratch_arg(ap):
    ap.add_argument("--scratch", action="store_true",
                    help="write under scratch/ even for the full default run (make: SCRATCH=1)")


def quick_overrides(args):
    """The config overrides a quick look asked for (--passes, --train-size where the script has them)."""
    return {k: v for k in ("passes", "train_size") if (v := getattr(args, k, None)) is not None}


QUICK_PASSES = "fewer passes, for a quick look (not the study)"


def study_parser(doc, seeds=None, seeds_help=None, passes_help=None):
    """The arguments the studies share: --seeds (if the study has `seeds`), --workers, --passes (if
    `passes_help`) and --scratch."""
    ap = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter, allow_abbrev=False)
    if seeds is not None:
        ap.add_argument("--seeds", type=int, nargs="+", default=seeds, help=seeds_help)
    ap.add_argument("--workers", type=at_least_one, default=os.cpu_count())
    if passes_help:
        ap.add_argument("--passes", type=at_least_one, help=passes_help)
    add_scratch_arg(ap)
    return ap


def quick_look(args, seeds):
    """(the quick look's config overrides, whether the outputs go to scratch/): a quick look, other
    seeds than the study's or --scratch never write results/."""
    quick = quick_overrides(args)
    return quick, bool(quick) or args.seeds != seeds or args.scratch


def check_seeds(seeds, tested=False):
    """Seeds are non-negative and distinct (a repeated seed would train and count the same run twice);
    with `tested` (a study decided by paired t-tests over the seeds) at least two, as one gives no test."""
    if tested and len(seeds) < 2:
        raise ValueError(f"the decision is a paired t-test over seeds: give at least 2 seeds, got {seeds}")
    if any(s < 0 for s in seeds):
        raise ValueError(f"seeds must be non-negative, got {seeds}")
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"seeds must be distinct, got {seeds}")


def validated(ap, build):
    """build() (every config and list an invocation will use), or exit with status 2 and the
    ValueError's message before anything trains."""
    try:
        return build()
    except ValueError as e:
        ap.error(str(e))


# The studies' runs on the validation split, each kept in results/<study>/runs/ as it finishes (config,
# provenance, CSVs), so that a study longer than one sitting resumes from the runs kept so far.

VALIDATION_TRAIN = 50_000  # the images repro.data.validation_split trains on


def folder(name):
    return name.replace(" ", "_")


def kept(dest, config, seed, split="validation"):
    """Whether `dest` holds a finished run of this config and seed on `split` ("validation" or "train":
    run_one's), with config.json and all passes in metrics.csv."""
    import pandas as pd
    from repro.config import Config
    try:
        stored = json.loads((dest / "config.json").read_text())
        passes = len(pd.read_csv(dest / "metrics.csv"))
    except (OSError, ValueError):
        return False
    # as run_one records a validation run: at most the 50,000 images that train
    trains = replace(config, train_size=min(config.train_size, VALIDATION_TRAIN)) if split == "validation" else config
    try:
        same = Config.from_dict(stored) == trains
    except (TypeError, ValueError):
        return False
    return same and stored.get("seed") == seed and passes == config.passes


def keep(run_dir, dest):
    """Copy a finished run's config, provenance and CSVs to `dest` (emptied first)."""
    shutil.rmtree(dest, ignore_errors=True)
    dest.mkdir(parents=True)
    for f in os.listdir(run_dir):
        if f.endswith((".json", ".csv")):
            shutil.copy(run_dir / f, dest / f)


def validation_study(configs, seeds, kept_dir, runs, workers):
    """Train every {setting: config} x seed not yet kept in `kept_dir` (seed by seed, so that a stopped
    study has whole pairs), keeping each as it ends; then (metrics, eps) of all of them, with a
    `setting` column first and the held-out errors named val_*."""
    import pandas as pd
    path = lambda name, s: Path(kept_dir) / f"{folder(name)}_seed{s}"
    todo = [(name, s) for s in seeds for name in configs if not kept(path(name, s), configs[name], s)]
    print(f"{len(configs) * len(seeds) - len(todo)} runs already kept in {kept_dir}, {len(todo)} to train", flush=True)
    run_dir = lambda name, s: Path(runs) / folder(name) / f"seed{s}"
    labels = {f"{name} seed {s}": (name, s) for name, s in todo}
    run_all([job(label, configs[name], s, run_dir(name, s), "validation", eval_train="last") for label, (name, s) in labels.items()],
            workers, on_finish=lambda label: keep(run_dir(*labels[label]), path(*labels[label])))
    first = lambda df: df[["setting"] + [c for c in df.columns if c != "setting"]]
    frames = {f: first(pd.concat([pd.read_csv(path(name, s) / f).assign(setting=name) for s in seeds for name in configs]))
              for f in ("metrics.csv", "eps.csv")}
    metrics = frames["metrics.csv"].rename(columns={"test_error": "val_error", "test_loss": "val_loss", "test_misses": "val_misses"})
    return metrics, frames["eps.csv"]


def settings_study(doc, experiment, seeds, settings, decide, rule):
    """The recipe and head studies: each of settings() ({name: overrides of the "paper" variant}) x
    seed on the validation split, then decide({name: {seed: the last pass's validation error}}).
    Returns (out, metrics, eps, decision), the decision with `rule` first."""
    ap = study_parser(doc, seeds, passes_help=QUICK_PASSES)
    args = ap.parse_args()
    quick, scratch = quick_look(args, seeds)
    out, runs = output_dirs(experiment, scratch, overrides=quick)

    def configs():
        check_seeds(args.seeds, tested=True)
        return {name: get_config("paper", **o, **quick) for name, o in settings().items()}
    config = validated(ap, configs)
    confirm_outputs(f"make {experiment.replace('_', '-')}", scratch, out, runs)
    metrics, eps = validation_study(config, args.seeds, out / "runs", runs, args.workers)
    last = metrics.groupby(["setting", "seed"], sort=False).tail(1)
    decision = dict(rule=rule, **decide({name: dict(zip(g.seed, g.val_error)) for name, g in last.groupby("setting", sort=False)}))
    out.mkdir(parents=True, exist_ok=True)
    return out, metrics, eps, decision


def finish_study(out, render, run_dirs=(), t0=None):
    """The end of a study: each run's provenance kept under out/runs (emptied first, so that no run
    of an earlier grid stays), the wall time since `t0` (if given), then render(out)'s texts written;
    prints table.md."""
    if run_dirs:
        shutil.rmtree(out / "runs", ignore_errors=True)
    for where in run_dirs:
        keep_provenance(where, out / "runs" / Path(where).name)
    if t0 is not None:
        write_invocation(out, time.time() - t0)
    write(out, render(out), blocks=False)
    print((out / "table.md").read_text())
