"""`make ablations`: each 1998 choice against its modern counterpart, one at a time, then the modern
"LeNet-5" of tutorials and that network with one paper choice put back (repro.config.VARIANTS).

Protocol. Every variant trains on the same 60,000 images in the same pattern order per seed (the
order depends on the seed only), for the paper's 20 passes, and is measured on the 10,000 test
images after every pass and on the whole training set after the last. The settings a variant needs
and the paper does not give are chosen first, on a validation split (train on the first 50,000
training images, measure on the last 10,000; the test set is never looked at), with seed 0 only:

  sgd      one global rate for pass 1, scaled down with the paper's eta schedule (SEARCH["sgd"])
  adam     Adam's rate and mini-batch size, for the paper's network (SEARCH["adam"])
  modern   the same for the modern network; modern+tanh and modern+rbf inherit its choice

The setting with the lowest validation error after the last pass wins (ties: the first listed).
Runs live in runs/ablations/<variant>/[<chosen setting>/]seed<N> (select/ for the search), each with a
checkpoint per pass: an interrupted `make ablations` resumes, finished runs are read, not retrained,
and a setting that a changed grid chooses anew trains in its own directory. Only the full default run
(all default variants and seeds, no --passes) writes results/ and README.md, and only from committed
code; any other run, or one with --scratch, writes scratch/results/ablations/ and caches runs in
scratch/runs/ablations/. Writes results/ablations/:

  metrics.csv     one row per variant, seed and pass
  selection.csv   the validation search, one row per setting (last pass)
  table.md        per variant: what changed, parameters, test error mean +- std (min-max), the
                  difference from the faithful recipe and whether it exceeds the seed noise, time
  ablations.png   final test error per variant, every seed shown
  runs/           each run's config.json and meta.json (seed, versions, git commit, device)
"""
import argparse
import itertools
import statistics
import time

import pandas as pd

from readme import update_block
from runner import (add_scratch_arg, at_least_one, check_seeds, confirm_outputs, job, keep_provenance,
                    output_dirs, quick_overrides, run_all, validated)

SEEDS = [0, 1, 2, 3, 4]
SELECT_SEED = 0
# variant: {config field: values tried on the validation split}
# The rates span a factor of 30 and were widened where a first, narrower search chose an end value;
# the batch sizes are the two ends of the range tutorials use (a bound by design, not searched past).
SEARCH = {
    "sgd": dict(lr=[3e-4, 1e-3, 3e-3, 1e-2]),
    "adam": dict(lr=[1e-4, 3e-4, 1e-3, 3e-3], batch_size=[32, 128]),
    "modern": dict(lr=[3e-4, 1e-3, 3e-3, 1e-2], batch_size=[32, 128]),
}
INHERIT = {"modern+tanh": "modern", "modern+rbf": "modern"}  # variants trained with another's choice
BASELINE = "paper"


def settings(variant):
    grid = SEARCH[variant]
    return [dict(zip(grid, values)) for values in itertools.product(*grid.values())]


def setting_name(setting):
    return ",".join(f"{k}={v:g}" for k, v in setting.items())


def variant_job(variant, seed, run_dir, split="train", quick=None, **overrides):
    from repro.config import get_config
    label = f"{variant} {setting_name(overrides)} seed {seed}" if overrides else f"{variant} seed {seed}"
    return job(label, get_config(variant, **overrides, **(quick or {})), seed, run_dir, split, eval_train="last")


def run_dir(runs, variant, seed, chosen):
    """A variant's run for one seed; a chosen setting is part of the path, so a new choice trains anew."""
    where = runs / variant / setting_name(chosen[variant]) if variant in chosen else runs / variant
    return where / f"seed{seed}"


def select_dir(runs, variant, setting):
    """The validation-search run of one setting."""
    return runs / "select" / variant / setting_name(setting) / f"seed{SELECT_SEED}"


def selection_jobs(variants, runs, quick):
    return [variant_job(v, SELECT_SEED, select_dir(runs, v, s), "validation", quick, **s)
            for v in variants if v in SEARCH for s in settings(v)]


def select(variants, runs):
    """({variant: chosen overrides}, the search as one row per setting) from the finished selection runs."""
    chosen, rows = {}, []
    for v in [v for v in SEARCH if v in variants]:
        scores = []
        for s in settings(v):
            run = pd.read_csv(select_dir(runs, v, s) / "metrics.csv")
            m = run.iloc[-1]
            scores.append((m.test_error, s))
            rows.append(dict(variant=v, **{k: s.get(k) for k in ("lr", "batch_size")}, seed=SELECT_SEED,
                             val_error=m.test_error, train_error=m.train_error,
                             minutes=(run.seconds.sum() + run.eval_seconds.sum()) / 60))
        chosen[v] = min(scores, key=lambda t: t[0])[1]  # min keeps the first of equal errors
    for v, parent in INHERIT.items():
        if parent in chosen:
            chosen[v] = chosen[parent]
    return chosen, pd.DataFrame(rows)


def table(last, chosen, params):
    from scipy.stats import ttest_ind
    from repro.config import VARIANTS
    base = last[last.variant == BASELINE].test_error.tolist()
    lines = ["# Ablations: one 1998 choice at a time against its modern counterpart\n",
             "Generated by `make ablations`. Test error after pass 20 on the 10,000 test images; mean ± standard "
             "deviation over seeds (min–max). \"vs paper\" is the difference from the faithful recipe (`paper`); "
             "\"beyond seed noise?\" is Welch's t-test on the per-seed errors at p < 0.05 (with 3 seeds a rough "
             "guide, not a proof). Settings marked *chosen* were picked on a validation split (selection.csv).\n",
             "| variant | what changes (overrides of the recipe) | parameters | seeds | test error | min–max | "
             "train error | vs paper | beyond seed noise? | time per run |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for variant, g in last.groupby("variant", sort=False):
        te = g.test_error.tolist()
        sd = f" ± {statistics.stdev(te):.2%}" if len(te) > 1 else ""
        picked = chosen.get(variant, {})  # a chosen value replaces the variant's placeholder
        what = ", ".join(f"{k}={v}" for k, v in VARIANTS[variant].items() if k not in picked)
        what = what or "the faithful recipe"
        if variant in chosen:
            what += "; chosen: " + setting_name(chosen[variant])
        if variant == BASELINE or not base:
            diff, verdict = "–", "–"
        else:
            diff = f"{statistics.mean(te) - statistics.mean(base):+.2%}"
            if len(te) > 1 and len(base) > 1:
                p = ttest_ind(te, base, equal_var=False).pvalue
                verdict = f"{'yes' if p < 0.05 else 'no'} (p = {p:.2g})"
            else:
                verdict = "one seed"
        lines.append(f"| {variant} | {what} | {params[variant]:,} | {len(te)} | {statistics.mean(te):.2%}{sd} | "
                     f"{min(te):.2%}–{max(te):.2%} | {g.train_error.mean():.2%} | {diff} | {verdict} | "
                     f"{g.minutes.mean():.1f} min |")
    return "\n".join(lines) + "\n"


def plot(last, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from repro import paper
    variants = list(dict.fromkeys(last.variant))
    fig, ax = plt.subplots(figsize=(9, 0.42 * len(variants) + 1.2))
    for i, v in enumerate(variants):
        te = 100 * last[last.variant == v].test_error
        ax.plot(te, [i] * len(te), "o", color="tab:blue", alpha=0.6)
        ax.plot([te.mean()], [i], "|", color="black", markersize=14)
    ax.axvline(100 * paper.TEST_ERROR, color="tab:red", ls=":", label="paper's LeNet-5 (0.95%)")
    base = 100 * last[last.variant == BASELINE].test_error
    if len(base):
        ax.axvspan(base.min(), base.max(), color="tab:green", alpha=0.15, label="faithful recipe, seed range")
    ax.set(yticks=range(len(variants)), yticklabels=variants, xlabel="test error after 20 passes (%), dots: seeds, bar: mean")
    ax.invert_yaxis()
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main():
    from repro.config import VARIANTS, get_config
    from repro.layers import param_count
    from repro.model import LeNet5
    default = [v for v in VARIANTS if not v.startswith(("paper-", "distortions"))]  # other make targets run those
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--variants", nargs="+", default=default, choices=list(VARIANTS), metavar="VARIANT")
    ap.add_argument("--seeds", type=int, nargs="+", default=SEEDS)
    ap.add_argument("--workers", type=at_least_one, default=None)
    ap.add_argument("--passes", type=at_least_one, help="fewer passes, for a quick look (not the protocol)")
    add_scratch_arg(ap)
    args = ap.parse_args()
    quick = quick_overrides(args)
    scratch = bool(quick) or args.variants != default or args.seeds != SEEDS or args.scratch
    variants = list(dict.fromkeys(([BASELINE] if BASELINE not in args.variants else []) + args.variants))
    needs = {v: INHERIT.get(v, v) for v in variants if INHERIT.get(v, v) in SEARCH}
    out, runs = output_dirs("ablations", scratch, overrides=quick)

    def build_first_jobs():
        """The search and every run that needs no choice. The runs that use a choice are built after
        the search, so every setting the search may choose is checked here, before anything trains."""
        check_seeds(args.seeds)
        for v in needs:
            for setting in settings(needs[v]):
                get_config(v, **setting, **quick)
        return selection_jobs(sorted(set(needs.values())), runs, quick) + [
            variant_job(v, s, run_dir(runs, v, s, {}), quick=quick) for v in variants if v not in needs for s in args.seeds]
    first = validated(ap, build_first_jobs)
    confirm_outputs("make ablations", scratch, out, runs)
    t0 = time.time()
    run_all(first, args.workers)
    chosen, selection = select(set(needs.values()), runs)
    chosen = {v: c for v, c in chosen.items() if v in variants}
    run_all([variant_job(v, s, run_dir(runs, v, s, chosen), quick=quick, **chosen[v])
             for v in chosen for s in args.seeds], args.workers)

    for v in variants:
        for s in args.seeds:
            keep_provenance(run_dir(runs, v, s, chosen), out / "runs" / f"{v}_seed{s}")
    for v in sorted(set(needs.values())):
        for s in settings(v):
            keep_provenance(select_dir(runs, v, s), out / "runs" / "select" / f"{v}_{setting_name(s)}_seed{SELECT_SEED}")
    frames = [pd.read_csv(run_dir(runs, v, s, chosen) / "metrics.csv").assign(variant=v)
              for v in variants for s in args.seeds]
    metrics = pd.concat(frames)
    metrics = metrics[["variant"] + [c for c in metrics.columns if c != "variant"]]
    metrics["minutes"] = (metrics.seconds + metrics.eval_seconds) / 60
    out.mkdir(parents=True, exist_ok=True)
    metrics.drop(columns="minutes").to_csv(out / "metrics.csv", index=False)
    if len(selection):
        selection.to_csv(out / "selection.csv", index=False)
    last = metrics.groupby(["variant", "seed"], sort=False).tail(1).copy()
    last["minutes"] = metrics.groupby(["variant", "seed"], sort=False).minutes.sum().values
    params = {v: param_count(LeNet5(get_config(v))) for v in variants}
    text = table(last, chosen, params)
    search = selection.minutes.sum() if len(selection) else 0.0
    text += (f"\nTraining and evaluation time summed over the {len(last)} runs: {last.minutes.sum():.0f} min, and "
             f"{search:.0f} min for the {len(selection)} runs of the validation search; run side by side, one process "
             f"per core. This invocation took {(time.time() - t0) / 60:.1f} min of wall time (runs finished by an "
             "earlier invocation are read, not retrained).\n")
    (out / "table.md").write_text(text)
    plot(last, out / "ablations.png")
    if not scratch:
        update_block("ablations", text.split("\n", 1)[1] + "\n![ablations](results/ablations/ablations.png)\n")
    print(text)


if __name__ == "__main__":
    main()
