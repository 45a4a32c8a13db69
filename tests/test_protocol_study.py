"""experiments/protocol_study.py: its grid is the pre-registered one (PAPER_NOTES.md, "The protocol
study"), its networks train as the comparison's 300-10 row but for the setting, and its report says
which protocol, if any, gives both of Fig. 9's figures, on made-up errors either way."""
import itertools
import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest

import protocol_study as study
from runner import kept
from repro import combinations, paper

ROOT = Path(__file__).resolve().parents[1]


def test_the_grid_is_the_pre_registered_one():
    runs = study.settings()
    knn = {split: [r["train_size"] for r in runs if r["method"] == "knn" and r["split"] == split] for split in study.SPLITS}
    assert knn == {"validation": [10_000, 20_000, 30_000, 40_000, 50_000],
                   "test": [10_000, 20_000, 30_000, 40_000, 50_000, 60_000]}
    assert {r["seed"] for r in runs if r["method"] == "knn"} == {0}
    for split in study.SPLITS:
        nets = [r for r in runs if r["method"] == "mlp-300" and r["split"] == split]
        assert sorted((r["loss"], r["passes"], r["size"], r["seed"]) for r in nets) == sorted(
            itertools.product(("ml", "map"), (5, 20), (10_000, 50_000), (0, 1, 2)))
        # the first 10,000 stay the first 10,000; the first 50,000 become all 60,000 on the test set
        assert {(r["size"], r["train_size"]) for r in nets} == (
            {(10_000, 10_000), (50_000, 50_000)} if split == "validation" else {(10_000, 10_000), (50_000, 60_000)})
    assert len(runs) == 11 + 48 and len({r["name"] for r in runs}) == len(runs)  # one folder each
    assert study.EQUATION == {"ml": "eq. 8", "map": "eq. 9"}


def test_the_networks_train_as_the_comparisons_row_but_for_the_setting():
    runs = [r for r in study.settings() if r["method"] == "mlp-300"]
    row = combinations.row_config(*combinations.network_of("mlp-300"))
    assert row.network == "mlp-300" and row.mu == paper.MU  # the comparison's mu, not LeNet-5's
    for r in runs:
        c = study.config(r)
        assert c == replace(row, loss=r["loss"], passes=r["passes"], train_size=r["train_size"])
        assert c.eta[:c.passes] == paper.ETA_SCHEDULE[:r["passes"]]  # 5 passes: the schedule's first 5 rates
    # eq. 9, 20 passes, all 60,000 images: exactly the row make compare trains
    [same] = {study.config(r) for r in runs if (r["split"], r["loss"], r["passes"], r["size"]) == ("test", "map", 20, 50_000)}
    assert same == row
    assert study.config(runs[0], passes=1).passes == 1  # a quick look's --passes


def metrics(knn_error, network_error):
    """metrics.csv's rows from knn_error(split, references) and network_error(split, loss, passes, images, seed)."""
    rows = []
    for r in study.settings():
        knn = r["method"] == "knn"
        e = (knn_error(r["split"], r["train_size"]) if knn
             else network_error(r["split"], r["loss"], r["passes"], r["train_size"], r["seed"]))
        rows.append(dict(method=r["method"], setting=r["setting"], split=r["split"], loss=r["loss"],
                         passes="" if knn else r["passes"], size=r["size"], train_size=r["train_size"], seed=r["seed"],
                         error=e, misses=round(e * 10_000), failed=False))
    return pd.DataFrame(rows)


def rendered(tmp_path, m):
    m.to_csv(tmp_path / "metrics.csv", index=False)  # through the CSV, as render() reads it
    return study.render(tmp_path)["table.md"]


def knn_like_the_findings(split, n):  # 5.06% on 10,000 images, 2.83% on 60,000
    return {10_000: 0.0506, 20_000: 0.0419}.get(n, 0.03 if n < 60_000 else 0.0283)


def test_a_protocol_that_gives_both_figures_is_named(tmp_path):
    def network(split, loss, passes, n, seed):  # eq. 8 with 5 passes on 10,000 images: 4.6% to 4.8%
        return 0.046 + 0.001 * seed if (loss, passes, n) == ("ml", 5, 10_000) else 0.02
    text = rendered(tmp_path, metrics(knn_like_the_findings, network))
    assert ("**1 protocol gives both k-NN's 5.0% and the network's 4.7% within 0.3 point on the test set: the first "
            "10,000 images with eq. 8 and 5 passes (k-NN 5.06%, network 4.70%).**") in text
    assert "| first 10,000 | eq. 8 | 5 | 5.06% | 4.70% | yes |" in text
    assert "| all 60,000 | eq. 9 | 20 | 2.83% | 2.00% | no |" in text
    assert "| eq. 8 | 5 | first 10,000 | 3 | 4.70% ± 0.10% | 4.70% ± 0.10% | yes |" in text
    assert "| first 50,000 | 3.00% | 3.00% | no |" in text and "| all 60,000 | – | 2.83% | no |" in text


def test_no_protocol_is_said_so_with_the_nearest(tmp_path):
    def network(split, loss, passes, n, seed):  # the nearest, 3.71% on 10,000 images, is 1 point off
        return 0.0371 if (loss, passes, n) == ("ml", 5, 10_000) else 0.02
    text = rendered(tmp_path, metrics(knn_like_the_findings, network))
    assert "**No protocol gives both k-NN's 5.0% and the network's 4.7% within 0.3 point on the test set.**" in text
    assert ("Alone, k-NN is within 0.3 point of 5.0% with the first 10,000 images (5.06%); the network within it of "
            "4.7% in no setting (the nearest: eq. 8, 5 passes, first 10,000, 3.71%).") in text


def test_the_network_near_the_figure_on_another_training_set_than_knn_is_no_protocol(tmp_path):
    def network(split, loss, passes, n, seed):  # 4.7% only with all 60,000 images, where k-NN has 2.83%
        return 0.047 if (loss, passes, n) == ("ml", 5, 60_000) else 0.02
    text = rendered(tmp_path, metrics(knn_like_the_findings, network))
    assert "**No protocol gives both" in text and "in eq. 8, 5 passes, first 50,000 (4.70%)." in text


def test_within_0_3_point_includes_its_bound():
    assert study.near(0.053, 0.05) and study.near(0.047, 0.05) and not study.near(0.0531, 0.05)


def test_a_kept_run_of_10000_images_is_recognised(tmp_path):
    """runner.kept compares the config as trained: a validation run of 10,000 images records 10,000, of
    50,000 or more 50,000, and a run on the test split its own."""
    r = next(r for r in study.settings() if r["method"] == "mlp-300" and r["train_size"] == 10_000)
    c = study.config(r)
    (tmp_path / "config.json").write_text(json.dumps(dict(c.to_dict(), seed=r["seed"])))
    pd.DataFrame({"pass": range(1, c.passes + 1)}).to_csv(tmp_path / "metrics.csv", index=False)
    assert kept(tmp_path, c, r["seed"]) and kept(tmp_path, c, r["seed"], "train")
    assert not kept(tmp_path, c, r["seed"] + 1) and not kept(tmp_path, replace(c, passes=20), r["seed"])
    assert not kept(tmp_path / "missing", c, r["seed"])
    (tmp_path / "config.json").write_text(json.dumps(dict(replace(c, train_size=50_000).to_dict(), seed=r["seed"])))
    assert kept(tmp_path, replace(c, train_size=60_000), r["seed"]) and not kept(tmp_path, replace(c, train_size=60_000), r["seed"], "train")


@pytest.mark.parametrize("args, names", [(["--seeds", "0", "0"], "seeds must be distinct"),
                                         (["--train-size", "2"], "--train-size"), (["--passes", "21"], "eta has 20 rates")])
def test_a_bad_command_line_stops_before_any_work(args, names):
    done = subprocess.run([sys.executable, "experiments/protocol_study.py", *args, "--scratch"], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "Traceback" not in done.stderr and done.stdout == "", done.stderr
    assert names in done.stderr.strip().splitlines()[-1]


def test_the_studys_row_runs_give_the_comparisons_errors():
    """Eq. 9, 20 passes on all 60,000 images is make compare's mlp-300 row: same config and seeds, same errors."""
    path = ROOT / "results" / "protocol_study" / "metrics.csv"
    if not path.exists():
        pytest.skip("results/protocol_study/ has no committed results")
    m = pd.read_csv(path)
    mine = m[(m.split == "test") & (m.method == "mlp-300") & (m.loss == "map") & (m.passes == 20) & (m.train_size == 60_000)]
    row = pd.read_csv(ROOT / "results" / "compare" / "metrics.csv").query("method == 'mlp-300'")
    assert dict(zip(mine.seed, mine.misses)) == dict(zip(row.seed, row.test_misses))
