"""The SVM study's rule (experiments/svm_search.py, PAPER_NOTES "The comparison's studies") on
validation counts whose answer is known."""
import json

import pandas as pd

import svm_search


def metrics(rows, pairwise=((("regular", 700), ("deskew", 650)))):
    svms = [dict(method="svm", version=v, degree=d, coef0=k, C=c, val_misses=n) for v, d, k, c, n in rows]
    return pd.DataFrame(svms + [dict(method="pairwise", version=v, val_misses=n) for v, n in pairwise])


def grid(misses):
    """Every candidate of the study with 300 errors, except those given in `misses`."""
    rows = [(v, d, k, c, 300) for v in svm_search.VERSIONS for d in svm_search.DEGREES for k in svm_search.COEF0S
            for c in svm_search.C_CANDIDATES]
    return [(v, d, k, c, misses.get((v, d, k, c), n)) for v, d, k, c, n in rows]


def test_the_fewest_errors_win_per_degree():
    m = metrics(grid({("deskew", 4, 1.0, 10.0): 200, ("regular", 5, 1.0, 1000.0): 250, ("deskew", 9, 0.0, 100.0): 290}))
    d = svm_search.decide(m)
    assert d["svm"] == {4: dict(version="deskew", coef0=1.0, c=10.0), 5: dict(version="regular", coef0=1.0, c=1000.0),
                        9: dict(version="deskew", coef0=0.0, c=100.0)}
    assert d["pairwise"] == "deskew"
    assert d["inhomogeneous"][5] == 1000.0 and d["text"][5] == 1.0  # the text's reading: ties to the smaller C


def test_ties_go_to_the_regular_images_then_the_homogeneous_kernel_then_the_smaller_c():
    tie = {("deskew", 4, 0.0, 1.0): 100, ("regular", 4, 1.0, 10.0): 100, ("regular", 4, 1.0, 1.0): 100,
           ("deskew", 5, 1.0, 1.0): 100, ("deskew", 5, 0.0, 100.0): 100, ("regular", 9, 0.0, 1000.0): 100,
           ("regular", 9, 0.0, 100.0): 100}
    d = svm_search.decide(metrics(grid(tie), pairwise=(("regular", 650), ("deskew", 650))))
    assert d["svm"][4] == dict(version="regular", coef0=1.0, c=1.0)
    assert d["svm"][5] == dict(version="deskew", coef0=0.0, c=100.0)
    assert d["svm"][9] == dict(version="regular", coef0=0.0, c=100.0)
    assert d["pairwise"] == "regular"


def test_the_grid_is_the_pre_registered_one():
    c = svm_search.candidates()
    svms = [t for t in c if t[0] == "svm"]
    assert len(svms) == 2 * 3 * 2 * 4 and len(set(svms)) == len(svms)
    assert {t[1] for t in svms} == {"regular", "deskew"} and {t[2] for t in svms} == {4, 5, 9}
    assert {t[3] for t in svms} == {0.0, 1.0} and {t[4] for t in svms} == {1.0, 10.0, 100.0, 1000.0}
    assert [t[1] for t in c if t[0] == "pairwise"] == ["regular", "deskew"]
    assert svm_search.RS_COUNTS[0] == 18 and max(svm_search.RS_COUNTS) == 200


def write_study(tmp_path, rs_errors):
    m = metrics(grid({("deskew", 5, 1.0, 10.0): 200}))
    m = m.assign(val_error=m.val_misses / 10_000, support_vectors=5000, fit_seconds=60.0)
    m.to_csv(tmp_path / "metrics.csv", index=False)
    decision = svm_search.decide(m)
    (tmp_path / "decision.json").write_text(json.dumps(dict(rule=svm_search.RULE, **decision)))
    rs = [dict(per_pair=None, vectors=5000, macs=4_000_000, val_error=0.02, seconds=60.0)]
    rs += [dict(per_pair=n, vectors=45 * n, macs=45 * n * 785, val_error=e, seconds=None)
           for n, e in zip(svm_search.RS_COUNTS, rs_errors)]
    pd.DataFrame(rs).to_csv(tmp_path / "reduced_set.csv", index=False)
    return svm_search.render(tmp_path)["table.md"]


def test_the_table_reports_the_decision_and_the_reduced_sets_reach(tmp_path):
    text = write_study(tmp_path, [0.19, 0.1, 0.05, 0.035, 0.0205, 0.0215, 0.0195, 0.021])
    assert "degree 5: deskew, (g x.y + 1)^k, C = 10" in text and "pairwise: deskew" in text
    assert "At the paper's 18 vectors per pair: 19.00% against the full machine's 2.00%" in text
    assert "The smallest count tried within 0.1 point of the full machine: 70 per pair." in text
    text = write_study(tmp_path, [0.19, 0.1, 0.05, 0.035, 0.032, 0.0305, 0.025, 0.0211])
    assert "No count tried up to 200 per pair comes within 0.1 point" in text
