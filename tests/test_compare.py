"""make compare and make compare-findings (experiments/compare.py, compare_findings.py): an unknown
method stops before any work, a cached run that other code made is refused, a run of some rows
renders, and the findings change rows that exist with options their methods take."""
import inspect
import json
import subprocess
import sys
from dataclasses import fields
from pathlib import Path

import pandas as pd
import pytest

from repro import classical, versions
from repro.combinations import Boosted, data_label, network_of, row_config
from repro.config import Config
from repro.networks import LENET5_ROWS, ROWS
from repro.train import data_version

import compare
import compare_findings
from compare import seeds

ROOT = Path(__file__).resolve().parents[1]


def test_make_compare_rejects_an_unknown_method_before_any_work():
    done = subprocess.run([sys.executable, "experiments/compare.py", "--methods", "knn", "svm"], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert "unknown method 'svm'" in done.stderr


def test_findings_change_rows_that_exist_with_options_their_methods_take():
    for label, row, name, _, _, change in compare_findings.findings():
        change = dict(change)
        assert change.pop("seed", 0) in seeds(row), label  # a seed that make compare runs for the row
        if name in ROWS or name in LENET5_ROWS:  # a network: fields of its config, which must accept them
            assert row == name and set(change) <= {f.name for f in fields(Config)}, label
            # a finding may swap the network (the head study's); the row's data must still be found
            # (make compare-findings once stopped here, after 29 jobs, on LeNet-5's rows)
            assert data_version(row_config(*network_of(name), change))[1] in (28, 32), label
            continue
        if name == "boosted-lenet4-dist":  # the boosted nets: Boosted's options
            assert row == name and set(change) <= set(inspect.signature(Boosted).parameters), label
            continue
        method = classical.get(name)
        classical.get(row)
        options = set(change) - {"version", "train_size"}
        assert options <= set(inspect.signature(method.cls).parameters), label
        assert change.get("version", method.version) in versions.VERSIONS, label


def test_the_svm_findings_are_the_readings_the_svm_study_did_not_choose():
    chosen = dict(version="regular", coef0=1.0, c=10.0)
    study = dict(svm={4: chosen, 5: dict(chosen, version="deskew"), 9: dict(chosen, version="deskew")},
                 text={4: 100.0, 5: 100.0, 9: 1000.0}, inhomogeneous={4: 10.0, 5: 1.0, 9: 10.0}, pairwise="deskew")
    found = {label: change for label, *_, change in compare_findings.svm_findings(study)}
    assert "svm-poly4_coef0" not in found  # degree 4's inhomogeneous reading is its row
    assert found["svm-poly4_text"] == dict(version="regular", coef0=0.0, c=100.0)
    assert found["rs-svm-poly5_coef0"] == dict(version="regular", coef0=1.0, c=1.0)
    assert found["v-svm-poly9-dist_text"] == dict(version="regular", coef0=0.0, c=1000.0)
    assert found["pairwise_text"] == dict(version="regular")
    assert "pairwise_text" not in {label for label, *_ in compare_findings.svm_findings(dict(study, pairwise="regular"))}


def test_the_findings_rerun_every_run_of_make_compare_that_loses_a_class():
    m = pd.read_csv(ROOT / "results" / "compare" / "metrics.csv")
    lost = m[m.classes_lost > 0]
    assert sorted(zip(lost.method, lost.seed)) == sorted(compare_findings.LOST)


def test_make_compare_refuses_a_cached_run_that_other_code_made(tmp_path):
    now = compare.code_hashes()
    for name, hashes in (("current", now), ("old", dict(now, classical_sha256="0" * 64)), ("unfinished", None)):
        (tmp_path / name).mkdir()
        if hashes:
            (tmp_path / name / "result.json").write_text("{}")
            (tmp_path / name / "meta.json").write_text(json.dumps(hashes))
    jobs = [("knn", 0, str(tmp_path / name)) for name in ("current", "old", "unfinished")]
    assert compare.stale(jobs) == [str(tmp_path / "old")]
    with pytest.raises(SystemExit, match="1 finished run.* made by other code"):
        compare.run_all(jobs, 1)


def test_a_compare_run_of_some_rows_renders_without_the_conclusions(tmp_path):
    """make compare METHODS=... (a scratch run of some rows) renders its tables; Sec. III-D's
    conclusions need every row, and the text names the missing ones instead of failing on them."""
    m = pd.read_csv(ROOT / "results" / "compare" / "metrics.csv")
    m[m.method.isin(["knn", "lenet1", "lenet5", "lenet5-dist"])].to_csv(tmp_path / "metrics.csv", index=False)
    (tmp_path / "invocation.json").write_text('{"wall_seconds": 60.0}')
    text = compare.render(tmp_path)["table.md"]
    errors = text.split("## Rejection")[0]  # the cost table lists the paper's values of every row
    assert "| knn |" in errors and "| lenet1 |" in errors and "| linear |" not in errors
    assert "Not drawn: the conclusions need every row, and this run leaves out linear, " in text
    assert "boosted-lenet4-dist" in text.split("Not drawn")[1]


def test_a_finished_job_records_its_result_provenance_and_code(tmp_path):
    compare.save_result(tmp_path / "run", dict(method="knn", seed=0, test_error=0.03))
    meta = json.loads((tmp_path / "run" / "meta.json").read_text())
    assert json.loads((tmp_path / "run" / "result.json").read_text()) == dict(method="knn", seed=0, test_error=0.03)
    assert meta["test_error"] == 0.03 and meta["git_commit"] and meta.items() >= compare.code_hashes().items()
    assert compare.stale([("knn", 0, str(tmp_path / "run"))]) == []


def test_the_committed_network_rows_name_the_images_their_network_reads():
    m = pd.read_csv(ROOT / "results" / "compare" / "metrics.csv").drop_duplicates("method")
    for r in m[~m.method.isin(classical.METHODS)].itertuples():
        config = row_config("lenet4", "paper") if r.method == "boosted-lenet4-dist" else row_config(*network_of(r.method))
        assert r.version == data_label(config), r.method
