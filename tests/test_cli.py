"""The command line of every script in experiments/: a bad value stops it before any work (no data
loaded, nothing trained or written) with status 2 and one line naming the problem (argparse's
`prog: error: ...` after the usage), never a traceback; and --help works for every script."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# every script with a command line, so a new one is checked too
SCRIPTS = sorted(p.stem for p in (ROOT / "experiments").glob("*.py") if 'if __name__ == "__main__":' in p.read_text())

# (script, arguments, environment, what the error line must name); the comment: what the probe did before
PROBES = [
    ("reproduce", ["--device", "nope"], {}, "--device"),  # was a traceback in every worker process
    ("reproduce", ["--device", "cuda:99"], {}, "'cuda:99'"),  # no such GPU, with or without CUDA
    ("reproduce", ["--experiment", "training_size", "--train-size", "100"], {}, "--train-size"),  # rows made alike
    ("bench", [], {"BENCH_SECONDS": "abc"}, "BENCH_SECONDS"),  # was a traceback
    ("bench", ["--seconds", "inf"], {}, "--seconds"),  # never ended
    ("ablations", ["--variants", "paper"], {}, "--variants"),  # trained, then failed: nothing to compare
    ("eps_range", ["--passes", "1"], {}, "--train"),  # was ignored without --train
    ("eps_range", ["--workers", "2"], {}, "--train"),  # likewise
    ("mu_study", ["--seeds", "0"], {}, "at least 2 seeds"),  # trained, then failed on one seed's spread
    ("recipe_study", ["--seeds", "0"], {}, "at least 2 seeds"),  # a decision without a test
    ("compare", ["--methods", "knn", "knn"], {}, "--methods"),  # one job twice, into one directory
    ("protocol_study", ["--train-size", "2"], {}, "--train-size"),  # 3-NN on 2 references: failed in every worker
    ("readme", ["nosuch"], {}, "unknown experiment 'nosuch'"),  # was a KeyError
]


@pytest.mark.parametrize("script, args, env, names", PROBES, ids=[f"{p[0]} {' '.join(p[1]) or p[2]}" for p in PROBES])
def test_a_bad_command_line_stops_with_one_line_before_any_work(script, args, env, names):
    # --scratch: should a check regress, whatever then runs writes nothing outside scratch/
    scratch = [] if script == "readme" else ["--scratch"]
    done = subprocess.run([sys.executable, f"experiments/{script}.py", *args, *scratch], cwd=ROOT,
                          env=dict(os.environ, **env), capture_output=True, text=True, timeout=60)  # imports only: seconds
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith(f"{script}.py: error: ") and names in last, done.stderr
    assert done.stdout == ""  # nothing started, not even the line saying where it would write


# In one process, for speed (torch is imported once): each script run as __main__ with --help,
# recording each parser's allow_abbrev (off, so an abbreviation such as --seed is refused).
HELP = """
import argparse, contextlib, io, json, runpy, sys
sys.path.insert(0, "experiments")
parse, abbrev = argparse.ArgumentParser.parse_args, {}
def recording(self, *args, **kwargs):
    abbrev[self.prog] = self.allow_abbrev
    return parse(self, *args, **kwargs)
argparse.ArgumentParser.parse_args = recording
scripts, result = sys.argv[1:], {}
for script in scripts:
    sys.argv, out = [f"experiments/{script}.py", "--help"], io.StringIO()
    try:
        with contextlib.redirect_stdout(out):
            runpy.run_path(sys.argv[0], run_name="__main__")
        code = "no exit"
    except SystemExit as e:
        code = e.code
    except Exception as e:
        code = repr(e)
    result[script] = dict(code=code, usage=out.getvalue().startswith("usage:"), allow_abbrev=abbrev.get(f"{script}.py"))
print(json.dumps(result))
"""


@pytest.fixture(scope="module")
def helps():
    done = subprocess.run([sys.executable, "-c", HELP, *SCRIPTS], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.splitlines()[-1])


@pytest.mark.parametrize("script", SCRIPTS)
def test_help_works_and_abbreviations_are_refused(helps, script):
    assert helps[script] == dict(code=0, usage=True, allow_abbrev=False)
