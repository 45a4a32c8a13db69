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
(all default variants and seeds, no --passes) writes results/ and RESULTS.md, and only from committed
code; any other run, or one with --scratch, writes scratch/results/ablations/ and caches runs in
scratch/runs/ablations/. Writes results/ablations/:

  metrics.csv     one row per variant, seed and pass
  selection.csv   the validation search, one row per setting (last pass)
  invocation.json what the table says of the invocation and no CSV holds (its wall time)
  stats.csv       per variant: seeds, test error mean, std, min, max; against the recipe (paired over
                  seeds): difference, its 95% CI, p, Holm-adjusted p and threshold, verdict; what the
                  variant changes and the recipe's values of those fields
  table.md        the same as a table, with parameters, training error and time per run
  ablations.png   final test error per variant, every seed shown
  runs/           each run's config.json and meta.json (seed, versions, git commit, device)

Statistics (experiments/stats.py). A seed fixes the pattern order, and the initial weights where shapes
and initialisation agree, so each variant is compared with the recipe seed by seed: a two-sided paired
t-test on the per-seed differences of the final test error, with the 95% CI of the mean difference
from the t distribution, and Holm-Bonferroni over all compared variants at alpha = 0.05. The verdict
is "better" or "worse" where Holm rejects, otherwise "not separated from the recipe"; the
findings are sentences built from stats.csv. stats.csv, table.md and both RESULTS.md blocks are render()'s,
made from metrics.csv, selection.csv, invocation.json and the committed code only.
"""
import argparse
import io
import itertools
import json
import math
import time
from pathlib import Path

import pandas as pd

from blocks import RESULTS_MD, invocation, read_block, write, write_invocation
from stats import ALPHA, TRAINS_BELOW, compare
from runner import (add_scratch_arg, at_least_one, check_seeds, confirm_outputs, job, keep_provenance,
                    output_dirs, quick_overrides, run_all, validated)
from repro import paper
from repro.config import VARIANTS, Config, get_config
from repro.layers import param_count
from repro.model import LeNet5

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
    label = f"{variant} {setting_name(overrides)} seed {seed}" if overrides else f"{variant} seed {seed}"
    return job(label, get_config(variant, **overrides, **(quick or {})), seed, run_dir, split, eval_train="last",
               may_fail=True)  # an ablation may not train: it is then recorded as failed


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


def search_rows(variants, runs):
    """The validation search as one row per setting (in settings() order), from the finished runs."""
    rows = []
    for v in [v for v in SEARCH if v in variants]:
        for s in settings(v):
            run = pd.read_csv(select_dir(runs, v, s) / "metrics.csv")
            m = run.iloc[-1]
            rows.append(dict(variant=v, **{k: s.get(k) for k in ("lr", "batch_size")}, seed=SELECT_SEED,
                             val_error=m.test_error, train_error=m.train_error,
                             minutes=(run.seconds.sum() + run.eval_seconds.sum()) / 60))
    return pd.DataFrame(rows)


def choose(selection):
    """{variant: chosen overrides} from the search's rows (selection.csv): the lowest validation error,
    ties to the first setting listed; INHERIT's variants take their parent's choice."""
    chosen = {}
    for v in [v for v in SEARCH if len(selection) and v in set(selection.variant)]:
        errors = selection[selection.variant == v].val_error.tolist()
        if len(errors) != len(settings(v)):
            raise ValueError(f"selection.csv has {len(errors)} settings of {v}, SEARCH has {len(settings(v))}")
        chosen[v] = settings(v)[errors.index(min(errors))]  # index() finds the first of equal errors
    return dict(chosen, **{v: chosen[parent] for v, parent in INHERIT.items() if parent in chosen})


# Recipe fields shown beside the one a variant changes, because they define the recipe's version of it.
CONTEXT = {"init": ("init_scale", "init_fan_power"), "subsampling": ("subsampling_input",), "optimizer": ("mu",)}
VERDICTS = {"lower": "better", "higher": "worse", "not separated": "not separated from the recipe",
            "not tested": "not tested (fewer than two seeds)"}


def changes(variant, chosen):
    """What a variant changes: its overrides of the recipe (a chosen value replaces a placeholder)."""
    picked = chosen.get(variant, {})
    what = ", ".join(f"{k}={v}" for k, v in VARIANTS[variant].items() if k not in picked) or "the faithful recipe"
    return what + (f" (chosen: {setting_name(picked)})" if picked else "")


def against(variant, recipe):
    """The values of the recipe `recipe` (the config its runs used) of the fields a variant changes (and
    of CONTEXT's fields that define them), each marked where the recipe departs from the text
    (paper-literal's value)."""
    text = VARIANTS["paper-literal"]
    fields = [k for k, v in VARIANTS[variant].items() if getattr(recipe, k) != v]
    fields = list(dict.fromkeys(f for k in fields for f in (k, *CONTEXT.get(k, ()))))
    return ", ".join(f"{k}={getattr(recipe, k)}" + (f" (the text: {text[k]})" if k in text else "") for k in fields)


def finals(metrics):
    """One row per variant and seed: the last pass's metrics, with the run's minutes of training and evaluation."""
    last = metrics.groupby(["variant", "seed"], sort=False).tail(1).copy()
    last["minutes"] = (metrics.seconds + metrics.eval_seconds).groupby(
        [metrics.variant, metrics.seed], sort=False).sum().values / 60
    return last


def stats_table(last, chosen, recipe):
    """stats.csv's rows: each variant's final test errors against the recipe's (experiments/stats.py);
    `recipe`: the config of the recipe's runs."""
    values = {v: dict(zip(g.seed, g.test_error)) for v, g in last.groupby("variant", sort=False)}
    rows = pd.DataFrame(compare(values, BASELINE)).rename(columns={"row": "variant", "threshold": "holm_threshold"})
    rows["verdict"] = rows.verdict.map(VERDICTS)
    rows["changes"] = [changes(v, chosen) for v in rows.variant]
    rows["against"] = [against(v, recipe) for v in rows.variant]
    return rows[["variant", "n", "mean", "std", "min", "max", "diff", "ci_low", "ci_high", "p", "p_holm",
                 "holm_threshold", "verdict", "changes", "against"]]


def table(last, stats, params):
    """table.md's table, from the final rows and stats.csv's rows."""
    m = stats.p.notna().sum()
    lines = ["# Ablations: one 1998 choice at a time against its modern counterpart\n",
             f"Generated by `make ablations`. Test error after pass {int(last['pass'].max())} on the 10,000 test "
             "images: mean ± standard deviation over seeds (min–max). \"vs paper\" is the mean over seeds of "
             "(variant − recipe) with the same seed, in percentage points, with its 95% confidence interval from the "
             "t distribution of the paired differences (not adjusted for the number of rows). Test: two-sided paired "
             "t-test over seeds (a seed fixes the pattern order, and the initial weights where shapes and "
             f"initialisation agree); \"p (Holm)\" is Holm–Bonferroni-adjusted over the {m} rows compared with the "
             f"recipe at alpha = {ALPHA:g}. Verdict: \"better\" or \"worse\" where Holm rejects, otherwise "
             "\"not separated from the recipe\". Settings marked *chosen* were picked on a validation split "
             f"(selection.csv). \"failed\": seeds whose final test error is {TRAINS_BELOW:.0%} or more (chance is 90%). "
             "The numbers are in stats.csv.\n",
             "| variant | what changes (overrides of the recipe) | parameters | seeds | failed | test error | min–max | "
             "train error | vs paper [95% CI] | p | p (Holm) | verdict | time per run |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in stats.itertuples():
        g = last[last.variant == r.variant]
        sd = "" if math.isnan(r.std) else f" ± {r.std:.2%}"
        if r.variant == BASELINE:
            cells = ["–", "–", "–", "(the recipe)"]
        else:
            ci = "" if math.isnan(r.ci_low) else f" [{r.ci_low:+.2%}, {r.ci_high:+.2%}]"
            cells = [f"{r.diff:+.2%}{ci}", *("–" if math.isnan(x) else f"{x:.2g}" for x in (r.p, r.p_holm)), r.verdict]
        failed = int((g.test_error >= TRAINS_BELOW).sum())
        lines.append(f"| {r.variant} | {r.changes} | {params[r.variant]:,} | {r.n} | {failed} | {r.mean:.2%}{sd} | "
                     f"{r.min:.2%}–{r.max:.2%} | {g.train_error.mean():.2%} | " + " | ".join(cells) +
                     f" | {g.minutes.mean():.1f} min |")
    return "\n".join(lines) + "\n"


def findings(stats, last):
    """The findings: sentences built from stats.csv, and from the final rows (metrics.csv) the
    seeds that did not train."""
    pts = lambda x: f"{100 * x:+.2f}"
    ci = lambda r: f"{pts(r.diff)} points (95% CI {pts(r.ci_low)} to {pts(r.ci_high)}; p = {r.p:.2g}, Holm-adjusted {r.p_holm:.2g})"
    rows = stats[stats.variant != BASELINE]
    tested, untested = rows[rows.p.notna()], rows[rows.p.isna()]
    separated = tested[tested.verdict.isin(["better", "worse"])]
    rest = tested[~tested.verdict.isin(["better", "worse"])]
    n = int(stats.n.max())
    parts = [f"Generated by `make ablations` from results/ablations/stats.csv. Each variant is compared with the recipe "
             f"(`{BASELINE}`) on the final test error of the same {n} seed{'s' * (n != 1)}: two-sided paired t-tests, "
             f"Holm–Bonferroni over the {len(tested)} compared variants at alpha = {ALPHA:g}; differences are variant − "
             "recipe in points of test error, with the 95% CI of the paired differences. Each variant is compared with "
             "the recipe's values of the fields it changes."]
    compared = lambda r: f"It sets {r.changes}; the recipe has {r.against}."
    if len(separated):
        parts.append("Separated from the recipe:\n\n" + "\n".join(
            f"- **{r.variant}** is {r.verdict} than the recipe: {ci(r)}. {compared(r)}" for r in separated.itertuples()))
    elif len(tested):
        parts.append("No variant is separated from the recipe.")
    if len(rest):
        parts.append(f"The evidence does not separate {', '.join(rest.variant)} from the recipe:\n\n" + "\n".join(
            f"- {r.variant}: {ci(r)}. {compared(r)}" for r in rest.itertuples()))
    if len(untested):
        parts.append(f"Not tested (fewer than two seeds): {', '.join(untested.variant)}.")
    failed = {v: g.test_error.tolist() for v, g in last.groupby("variant", sort=False) if (g.test_error >= TRAINS_BELOW).any()}
    if failed:
        parts.append(f"Seeds that did not train (final test error {TRAINS_BELOW:.0%} or more): " + "; ".join(
            f"{v}, {sum(e >= TRAINS_BELOW for e in errors)} of {len(errors)} (final errors "
            f"{', '.join(f'{e:.2%}' for e in errors)})" for v, errors in failed.items()) +
            ". Such a row mixes runs that fail with runs that train; the t-test does not model that mixture, "
            "and its verdict says only that the seeds do not separate the means.")
    return "\n\n".join(parts) + "\n"


def render(results_dir):
    """stats.csv, table.md and RESULTS.md's two blocks, made from results/ablations/ (metrics.csv,
    selection.csv where a variant was searched, invocation.json) and the committed code only."""
    results_dir = Path(results_dir)
    last = finals(pd.read_csv(results_dir / "metrics.csv"))
    has_search = (results_dir / "selection.csv").exists()
    selection = pd.read_csv(results_dir / "selection.csv") if has_search else pd.DataFrame()
    chosen = {v: c for v, c in choose(selection).items() if v in set(last.variant)}
    wall = invocation(results_dir)["wall_seconds"]
    recipe = Config.from_dict(json.loads((results_dir / "runs" / f"{BASELINE}_seed{last.seed.min()}" / "config.json").read_text()))
    stats_csv = stats_table(last, chosen, recipe).to_csv(index=False)
    stats = pd.read_csv(io.StringIO(stats_csv))  # the text is made from stats.csv as written
    params = {v: param_count(LeNet5(get_config(v))) for v in stats.variant}
    text = table(last, stats, params)
    search = f", and {selection.minutes.sum():.0f} min for the {len(selection)} runs of the validation search" if len(selection) else ""
    text += (f"\nTraining and evaluation time summed over the {len(last)} runs: {last.minutes.sum():.0f} min{search}; "
             f"run side by side, one process per core. This invocation took {wall / 60:.1f} min of wall time (runs "
             "finished by an earlier invocation are read, not retrained).\n")
    return {"stats.csv": stats_csv, "table.md": text,
            RESULTS_MD + "ablations": text.split("\n", 1)[1] + "\n![ablations](results/ablations/ablations.png)\n",
            RESULTS_MD + "ablations-findings": findings(stats, last)}


def plot(last, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
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
    # make reproduce runs the text word for word, make distortions the distorted training
    default = [v for v in VARIANTS if v != "paper-literal" and not v.startswith("distortions")]
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                                 allow_abbrev=False)
    ap.add_argument("--variants", nargs="+", default=default, choices=list(VARIANTS), metavar="VARIANT")
    ap.add_argument("--seeds", type=int, nargs="+", default=SEEDS)
    ap.add_argument("--workers", type=at_least_one, default=None)
    ap.add_argument("--passes", type=at_least_one, help="fewer passes, for a quick look (not the protocol)")
    add_scratch_arg(ap)
    args = ap.parse_args()
    if set(args.variants) == {BASELINE}:  # stats.csv and the table compare variants with it: nothing to compare
        ap.error(f"argument --variants: name at least one variant besides {BASELINE!r}, the recipe that each "
                 "is compared with (it always trains)")
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
    if not scratch:  # RESULTS.md must have the blocks the full run writes, before anything trains
        validated(ap, lambda: [read_block(RESULTS_MD + b) for b in ("ablations", "ablations-findings")])
    confirm_outputs("make ablations", scratch, out, runs)
    t0 = time.time()
    run_all(first, args.workers)
    selection = search_rows(set(needs.values()), runs)
    chosen = {v: c for v, c in choose(selection).items() if v in variants}
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
    out.mkdir(parents=True, exist_ok=True)
    metrics.to_csv(out / "metrics.csv", index=False)
    if len(selection):
        selection.to_csv(out / "selection.csv", index=False)
    else:  # a selection.csv of an earlier invocation must not pass for this one's
        (out / "selection.csv").unlink(missing_ok=True)
    write_invocation(out, time.time() - t0)
    plot(finals(metrics), out / "ablations.png")
    texts = render(out)
    write(out, texts, blocks=not scratch)
    print(texts["table.md"])
    print(texts[RESULTS_MD + "ablations-findings"])


if __name__ == "__main__":
    main()
