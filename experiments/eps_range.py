"""`make eps-range`: the paper's first-pass step sizes as a diagnostic of the unstated choices.

Sec. III-B / Appendix C: in the first pass the step sizes eps_k = eta / (mu + h_kk) ranged "about" from
7e-5 to 0.016 (paper.FIRST_PASS_EPS_RANGE), with eta = 5e-4 and mu = 0.02, i.e. every h_kk between
about 0.011 and 7. They are computed at initialisation, so each reading of the text costs one
curvature estimate and no training. Readings (FACTORS, every combination, 2^7 = 128):

  h_sharing          h summed over the connections that share a weight (Appendix C) or averaged
  bias_init          biases drawn like the weights, or zero (not stated)
  init_fan_power     +-2.4/F (the text) or +-2.4/sqrt(F)
  subsampling_input  S2/S4 coefficient times the sum of the 2x2 field (Sec. II-B) or its average
  subsampling_init   S2/S4 coefficients drawn like the weights, or all 1 with biases 0 (not stated)
  boundary           d2E/dx^2 = 2 at F6's outputs (stated for eq. 8) or eq. 9's exact diagonal
  mu                 0.02 (the text) or 0.1 (the recipe's)

everything else the faithful recipe (get_config("paper", **reading)). For each reading and seed this
does what training does before its first pass, with the same code: repro.train.setup (the seeded
initial weights, the data, the native step) and repro.train.step_sizes_for_pass(run, 0) (h on 500
patterns of the training set drawn by the run's own generator, shared as config.h_sharing says).

Writes results/eps_range/:
  eps_range.csv  one row per reading, seed and layer ("all", c1 ... f6): eps min, median, max
  table.md       one row per reading: the mean over seeds of the overall min / median / max, their
                 ratios to the paper's ends, whether both are within a factor of 2; sorted by the
                 larger of the two factors; per-layer tables for the recipe and the close readings
                 (render(): made only from eps_range.csv and trained.csv)
  meta.json      provenance (code, versions, machine) and the step that computed the numbers

--train (off by default; 20 passes on 60,000 images per run, about 1.5 min per run on one core):
the readings within a factor of 2 of both ends, SEEDS each, trained with the paper's schedule via
runner.run_all (cached in runs/eps_range/<reading>/seed<k>/), their test errors in table.md next to
the paper's 0.95% (trained.csv, runs/ with each run's config and provenance).

Only the full default run (default seeds, no --passes or --train-size) writes results/, and only from
committed code; any other run, or --scratch, writes scratch/results/eps_range/ (and caches runs in
scratch/runs/eps_range/).
"""
import argparse
import itertools
import json
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import pandas as pd
import torch

from blocks import write
from runner import (add_scratch_arg, at_least_one, check_seeds, confirm_outputs, job, keep_provenance, output_dirs,
                    quick_overrides, run_all, train_size, validated)
from repro import data as mnist
from repro import paper
from repro.config import get_config
from repro.provenance import provenance
from repro.sdlm import eps_stats
from repro.train import setup, step_sizes_for_pass

SEEDS = [0, 1, 2]
FACTORS = {  # config field: its readings; the text's (or Appendix C's) first where it states one
    "h_sharing": ("sum", "mean"),
    "bias_init": ("uniform", "zero"),
    "init_fan_power": (1.0, 0.5),
    "subsampling_input": ("sum", "average"),
    "subsampling_init": ("uniform", "one"),
    "boundary": ("paper", "exact"),
    "mu": (paper.MU, 0.1),
}
HEADINGS = {  # table column and how each reading is written there
    "h_sharing": ("h over shared connections", {"sum": "sum", "mean": "mean"}),
    "bias_init": ("biases", {"uniform": "uniform", "zero": "zero"}),
    "init_fan_power": ("initial weights", {1.0: "+-2.4/F", 0.5: "+-2.4/sqrt(F)"}),
    "subsampling_input": ("S2/S4 input", {"sum": "sum", "average": "average"}),
    "subsampling_init": ("S2/S4 coefficients", {"uniform": "uniform", "one": "1, bias 0"}),
    "boundary": ("boundary d2E/dx2", {"paper": "2", "exact": "exact"}),
    "mu": ("mu", None),
}
LAYERS = ("all", "c1", "s2", "c3", "s4", "c5", "f6")
STATS = ("min", "median", "max")
WITHIN = 2.0  # "within a factor of 2 of both ends"
# variants that are readings here (a reading that is two of them takes the first name)
NAMED = ("paper", "paper-mu0.02", "paper-literal")


def reading_of(config):
    """The values of the FACTORS fields in `config`."""
    return {k: getattr(config, k) for k in FACTORS}


def readings():
    """Every combination of FACTORS, plus the recipe's own reading should its mu not be one of them."""
    out = [dict(zip(FACTORS, values)) for values in itertools.product(*FACTORS.values())]
    recipe = reading_of(get_config("paper"))
    return out if recipe in out else out + [recipe]


def name(reading):
    """A reading as a directory name, `field=value` joined by commas, in FACTORS order."""
    return ",".join(f"{k}={reading[k]}" for k in FACTORS)


def variant_of(reading):
    """The named variant (NAMED) whose config is this reading, or ""."""
    config = get_config("paper", **reading)
    return next((v for v in NAMED if get_config(v) == config), "")


def first_pass_stats(config, seed, data, run_dir, require_portable=False):
    """(eps_stats of pass 1, the step's kind) for `config` and `seed`, by the code training runs before
    its first pass: setup() (initial weights, data, step) and step_sizes_for_pass(run, 0). `run_dir`
    receives setup's config.json and meta.json; it must hold no checkpoint (setup would resume it)."""
    run = setup(config, seed, Path(run_dir), data, torch.device("cpu"), True, require_portable)
    if run.start:
        raise ValueError(f"{run_dir} holds a checkpoint: the first pass's step sizes need a fresh run")
    return eps_stats(step_sizes_for_pass(run, 0)[0]), run.step.kind


def diagnose(all_readings, seeds, data, overrides=None, require_portable=False, show=print):
    """eps_range.csv's rows (DataFrame) and the step kinds used, for every reading and seed."""
    rows, kinds = [], set()
    with tempfile.TemporaryDirectory() as tmp:
        for i, reading in enumerate(all_readings):
            config = get_config("paper", **reading, **(overrides or {}))
            for seed in seeds:
                stats, kind = first_pass_stats(config, seed, data, Path(tmp) / f"{i}_seed{seed}", require_portable)
                kinds.add(kind)
                rows += [dict(reading, reading=name(reading), seed=seed, layer=layer, **stats[layer]) for layer in LAYERS]
            if show and (i + 1) % 16 == 0:
                show(f"{i + 1}/{len(all_readings)} readings", flush=True)
    return pd.DataFrame(rows), sorted(kinds)


def summarise(eps):
    """One row per reading: the mean over seeds of the overall min / median / max, their ratios to the
    paper's ends, `factor` = the larger of the two ends' factors (max(r, 1/r)), and whether it is
    within WITHIN; sorted by factor (closest first)."""
    low, high = paper.FIRST_PASS_EPS_RANGE
    overall = eps[eps.layer == "all"]
    mean = overall.groupby("reading", sort=False)[list(STATS)].mean()
    first = overall.groupby("reading", sort=False)[list(FACTORS)].first()
    out = first.join(mean).reset_index()
    out["seeds"] = overall.groupby("reading", sort=False).seed.nunique().values
    out["ratio_min"] = out["min"] / low
    out["ratio_max"] = out["max"] / high
    out["factor"] = [max(r, 1 / r, q, 1 / q) for r, q in zip(out.ratio_min, out.ratio_max)]
    out["within"] = out.factor <= WITHIN
    return out.sort_values("factor", kind="stable").reset_index(drop=True)


def per_layer(eps, reading_name):
    """{layer: {stat: mean over seeds}} of one reading, by its name()."""
    rows = eps[eps.reading == reading_name]
    return {layer: rows[rows.layer == layer][list(STATS)].mean().to_dict() for layer in LAYERS}


def cells(reading):
    out = []
    for field, (_, words) in HEADINGS.items():
        out.append(f"{reading[field]:g}" if words is None else words[reading[field]])
    return out


def error_cell(errors):
    if not errors:
        return "–"
    sd = f" ± {statistics.stdev(errors):.2%}" if len(errors) > 1 else ""
    return f"{statistics.mean(errors):.2%}{sd}"


def recipe_line(summary, recipe):
    """How the recipe's first-pass range compares with the paper's."""
    low, high = paper.FIRST_PASS_EPS_RANGE
    r = summary[summary.reading == name(recipe)].iloc[0]
    ceiling = paper.ETA_SCHEDULE[0] / recipe["mu"]
    return (f"The recipe (`paper`, mu = {recipe['mu']:g}): first-pass eps {r['min']:.1e} to {r['max']:.1e} against the "
            f"paper's {low:g} to {high:g}, {r.factor:.1f} times off at the farther end; "
            + (f"its ceiling eta / mu = {ceiling:g} is below the paper's largest eps, so the paper's upper end "
               "is out of its reach." if ceiling < high else f"its ceiling eta / mu = {ceiling:g} is above the "
               "paper's largest eps."))


def table(eps, trained=None):
    """table.md from eps_range.csv's rows: the readings, the recipe's layers, the close readings'
    layers, and (with `trained`, trained.csv's rows: the last pass of each trained run) their errors."""
    low, high = paper.FIRST_PASS_EPS_RANGE
    summary, seeds = summarise(eps), sorted(eps.seed.unique())
    recipe = reading_of(get_config("paper"))
    close = summary[summary.within]
    head = [HEADINGS[f][0] for f in FACTORS]
    fmt = lambda v: f"{v:.1e}"
    lines = ["# First-pass step sizes at initialisation, reading by reading\n",
             "Generated by `make eps-range` (experiments/eps_range.py; readings and method: PAPER_NOTES.md, "
             "\"First-pass eps range\"). eps_k = eta / (mu + h_kk) with eta = "
             f"{paper.ETA_SCHEDULE[0]:g} (pass 1) and h_kk estimated, as training does before its first pass, "
             f"on {get_config('paper').hessian_samples} training patterns at the initial weights. Every other "
             "choice is the faithful recipe's. "
             f"Each number is the mean over seeds {', '.join(map(str, seeds))} of that seed's min, median or max over "
             f"all 60,000 weights. The paper: about {low:g} to {high:g} (Sec. III-B). \"factor\" is the larger of "
             f"the two ends' factors off the paper's (max(r, 1/r) for r = min / {low:g} and r = max / {high:g}); rows are "
             "sorted by it, closest first.\n",
             f"{len(close)} of {len(summary)} readings land within a factor of {WITHIN:g} of both ends"
             + (f" (rows 1-{len(close)})." if len(close) else "."), "",
             "No eps can exceed eta / mu: " + "; ".join(
                 f"{paper.ETA_SCHEDULE[0] / mu:g} for mu = {mu:g} ({paper.ETA_SCHEDULE[0] / mu / high:.2f} x the paper's "
                 f"{high:g})" for mu in sorted(set(summary.mu))) + ". The paper's smallest eps, "
             f"{low:g}, means a largest h of about {paper.ETA_SCHEDULE[0] / low - paper.MU:.1f} (with mu = {paper.MU:g}).",
             "", recipe_line(summary, recipe), "",
             "| # | " + " | ".join(head) + f" | variant | eps min | eps median | eps max | min / {low:g} | max / {high:g} | "
             f"factor | within a factor of {WITHIN:g} of both ends? |",
             "|---" * (len(head) + 10) + "|"]
    for i, r in summary.iterrows():
        reading = {f: r[f] for f in FACTORS}
        variant = variant_of(reading)
        lines.append(f"| {i + 1} | " + " | ".join(cells(reading)) + f" | {variant} | {fmt(r['min'])} | "
                     f"{fmt(r['median'])} | {fmt(r['max'])} | {r.ratio_min:.2f} | {r.ratio_max:.2f} | "
                     f"{r.factor:.1f} | {'yes' if r.within else 'no'} |")

    def layer_rows(reading_name):
        return [f"| {layer} | {fmt(s['min'])} | {fmt(s['median'])} | {fmt(s['max'])} |"
                for layer, s in per_layer(eps, reading_name).items()]

    lines += ["", "Per layer, the faithful recipe (`paper`: " + ", ".join(
        f"{HEADINGS[f][0]} {c}" for f, c in zip(FACTORS, cells(recipe))) + "), mean over seeds:", "",
        "| layer | eps min | eps median | eps max |", "|---|---|---|---|"] + layer_rows(name(recipe))
    for i, r in close.iterrows():
        reading = {f: r[f] for f in FACTORS}
        lines += ["", f"Per layer, reading #{i + 1} (" + ", ".join(
            f"{HEADINGS[f][0]} {c}" for f, c in zip(FACTORS, cells(reading))) + "), mean over seeds:", "",
            "| layer | eps min | eps median | eps max |", "|---|---|---|---|"] + layer_rows(r.reading)
    if trained is not None:
        passes = sorted(int(p) for p in trained["pass"].unique()) or [paper.PASSES]
        passes = " or ".join(map(str, passes)) + (" pass" if passes == [1] else " passes")
        lines += ["", f"## The readings within a factor of {WITHIN:g}, trained\n",
                  f"Each trained on the 60,000 training images for {passes} with the paper's eta schedule "
                  "(everything else as in the table above); errors after the last pass on the 10,000 test images "
                  "and the whole training set, mean ± standard deviation over seeds. The paper: "
                  f"{paper.TEST_ERROR:.2%} test error, {paper.TRAIN_ERROR:.2%} training error.", "",
                  "| # | " + " | ".join(head) + " | seeds | test error | per seed | train error | paper's test error |",
                  "|---" * (len(head) + 6) + "|"]
        for i, r in close.iterrows():
            t = trained[trained.reading == r.reading]
            errors = t.sort_values("seed").test_error.tolist()
            lines.append(f"| {i + 1} | " + " | ".join(cells({f: r[f] for f in FACTORS})) + f" | {len(t)} | "
                         f"{error_cell(errors)} | {', '.join(f'{e:.2%}' for e in errors) or '–'} | "
                         f"{error_cell(t.train_error.tolist())} | {paper.TEST_ERROR:.2%} |")
        if not len(close):
            lines.append("\nNo reading lands within a factor of 2 of both ends: nothing was trained.")
    return "\n".join(lines) + "\n"


def render(results_dir):
    """{"table.md": text}, made only from the committed eps_range.csv and, where --train wrote it,
    trained.csv (and the committed code)."""
    results_dir = Path(results_dir)
    eps = pd.read_csv(results_dir / "eps_range.csv")
    trained = pd.read_csv(results_dir / "trained.csv") if (results_dir / "trained.csv").exists() else None
    return {"table.md": table(eps, trained)}


def train_close(close, seeds, runs, quick, workers):
    """Train the close readings (runner.run_all, cached in `runs`); the last pass of each run."""
    run_dir = lambda r, s: runs / r.reading / f"seed{s}"
    run_all([job(f"eps-range #{i + 1} seed {s}", get_config("paper", **{f: r[f] for f in FACTORS}, **quick), s,
                 run_dir(r, s), eval_train="last", may_fail=True)  # readings of the text may not train
             for i, r in close.iterrows() for s in seeds], workers)
    rows = [pd.read_csv(run_dir(r, s) / "metrics.csv").tail(1).assign(reading=r.reading)
            for _, r in close.iterrows() for s in seeds]
    columns = ["reading", "seed", "pass", "test_error", "test_misses", "train_error", "train_error_online"]
    return pd.concat(rows)[columns] if rows else pd.DataFrame(columns=columns)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                                 allow_abbrev=False)
    ap.add_argument("--seeds", type=int, nargs="+", default=SEEDS)
    ap.add_argument("--train", action="store_true",
                    help="also train the readings within a factor of 2 of both ends (long: 20 passes per run)")
    ap.add_argument("--workers", type=at_least_one, help="trainings side by side (with --train; default: one per core)")
    ap.add_argument("--passes", type=at_least_one, help="fewer training passes, for a quick look (with --train)")
    ap.add_argument("--train-size", type=train_size, help="fewer training images, for a quick look")
    add_scratch_arg(ap)
    args = ap.parse_args()
    for flag, value in (("--passes", args.passes), ("--workers", args.workers)):
        if value is not None and not args.train:  # only the trainings use it: it would be ignored
            ap.error(f"argument {flag}: only with --train (without it nothing trains)")
    quick = quick_overrides(args)
    scratch = bool(quick) or args.seeds != SEEDS or args.scratch
    out, runs = output_dirs("eps_range", scratch, overrides=quick)

    def build():  # every config this invocation uses, checked before anything runs
        check_seeds(args.seeds)
        return [get_config("paper", **r, **quick) for r in readings()]
    validated(ap, build)
    confirm_outputs("make eps-range", scratch, out, runs if args.train else None)
    torch.set_num_threads(1)
    data = mnist.load_mnist()
    diagnosis = {k: v for k, v in quick.items() if k == "train_size"}  # the curvature patterns come from these
    t0 = time.time()
    eps, kinds = diagnose(readings(), args.seeds, data, diagnosis, require_portable=not scratch)
    seconds = time.time() - t0
    summary = summarise(eps)
    close = summary[summary.within]
    print(f"{len(readings())} readings x {len(args.seeds)} seeds in {seconds:.0f} s; {len(close)} within a factor of "
          f"{WITHIN:g} of both ends of the paper's {paper.FIRST_PASS_EPS_RANGE}", flush=True)

    trained = train_close(close, args.seeds, runs, quick, args.workers) if args.train else None
    out.mkdir(parents=True, exist_ok=True)
    eps.to_csv(out / "eps_range.csv", index=False)
    meta = dict(provenance("cpu"), seeds=args.seeds, step=kinds, seconds=seconds, overrides=quick)
    (out / "meta.json").write_text(json.dumps(meta, indent=1) + "\n")
    # trained runs of an earlier invocation must not pass for this one's (with --train, cached runs are read)
    shutil.rmtree(out / "runs", ignore_errors=True)
    (out / "trained.csv").unlink(missing_ok=True)
    if trained is not None:
        trained.to_csv(out / "trained.csv", index=False)
        for _, r in close.iterrows():
            for s in args.seeds:
                keep_provenance(runs / r.reading / f"seed{s}", out / "runs" / f"{r.reading}_seed{s}")
    write(out, render(out), blocks=False)
    print((out / "table.md").read_text())


if __name__ == "__main__":
    main()
