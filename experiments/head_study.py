"""`make head-study`: does the output head explain why LeNet-4 beats LeNet-5 here, and does the step
size? Pre-registered in PAPER_NOTES.md ("The head study") before any of its runs.

Four networks, each network's layers with each head, x mu in MUS, SEEDS seeds, trained on the first
50,000 training images and measured on the last 10,000 (the test set is not read):
    lenet5        LeNet-5's layers, F6 84 + RBF on the 7x12 bitmaps (LeNet-5 itself)
    lenet5-place  LeNet-5's layers, C5's 120 units feeding 10 place-code units
    lenet4-rbf    LeNet-4's layers, F6 84 + RBF on the bitmaps
    lenet4        LeNet-4's layers, 10 place-code units (LeNet-4 itself)
The rule (decide()): six paired t-tests over the seeds, Holm's correction over the six at ALPHA:
    head        the RBF head minus the place code, averaged over layers and mu (matched mu)
    layers      LeNet-5's layers minus LeNet-4's, averaged over heads and mu (matched mu)
    inversion at mu 0.02   LeNet-5 minus LeNet-4, both at the text's mu
    inversion at best mu   LeNet-5 minus LeNet-4, each at its own best mu (lowest mean error)
    head at best mu        the RBF head minus the place code, each network at its best mu, averaged
                           over layers: the head's residual effect, with its 95% interval
    lenet4 best mu         LeNet-4 at its best mu minus at 0.02 (one-sided: lower), which decides
                           whether the comparison's LeNet-4 rows take that mu
Two-sided except the last. Verdicts: "the head explains the inversion" when `head` is rejected with the
RBF head worse and `layers` is not rejected with LeNet-5's layers worse; "the step size explains it"
when `inversion at mu 0.02` is rejected (LeNet-4 better) and `inversion at best mu` is not.

Writes results/head_study/: metrics.csv, decision.json, table.md (render()), runs/ (each run's config,
provenance and CSVs; a run kept there with all its passes is read, not trained again).
"""
import json
import statistics
from pathlib import Path

import pandas as pd

from repro import paper
from runner import finish_study, settings_study
from stats import ALPHA, holm, paired

SEEDS = list(range(5))
MUS = (paper.MU, 0.05, 0.1)
NETWORKS = {("lenet5", "rbf"): "lenet5", ("lenet5", "place"): "lenet5-place",
            ("lenet4", "rbf"): "lenet4-rbf", ("lenet4", "place"): "lenet4"}


def setting(network, mu):
    return f"{network} mu={mu:g}"


def settings():
    return {setting(n, mu): dict(network=n, mu=mu) for n in NETWORKS.values() for mu in MUS}


def decide(val):
    """The rule applied to {setting: {seed: validation error}}: dict(seeds, best_mu, comparisons, verdicts, lenet4_mu)."""
    seeds = sorted(set.intersection(*(set(v) for v in val.values())))
    err = lambda net, mu: [val[setting(net, mu)][s] for s in seeds]
    mean_of = lambda lists: [statistics.fmean(v) for v in zip(*lists)]  # per seed, over the lists
    best = {n: min(MUS, key=lambda mu: statistics.fmean(err(n, mu))) for n in NETWORKS.values()}
    by = lambda layers, head, mu=None: err(NETWORKS[layers, head], best[NETWORKS[layers, head]] if mu is None else mu)
    rows = [
        ("head", "RBF head - place code, over layers and mu",
         mean_of([by(lay, "rbf", mu) for lay in ("lenet5", "lenet4") for mu in MUS]),
         mean_of([by(lay, "place", mu) for lay in ("lenet5", "lenet4") for mu in MUS]), False),
        ("layers", "LeNet-5's layers - LeNet-4's, over heads and mu",
         mean_of([by("lenet5", h, mu) for h in ("rbf", "place") for mu in MUS]),
         mean_of([by("lenet4", h, mu) for h in ("rbf", "place") for mu in MUS]), False),
        ("inversion at mu 0.02", "LeNet-5 - LeNet-4 at the text's mu",
         by("lenet5", "rbf", paper.MU), by("lenet4", "place", paper.MU), False),
        ("inversion at best mu", "LeNet-5 - LeNet-4, each at its best mu", by("lenet5", "rbf"), by("lenet4", "place"), False),
        ("head at best mu", "RBF head - place code, each at its best mu, over layers",
         mean_of([by(lay, "rbf") for lay in ("lenet5", "lenet4")]), mean_of([by(lay, "place") for lay in ("lenet5", "lenet4")]),
         False),
        ("lenet4 best mu", f"LeNet-4 at its best mu ({best['lenet4']:g}) - at {paper.MU:g}",
         by("lenet4", "place"), by("lenet4", "place", paper.MU), True),
    ]
    comparisons = [dict(test=t, what=w, one_sided=one, **paired(x, base, lower=one)) for t, w, x, base, one in rows]
    if best["lenet4"] == paper.MU:  # no other mu to test: not a comparison
        comparisons[-1].update(p=float("nan"))
    for c, h in zip(comparisons, holm([c["p"] for c in comparisons], ALPHA)):
        c.update(h)
    c = {r["test"]: r for r in comparisons}
    verdicts = dict(
        head_explains=bool(c["head"]["reject"] and c["head"]["diff"] > 0
                           and not (c["layers"]["reject"] and c["layers"]["diff"] > 0)),
        step_size_explains=bool(c["inversion at mu 0.02"]["reject"] and c["inversion at mu 0.02"]["diff"] > 0
                                and not c["inversion at best mu"]["reject"]))
    return dict(seeds=seeds, best_mu=best, comparisons=comparisons, verdicts=verdicts,
                lenet4_mu=best["lenet4"] if c["lenet4 best mu"]["reject"] else paper.MU)


def table(metrics, decision):
    last = metrics.groupby(["setting", "seed"], sort=False).tail(1)
    lines = ["# The head study: LeNet-5's and LeNet-4's layers with each head, on a validation split\n",
             "Generated by `make head-study` (rule and protocol: PAPER_NOTES.md, \"The head study\"; each run in "
             "results/head_study/runs/). Train on the first 50,000 training images, error on the last 10,000 after "
             f"pass {int(last['pass'].max())}; \"train\" is the error on the 50,000 training images.\n",
             "| layers | head | " + " | ".join(f"mu = {mu:g}" for mu in MUS) + " | best mu |",
             "|---|---|" + "---|" * (len(MUS) + 1)]
    for (layers, head), net in NETWORKS.items():
        cells = []
        for mu in MUS:
            v = last[last.setting == setting(net, mu)]
            cells.append(f"{v.val_error.mean():.2%} ± {v.val_error.std():.2%} (train {v.train_error.mean():.2%})")
        lines.append(f"| {layers} | {'F6 84 + RBF' if head == 'rbf' else '10 place-code units'} | " + " | ".join(cells)
                     + f" | {decision['best_mu'][net]:g} |")
    lines += ["", f"Paired t-tests over the seeds, Holm over the six at alpha = {ALPHA} (differences in validation error):", "",
              "| test | what | difference (95% CI) | p | Holm threshold | rejected? |", "|---|---|---|---|---|---|"]
    for r in decision["comparisons"]:
        tested = r["p"] == r["p"]  # NaN: LeNet-4's best mu is the text's, nothing to test
        p = f"{r['p']:.4f}" + (" (one-sided)" if r["one_sided"] else "") if tested else "–"
        lines.append(f"| {r['test']} | {r['what']} | {r['diff']:+.3%} ({r['ci_low']:+.3%}, {r['ci_high']:+.3%}) | {p} | "
                     f"{r['threshold']:.4f} | {'yes' if r['reject'] else 'no'} |" if tested else
                     f"| {r['test']} | {r['what']} | – | – | – | not tested |")
    v = decision["verdicts"]
    lines += ["", f"**The head explains the inversion: {'yes' if v['head_explains'] else 'no'}. The step size explains it: "
              f"{'yes' if v['step_size_explains'] else 'no'}. The comparison's LeNet-4 rows take mu = "
              f"{decision['lenet4_mu']:g}.**"]
    return "\n".join(lines) + "\n"


def render(results_dir):
    results_dir = Path(results_dir)
    return {"table.md": table(pd.read_csv(results_dir / "metrics.csv"), json.loads((results_dir / "decision.json").read_text()))}


def main():
    out, metrics, _, decision = settings_study(__doc__, "head_study", SEEDS, settings, decide, "PAPER_NOTES.md, \"The head study\"")
    metrics.to_csv(out / "metrics.csv", index=False)
    (out / "decision.json").write_text(json.dumps(decision, indent=1) + "\n")
    finish_study(out, render)


if __name__ == "__main__":
    main()
