"""Which code made a run (repro.provenance), where an invocation writes (experiments/runner.py), and
that a bad command line stops before any training."""
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from repro import weights
from repro.config import get_config
from repro.provenance import DirtyTree, code_state, library_sha256, provenance, require_clean_code

from runner import confirm_outputs, keep_provenance, output_dirs

ROOT = Path(__file__).resolve().parents[1]


def git(repo, *args):
    subprocess.run(["git", "-c", "user.name=test", "-c", "user.email=test@example.com", *args],
                   cwd=repo, check=True, capture_output=True)


@pytest.fixture
def repo(tmp_path):
    """A committed checkout with the project's layout: code, README and a results file."""
    for path, text in {"repro/model.py": "x = 1\n", "experiments/run.py": "print()\n", "Makefile": "all:\n",
                       "pyproject.toml": "[project]\n", "README.md": "# readme\n", "results/x.csv": "a\n1\n"}.items():
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_text(text)
    git(tmp_path, "init", "-q")
    git(tmp_path, "add", ".")
    git(tmp_path, "commit", "-q", "-m", "initial")
    return tmp_path


def test_a_committed_tree_is_clean(repo):
    state = code_state(repo)
    assert len(state["git_commit"]) == 40
    assert state["code_dirty"] is False and state["code_changes"] == [] and state["code_diff_sha256"] is None
    require_clean_code("make reproduce", root=repo)  # does not raise


def test_a_modified_library_file_makes_the_code_dirty_and_the_diff_names_it(repo):
    (repo / "repro/model.py").write_text("x = 2\n")
    first = code_state(repo)
    assert first["code_dirty"] and first["code_changes"] == ["repro/model.py"]
    assert len(first["code_diff_sha256"]) == 64
    (repo / "repro/model.py").write_text("x = 3\n")
    assert code_state(repo)["code_diff_sha256"] != first["code_diff_sha256"]


def test_staged_and_untracked_code_files_count(repo):
    (repo / "experiments/new.py").write_text("pass\n")
    assert code_state(repo)["code_changes"] == ["experiments/new.py"]
    (repo / "Makefile").write_text("all: x\n")
    git(repo, "add", "Makefile")
    assert set(code_state(repo)["code_changes"]) == {"experiments/new.py", "Makefile"}
    git(repo, "mv", "repro/model.py", "repro/net.py")  # a rename lists its new path once
    assert sorted(code_state(repo)["code_changes"]) == ["Makefile", "experiments/new.py", "repro/net.py"]


def test_changes_outside_the_code_do_not_count(repo):
    (repo / "README.md").write_text("# new numbers\n")
    (repo / "results/x.csv").write_text("a\n2\n")
    (repo / "results/new.csv").write_text("a\n3\n")
    assert code_state(repo)["code_dirty"] is False


def test_dirty_code_refuses_to_write_results_with_a_message_that_says_what_to_do(repo):
    (repo / "repro/model.py").write_text("x = 2\n")
    with pytest.raises(DirtyTree, match=r"make ablations writes results/ .*repro/model\.py.*--scratch"):
        require_clean_code("make ablations", root=repo)


def test_outside_a_git_checkout_the_commit_is_unknown_and_nothing_is_refused(tmp_path):
    state = code_state(tmp_path)
    assert state["git_commit"] == "unknown" and state["code_dirty"] is False
    require_clean_code("make reproduce", root=tmp_path)


def test_library_hash_follows_the_source_files_only(tmp_path):
    lib = tmp_path / "repro"
    lib.mkdir()
    (lib / "a.py").write_text("a = 1\n")
    (lib / "step.c").write_text("int x;\n")
    before = library_sha256(lib)
    (lib / "notes.txt").write_text("not code\n")
    assert library_sha256(lib) == before
    (lib / "step.c").write_text("int y;\n")
    assert library_sha256(lib) != before


def test_provenance_records_the_code_and_the_machine():
    meta = provenance("cpu")
    assert {"git_commit", "code_dirty", "code_changes", "code_diff_sha256", "library_sha256", "cpu_model",
            "torch", "numpy", "python", "device", "started"} <= set(meta)
    assert "git_dirty" not in meta
    json.dumps(meta)  # goes into meta.json as it is


def test_quick_runs_write_under_scratch_and_full_runs_under_results(tmp_path):
    assert output_dirs("reproduce", False, tmp_path) == (tmp_path / "results/reproduce", tmp_path / "runs/reproduce")
    code = tmp_path / "scratch/runs/reproduce" / f"code-{library_sha256()[:12]}"
    assert output_dirs("reproduce", True, tmp_path) == (tmp_path / "scratch/results/reproduce", code)
    # quick runs with other overrides or code never share a checkpoint (train() would refuse it)
    _, tiny = output_dirs("reproduce", True, tmp_path, dict(train_size=600, passes=1))
    assert tiny == code / "passes=1,train_size=600"


def test_a_full_run_from_dirty_code_exits_with_status_2(monkeypatch, capsys):
    def dirty(target):
        raise DirtyTree(f"{target} refuses")
    monkeypatch.setattr("runner.require_clean_code", dirty)
    with pytest.raises(SystemExit) as stop:
        confirm_outputs("make mu-study", False, Path("results/mu_study"), Path("runs/mu_study"))
    assert stop.value.code == 2 and "make mu-study refuses" in capsys.readouterr().err
    confirm_outputs("make mu-study", True, Path("scratch/results/mu_study"))  # a quick run goes ahead
    assert "scratch/results/mu_study" in capsys.readouterr().out


def test_keep_provenance_replaces_what_an_earlier_run_left(tmp_path, mnist_subset):
    from repro.train import train  # a real checkpoint, so that weights_only=True is tried on what train() saves
    run = tmp_path / "run"
    train(get_config(train_size=100, passes=1, hessian_samples=50), 0, run, mnist_subset(100, 100), progress=None)
    dest = tmp_path / "results" / "paper_seed0"
    dest.mkdir(parents=True)
    (dest / "meta_pass12.json").write_text("{}")
    keep_provenance(run, dest, weights=True)
    assert sorted(p.name for p in dest.iterdir()) == ["config.json", "meta.json", "model.pt"]
    final = torch.load(run / "checkpoint.pt", weights_only=True)["model"]  # a real checkpoint loads safely
    kept = weights.read(dest / "model.pt")  # with its config, provenance and checked SHA-256
    assert kept["model"].keys() == final.keys() and all(torch.equal(kept["model"][k], final[k]) for k in final)
    assert kept["config"] == get_config(train_size=100, passes=1, hessian_samples=50) and kept["provenance"]["seed"] == 0


BAD = [(["--passes", "0"], "--passes"), (["--train-size", "60001"], "--train-size"), (["--workers", "0"], "--workers"),
       (["--passes", "25"], "passes"),  # a config the Config refuses
       (["--seeds", "0", "0"], "seeds")]

# The command lines of BAD in one child process, each run as `python experiments/reproduce.py ...` runs
# it (runpy, with its own sys.argv): a process each spent its seconds importing torch. --scratch: should
# a check regress, the run that starts writes nothing outside scratch/.
PROBE = """
import contextlib, io, json, runpy, sys, time
sys.path.insert(0, "experiments")
results = []
for args in json.loads(sys.argv[1]):
    sys.argv, out, err, t0 = ["experiments/reproduce.py", *args, "--scratch"], io.StringIO(), io.StringIO(), time.time()
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            runpy.run_path(sys.argv[0], run_name="__main__")
        code = "no exit"
    except SystemExit as e:
        code = e.code
    except Exception as e:
        code = repr(e)
    results.append(dict(code=code, stdout=out.getvalue(), stderr=err.getvalue(), seconds=time.time() - t0))
print(json.dumps(results))
"""


@pytest.fixture(scope="module")
def probes():
    """{command line: its exit code, stdout, stderr and seconds}"""
    done = subprocess.run([sys.executable, "-c", PROBE, json.dumps([args for args, _ in BAD])], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return {tuple(args): result for (args, _), result in zip(BAD, json.loads(done.stdout.splitlines()[-1]))}


@pytest.mark.parametrize("args, message", BAD)
def test_a_bad_command_line_stops_before_any_training(probes, args, message):
    result = probes[tuple(args)]
    assert result["code"] == 2, result["stderr"]
    assert message in result["stderr"] and "Traceback" not in result["stderr"]
    assert "pass  1" not in result["stdout"] and result["seconds"] < 60  # imports only, no training
