"""experiments/rbf_search.py: the pre-registered rule on made-up validation errors."""
import pandas as pd

import rbf_search


def metrics(errors):
    """metrics.csv's rows from {ridge: [validation error per seed]}."""
    return pd.DataFrame([dict(ridge=r, seed=s, val_error=e) for r, es in errors.items() for s, e in enumerate(es)])


def test_the_lowest_mean_wins_and_ties_go_to_the_larger_ridge():
    assert rbf_search.decide(metrics({1e-3: [0.06, 0.062, 0.061], 1e-5: [0.04, 0.035, 0.036], 1e-6: [0.05, 0.03, 0.04]})) == 1e-5
    assert rbf_search.decide(metrics({1e-3: [0.04, 0.04, 0.04], 1e-4: [0.04, 0.04, 0.04]})) == 1e-3


def test_the_candidates_start_with_todays_ridge():
    from repro.classical.linear import RIDGE
    assert rbf_search.FACTORS[0] == 1.0 and rbf_search.label(1.0, 0) == f"ridge{RIDGE:g}-seed0"


def test_the_row_uses_the_ridge_the_study_chose():
    import json
    from pathlib import Path
    from repro.classical import rbf
    decision = json.loads((Path(__file__).resolve().parents[1] / "results" / "rbf_search" / "decision.json").read_text())
    assert rbf.RIDGE == decision["chosen_ridge"]
