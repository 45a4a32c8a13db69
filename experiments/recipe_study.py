"""`make recipe-study`: mu, the distortions' ranges and the initialisation, decided on a validation
split by the rule pre-registered in PAPER_NOTES.md ("The recipe study") before any of its runs.

Twelve settings, SEEDS seeds each, everything else the recipe (`get_config("paper", ...)`), trained on
the first 50,000 training images (with the paper's distortions: those and 9 distorted copies of each)
and measured on the last 10,000 after the last pass; the test set is not read. A seed fixes the
initial weights, the pattern order and the distortions, so the settings are paired by seed.
- without distortions: mu in MUS x initialisation in {the recipe's, the authors' later code's}
- with the paper's distortions: mu in MUS x ranges in {A11, the smaller set of RANGE_SETS["small"]}

The rule (decide()): four one-sided paired t-tests over the seeds, each of a main effect averaged
over the other factor of its regime, Holm's correction over the four at ALPHA:
- mu = 0.05 and mu = 0.1 against the text's 0.02, on a seed's score: the mean of its two regimes'
  validation errors, each regime's averaged over its other factor (one mu serves both regimes, as
  the paper trains the distorted network "using the same training procedure");
- the small ranges against A11, on the distorted runs' error averaged over mu;
- the authors' initialisation against the recipe's, on the undistorted runs' error averaged over mu.
A candidate whose p passes Holm replaces the text's value; of two mus that pass, the one with the
lower mean score wins.

Writes results/recipe_study/: metrics.csv (one row per setting, seed and pass; val_* is the held-out
10,000), eps.csv (per pass and layer, with h_below_mu), decision.json, table.md (render()), runs/
(each finished run's config, provenance and CSVs). A run already kept in runs/ with its config and
all its passes is read, not trained again: an invocation stopped part-way resumes from the committed
runs of an earlier one (their meta.json names the commit that made each).
"""
import json
import statistics
from pathlib import Path

import pandas as pd

from repro import paper
from runner import finish_study, settings_study
from stats import ALPHA, holm, paired

SEEDS = list(range(10))
MUS = (paper.MU, 0.05, 0.1)  # the text's first
AUTHORS_INIT = dict(init_scale=1.0, init_fan_power=0.5, bias_init="zero", subsampling_init="authors")
INITS = {"recipe": {}, "authors": AUTHORS_INIT}
RANGES = ("a11", "small")  # repro/distortions.py RANGE_SETS


def setting(mu, init=None, ranges=None):
    """A setting's name: its regime, mu, and the level of the regime's other factor."""
    return f"plain mu={mu:g} init={init}" if ranges is None else f"distorted mu={mu:g} ranges={ranges}"


def settings():
    """{name: config overrides} of the twelve settings, the text's values first in each regime."""
    out = {setting(mu, init=i): dict(mu=mu, **o) for i, o in INITS.items() for mu in MUS}
    out.update({setting(mu, ranges=r): dict(mu=mu, distortions="paper", distortion_ranges=r)
                for r in RANGES for mu in MUS})
    return out


def decide(val):
    """The rule applied to {setting: {seed: validation error}}: dict(comparisons, mu, init, ranges)."""
    seeds = sorted(set.intersection(*(set(v) for v in val.values())))
    mean = lambda names, s: statistics.fmean(val[n][s] for n in names)
    plain = lambda mu, s: mean([setting(mu, init=i) for i in INITS], s)
    distorted = lambda mu, s: mean([setting(mu, ranges=r) for r in RANGES], s)
    score = {mu: [(plain(mu, s) + distorted(mu, s)) / 2 for s in seeds] for mu in MUS}
    by_ranges = {r: [mean([setting(mu, ranges=r) for mu in MUS], s) for s in seeds] for r in RANGES}
    by_init = {i: [mean([setting(mu, init=i) for mu in MUS], s) for s in seeds] for i in INITS}
    rows = [dict(comparison=f"mu={mu:g} vs {paper.MU:g}", factor="mu", candidate=mu, candidate_mean=statistics.fmean(score[mu]),
                 text_mean=statistics.fmean(score[paper.MU]), **paired(score[mu], score[paper.MU], lower=True))
            for mu in MUS[1:]]
    rows.append(dict(comparison="small ranges vs A11", factor="ranges", candidate="small",
                     candidate_mean=statistics.fmean(by_ranges["small"]), text_mean=statistics.fmean(by_ranges["a11"]),
                     **paired(by_ranges["small"], by_ranges["a11"], lower=True)))
    rows.append(dict(comparison="authors' init vs recipe's", factor="init", candidate="authors",
                     candidate_mean=statistics.fmean(by_init["authors"]), text_mean=statistics.fmean(by_init["recipe"]),
                     **paired(by_init["authors"], by_init["recipe"], lower=True)))
    for r, h in zip(rows, holm([r["p"] for r in rows], ALPHA)):
        r.update(h)
    better = lambda factor: [r for r in rows if r["factor"] == factor and r["reject"]]
    mus = better("mu")
    return dict(seeds=seeds, comparisons=rows,
                mu=min(mus, key=lambda r: r["candidate_mean"])["candidate"] if mus else paper.MU,
                ranges="small" if better("ranges") else "a11", init="authors" if better("init") else "recipe")


def table(metrics, eps, decision):
    last = metrics.groupby(["setting", "seed"], sort=False).tail(1)
    final = eps[eps["pass"] == eps["pass"].max()]
    lines = ["# The recipe study: mu, the distortions' ranges and the initialisation, on a validation split\n",
             "Generated by `make recipe-study` (rule and protocol: PAPER_NOTES.md, \"The recipe study\"; each run's "
             "config, provenance and CSVs in results/recipe_study/runs/). Train on the first 50,000 training images, "
             f"error on the last 10,000 after pass {int(last['pass'].max())}; \"train\" is the error on the 50,000 "
             "training originals, h < mu the share of a layer's parameters whose curvature was below mu when the step sizes of the "
             "last pass were set.\n",
             "| setting | seeds | validation error | train error | h < mu: C1 | C3 | C5 | F6 |", "|---|---|---|---|---|---|---|---|"]
    for name in settings():
        v, f = last[last.setting == name], final[final.setting == name]
        share = lambda layer: f"{f[f.layer == layer].h_below_mu.mean():.0%}"
        lines.append(f"| {name} | {len(v)} | {v.val_error.mean():.2%} ± {v.val_error.std():.2%} | "
                     f"{v.train_error.mean():.2%} | {share('c1')} | {share('c3')} | {share('c5')} | {share('f6')} |")
    lines += ["", "One-sided paired t-tests over the seeds (H1: the candidate's validation error is lower), Holm over the "
              f"four at alpha = {ALPHA}:", "",
              "| comparison | candidate | text's | difference (95% CI) | p | Holm threshold | better? |", "|---|---|---|---|---|---|---|"]
    for r in decision["comparisons"]:
        lines.append(f"| {r['comparison']} | {r['candidate_mean']:.3%} | {r['text_mean']:.3%} | {r['diff']:+.3%} "
                     f"({r['ci_low']:+.3%}, {r['ci_high']:+.3%}) | {r['p']:.4f} | {r['threshold']:.4f} | "
                     f"{'yes' if r['reject'] else 'no'} |")
    lines += ["", f"**Decided: mu = {decision['mu']:g}, distortion ranges {decision['ranges']}, "
              f"{decision['init']} initialisation** (over seeds {', '.join(map(str, decision['seeds']))})."]
    return "\n".join(lines) + "\n"


def render(results_dir):
    """table.md, made only from the committed metrics.csv, eps.csv and decision.json."""
    results_dir = Path(results_dir)
    return {"table.md": table(pd.read_csv(results_dir / "metrics.csv"), pd.read_csv(results_dir / "eps.csv"),
                              json.loads((results_dir / "decision.json").read_text()))}


def main():
    out, metrics, eps, decision = settings_study(__doc__, "recipe_study", SEEDS, settings, decide, "PAPER_NOTES.md, \"The recipe study\"")
    metrics.to_csv(out / "metrics.csv", index=False)
    eps.to_csv(out / "eps.csv", index=False)
    (out / "decision.json").write_text(json.dumps(decision, indent=1) + "\n")
    finish_study(out, render)


if __name__ == "__main__":
    main()
