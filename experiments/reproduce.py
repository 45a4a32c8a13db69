"""`make reproduce`, `make distortions`, `make training-size`: train the rows of one experiment
(EXPERIMENTS) for each seed, one process per core, then write results/<experiment>/:

  metrics.csv          one row per variant, seed and pass (errors as fractions)
  eps.csv              min / median / max of the SDLM step sizes per pass, overall and per layer
  invocation.json      what the summary says of the invocation and no CSV holds (its wall time)
  summary.md           final errors per seed, mean +- std next to the paper, first-pass eps range;
                       render() makes it (and RESULTS.md's block) from the files above only
  learning_curves.png  Fig. 5: on-the-fly training error and test error per pass
  runs/                each run's config.json and meta.json (seed, versions, git commit, device) and
                       its final weights (model.pt, a state_dict), which `make figures` reads

reproduce      Sec. III-B: the faithful recipe (`paper`), seeds 0-9; the text's mu = 0.02
               (`paper-mu0.02`: the same config as `paper` while the recipe keeps 0.02, so not
               trained twice); and the word-for-word `paper-literal`, seeds 0-4
distortions    Sec. III-C: the recipe on 60,000 originals + 540,000 distortions (`distortions`), and
               with distortions drawn anew every pass (`distortions-fresh`); seeds 0-4
training_size  Fig. 6: the recipe on the first 15,000 and 30,000 training images; seeds 0-2 (the
               60,000 point is `make reproduce`'s)

Runs live in runs/<experiment>/<variant>/seed<k>/ with a checkpoint after every pass: an interrupted
invocation resumes, and finished runs are not trained again. Only the full default run (no --passes
or --train-size, the default seeds, on the CPU) writes results/ and RESULTS.md (reproduce also README.md's
headline), and only from committed code; any other run, or one with --scratch, writes
scratch/results/<experiment>/ and scratch/runs/<experiment>/.
"""
import argparse
import os
import shutil
import statistics
import time
from pathlib import Path

import pandas as pd

from blocks import RESULTS_MD, invocation, write, write_invocation
from stats import TRAINS_BELOW
from runner import (add_scratch_arg, at_least_one, check_seeds, confirm_outputs, job, keep_provenance,
                    output_dirs, quick_overrides, run_all, torch_device, train_size, validated)
from repro import paper
from repro.config import MAY_NOT_TRAIN, get_config

PAPER_ROW = {  # what the paper reports for each experiment: (label, test error, training error)
    "reproduce": ("paper (Sec. III-B)", paper.TEST_ERROR, paper.TRAIN_ERROR),
    "distortions": ("paper (Sec. III-C), with distortions", paper.TEST_ERROR_DISTORTED, None),
    "training_size": None,  # Fig. 6 gives its values only as a graph
}
EXPERIMENTS = {  # experiment: (title, rows: (name, variant, overrides, at most this many seeds), default seeds)
    "reproduce": ("LeNet-5 on MNIST, no distortions: reproduction of Sec. III-B",
                  [("paper", "paper", {}, None), ("paper-mu0.02", "paper-mu0.02", {}, None),
                   ("paper-literal", "paper-literal", {}, 5)], list(range(10))),
    "distortions": ("LeNet-5 on MNIST with distortions: reproduction of Sec. III-C",
                    [("distortions", "distortions", {}, None), ("distortions-fresh", "distortions-fresh", {}, None)],
                    list(range(5))),
    "training_size": ("LeNet-5 on smaller training sets: Fig. 6",
                      [("paper-15000", "paper", dict(train_size=15_000), None),
                       ("paper-30000", "paper", dict(train_size=30_000), None)], list(range(3))),
}


def same_rows(experiment):
    """{row: an earlier row with the same config}: such a row (`paper-mu0.02` when the recipe's mu is
    the text's) is not trained twice and the summary says so."""
    seen, same = {}, {}
    for name, variant, overrides, _ in EXPERIMENTS[experiment][1]:
        config = get_config(variant, **overrides)
        match = [n for n, c in seen.items() if c == config]
        if match:
            same[name] = match[0]
        else:
            seen[name] = config
    return same


def collect(runs_dir, jobs, out):
    shutil.rmtree(out / "runs", ignore_errors=True)  # a run of an earlier invocation must not pass for this one's
    metrics, eps = [], []
    for variant, seed in jobs:
        run = Path(runs_dir) / variant / f"seed{seed}"
        metrics.append(pd.read_csv(run / "metrics.csv").assign(variant=variant))
        eps.append(pd.read_csv(run / "eps.csv").assign(variant=variant))
        keep_provenance(run, out / "runs" / f"{variant}_seed{seed}", weights=True)
    first = lambda df: df[["variant"] + [c for c in df.columns if c != "variant"]]
    return first(pd.concat(metrics)), first(pd.concat(eps))


def summary(experiment, metrics, eps, wall):
    """summary.md; `wall`: the invocation's wall time in seconds (invocation.json)."""
    last = metrics.groupby(["variant", "seed"], sort=False).tail(1)
    first_eps = eps[(eps["pass"] == 1) & (eps["layer"] == "all")]
    target = "make " + experiment.replace("_", "-")
    lines = [f"# {EXPERIMENTS[experiment][0]}\n",
             f"Generated by `{target}`; each run's config and provenance are in results/{experiment}/runs/. Errors are on the 10,000 test images "
             "and the whole training set after the last pass; the on-the-fly training error is measured during "
             "the last pass, as in Fig. 5.\n",
             "| variant | seed | passes | test error | test misses | train error | train error (on the fly) | "
             "first-pass eps min..max | training time |",
             "|---|---|---|---|---|---|---|---|---|"]
    for _, r in last.iterrows():
        e = first_eps[(first_eps.variant == r.variant) & (first_eps.seed == r.seed)].iloc[0]
        t = metrics[(metrics.variant == r.variant) & (metrics.seed == r.seed)][["seconds", "eval_seconds"]].sum().sum()
        # repro.train.failed_at; older runs lack the column (NaN here), and NaN is not == True
        failed = " (failed: at chance)" if r.get("failed") == True else ""  # noqa: E712
        lines.append(f"| {r.variant} | {r.seed} | {r['pass']} | {r.test_error:.2%}{failed} | {r.test_misses} | "
                     f"{r.train_error:.2%} | {r.train_error_online:.2%} | {e['min']:.1e}..{e['max']:.1e} | {t / 60:.1f} min |")
    lines += ["", "| | test error | train error | first-pass eps range |", "|---|---|---|---|"]
    if PAPER_ROW[experiment]:
        label, test, train = PAPER_ROW[experiment]
        lines.append(f"| {label} | {test:.2%} | {f'{train:.2%}' if train else 'not stated'} | "
                     f"{paper.FIRST_PASS_EPS_RANGE[0]:.0e}..{paper.FIRST_PASS_EPS_RANGE[1]:.3f} |")
    for variant, g in last.groupby("variant", sort=False):
        te, tr = g.test_error.tolist(), g.train_error.tolist()
        spread = lambda v: f" ± {statistics.stdev(v):.2%}" if len(v) > 1 else ""
        e = first_eps[first_eps.variant == variant]
        lines.append(f"| {variant}, mean over {len(g)} seed(s) | {statistics.mean(te):.2%}{spread(te)} | "
                     f"{statistics.mean(tr):.2%}{spread(tr)} | {e['min'].min():.1e}..{e['max'].max():.1e} |")
    lines += [f"| {name} | the same config as {other}: not trained twice | | |"
              for name, other in same_rows(experiment).items()]
    per_layer = eps[(eps["pass"] == 1) & (eps.variant == last.variant.iloc[0])].groupby("layer")[["min", "median", "max"]].mean()
    lines += ["", f"First-pass step sizes per layer ({last.variant.iloc[0]}, mean over seeds):", "",
              "| layer | eps min | eps median | eps max |", "|---|---|---|---|"]
    lines += [f"| {layer} | {r['min']:.1e} | {r['median']:.1e} | {r['max']:.1e} |" for layer, r in per_layer.iterrows()]
    lines += below_mu_table(eps, last.variant.iloc[0])
    total = metrics[["seconds", "eval_seconds"]].sum().sum()
    lines += ["", f"Training and evaluation time summed over the {len(last)} runs: {total / 60:.1f} min "
              f"(run side by side, one process per core; this invocation took {wall / 60:.1f} min of wall time, "
              "runs finished by an earlier invocation are read, not retrained).", ""]
    return "\n".join(lines)


def below_mu_table(eps, variant):
    """The curvature diagnostic at the first and the last pass: per layer, the share of parameters whose
    h_kk was below mu, so that their step eta / (mu + h) is set by mu (PAPER_NOTES, "SDLM in practice").
    Runs made before the diagnostic existed have no h_below_mu column: no table."""
    if "h_below_mu" not in eps.columns or eps.h_below_mu.isna().all():
        return []
    e = eps[eps.variant == variant]
    first, last = e["pass"].min(), e["pass"].max()
    share = lambda p: e[e["pass"] == p].groupby("layer", sort=False).h_below_mu.mean()
    rows = pd.DataFrame({"first": share(first), "last": share(last)})
    return ["", f"Share of parameters with h_kk below mu ({variant}, mean over seeds), when the step sizes of the first "
            f"and the last pass were set:", "", f"| layer | pass {first} | pass {last} |", "|---|---|---|"] + \
        [f"| {layer} | {r['first']:.0%} | {r['last']:.0%} |" for layer, r in rows.iterrows()]


def headline(metrics):
    """README's first result: the recipe's test error over its seeds next to the paper's, the text's
    mu, and how many seeds of the word-for-word text train at all (end below TRAINS_BELOW test error)."""
    last = metrics.groupby(["variant", "seed"], sort=False).tail(1)
    errors = lambda variant: last[last.variant == variant].test_error.tolist()
    spread = lambda e: (f"{statistics.mean(e):.2%} ± {statistics.stdev(e):.2%} test error over {len(e)} seeds "
                        f"({min(e):.2%}–{max(e):.2%})" if len(e) > 1 else f"{e[0]:.2%} test error (one seed)")
    gap = statistics.mean(errors("paper")) - paper.TEST_ERROR
    within = "within" if abs(gap) <= paper.ERROR_UNCERTAINTY else "outside"
    text = [f"**The faithful recipe: {spread(errors('paper'))}**, against the paper's {paper.TEST_ERROR:.2%}: "
            f"{abs(gap) * 100:.2f} points {'above' if gap > 0 else 'below'} it, {within} the paper's stated "
            f"uncertainty of {paper.ERROR_UNCERTAINTY * 100:.1f} point."]
    if "paper-mu0.02" in set(last.variant):
        text.append(f"With the text's mu = {paper.MU}: {spread(errors('paper-mu0.02'))}.")
    else:
        text.append(f"The recipe uses the text's mu = {paper.MU} (the pre-registered mu study kept it: "
                    "`results/mu_study/table.md`).")
    literal = errors("paper-literal")
    if literal:
        text.append(f"`paper-literal`, the text word for word, trains in {sum(e < TRAINS_BELOW for e in literal)} of "
                    f"{len(literal)} seeds (test error below {TRAINS_BELOW:.0%}; it ends at "
                    f"{', '.join(f'{e:.1%}' for e in literal)}).")
    return " ".join(text) + "\n"


def render(results_dir):
    """The texts made from results/<experiment>/ (metrics.csv, eps.csv, invocation.json): summary.md
    and the experiment's block of RESULTS.md (for reproduce also RESULTS.md's recipe headline)."""
    results_dir = Path(results_dir)
    experiment = results_dir.name
    metrics, eps = (pd.read_csv(results_dir / f) for f in ("metrics.csv", "eps.csv"))
    text = summary(experiment, metrics, eps, invocation(results_dir)["wall_seconds"])
    texts = {"summary.md": text,
             RESULTS_MD + experiment: text.split("\n", 1)[1] + f"\n![learning curves](results/{experiment}/learning_curves.png)\n"}
    if experiment == "reproduce":
        texts[RESULTS_MD + "recipe-headline"] = headline(metrics)
    return texts


def learning_curves(metrics, path, paper_test):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, metrics.variant.nunique(), figsize=(5.5 * metrics.variant.nunique(), 4), squeeze=False)
    for ax, (variant, g) in zip(axes[0], metrics.groupby("variant", sort=False)):
        for seed, s in g.groupby("seed"):
            ax.plot(s["pass"], 100 * s.train_error_online, "-", color="tab:blue", alpha=0.7,
                    label="training error (on the fly)" if seed == g.seed.min() else None)
            ax.plot(s["pass"], 100 * s.test_error, "-", color="tab:red", alpha=0.7,
                    label="test error" if seed == g.seed.min() else None)
        ax.axhline(100 * paper_test, color="tab:red", ls=":", label=f"paper's test error ({paper_test:.2%})")
        ax.set(title=f"{variant} ({g.seed.nunique()} seed(s))", xlabel="training pass", ylabel="error (%)",
               yscale="log", ylim=(0.1, 100), xticks=range(0, 21, 4))  # log: the literal run sits near 90%
        ax.legend(fontsize=8, loc="lower left")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                                 allow_abbrev=False)
    ap.add_argument("--experiment", default="reproduce", choices=list(EXPERIMENTS))
    ap.add_argument("--seeds", type=int, nargs="+", help="default: the experiment's (see above)")
    ap.add_argument("--workers", type=at_least_one, default=os.cpu_count())
    ap.add_argument("--device", type=torch_device, default="cpu",
                    help="cpu, or cuda[:N] for a quick look (writes scratch/: results/ come from the portable CPU step)")
    ap.add_argument("--passes", type=at_least_one, help="fewer passes, for a quick look (not the paper's recipe)")
    ap.add_argument("--train-size", type=train_size, help="train on the first N images, for a quick look")
    add_scratch_arg(ap)
    args = ap.parse_args()
    experiment = args.experiment
    title, rows, default_seeds = EXPERIMENTS[experiment]
    if args.train_size is not None and any("train_size" in overrides for _, _, overrides, _ in rows):
        ap.error(f"argument --train-size: not with --experiment {experiment}, whose rows differ by their training size")
    seeds = args.seeds or default_seeds
    quick = quick_overrides(args)
    # a GPU run goes to scratch/ like any other departure: train() refuses it for results/ (not portable)
    scratch = bool(quick) or seeds != default_seeds or args.scratch or args.device != "cpu"
    same = same_rows(experiment)
    jobs = [(name, variant, {**overrides, **quick}, s) for name, variant, overrides, most in rows
            if name not in same for s in seeds[:most]]

    def build_configs():  # every config this invocation trains, checked before any of them trains
        check_seeds(seeds)
        return [get_config(variant, **overrides) for _, variant, overrides, _ in jobs]
    configs = validated(ap, build_configs)
    out, runs = output_dirs(experiment, scratch, overrides=quick)
    confirm_outputs("make " + experiment.replace("_", "-"), scratch, out, runs)
    workers = max(1, min(args.workers, len(jobs)))
    progress = "bar" if workers == 1 else "lines"
    t0 = time.time()
    # Fig. 5's training error is measured on the fly during each pass, as in the paper; the whole
    # training set is measured after the last pass only (a third of a run's time otherwise)
    run_all([job(f"{name} seed {s}", config, s, runs / name / f"seed{s}", device=args.device, progress=progress,
                 eval_train="last", may_fail=variant in MAY_NOT_TRAIN)
             for (name, variant, _, s), config in zip(jobs, configs)], workers)
    out.mkdir(parents=True, exist_ok=True)
    metrics, eps = collect(runs, [(name, s) for name, _, _, s in jobs], out)
    metrics.to_csv(out / "metrics.csv", index=False)
    eps.to_csv(out / "eps.csv", index=False)
    write_invocation(out, time.time() - t0)
    paper_test = PAPER_ROW[experiment][1] if PAPER_ROW[experiment] else paper.TEST_ERROR
    learning_curves(metrics, out / "learning_curves.png", paper_test)
    write(out, render(out), blocks=not scratch)
    print((out / "summary.md").read_text())
    print(f"results in {out}")


if __name__ == "__main__":
    main()
