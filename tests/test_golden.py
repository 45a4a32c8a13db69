"""Golden runs: short real trainings whose exact results (every metric and a hash of the final
weights) are committed in tests/golden.json. The machines that build and test this project differ
from one run to the next, so these tests are the proof that a seed gives the same numbers on every
x86-64 CPU: any drift, in any digit, fails them.

Each case trains through repro.train.train, as `make reproduce` does: curvature estimate, online
updates (or Adam's mini-batches), distortions, input variants, evaluation. The same runs are also
repeated with the CPU-dependent kernels of PyTorch, oneDNN and MKL forced to the code paths of older
CPUs, which shows that no kernel chosen by CPU enters the numbers.

After a deliberate change of the numbers: `python tests/test_golden.py --write`, and say why in the
commit."""
import argparse
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from conftest import needs_native
from repro import paper

pytestmark = needs_native  # without a C compiler: skipped, and the run says so at its start

GOLDEN = Path(__file__).with_name("golden.json")
CASES = {  # name: (variant, overrides): a few thousand patterns, one curvature estimate, an evaluation
    "paper": ("paper", dict(train_size=3000, passes=1)),
    "paper-distortions": ("distortions", dict(train_size=300, passes=1, hessian_samples=100)),
    "distortions-fresh": ("distortions-fresh", dict(train_size=1000, passes=1, hessian_samples=100)),
    "standardized-input-exact-boundary": ("standardized-input", dict(train_size=1000, passes=1, hessian_samples=100,
                                                                      boundary="exact")),
    "modern-adam": ("modern", dict(train_size=1000, passes=1)),
    # the other networks of Sec. III-C (network_step.c), each on its own input and with the text's mu, as
    # the comparison trains them (repro.combinations.NETWORK_MU)
    "lenet1": ("paper", dict(network="lenet1", mu=paper.MU, train_size=1000, passes=1, hessian_samples=100)),
    "lenet4-distortions": ("paper", dict(network="lenet4", mu=paper.MU, distortions="paper", train_size=300, passes=1,
                                         hessian_samples=100)),
    "mlp-300-100": ("paper", dict(network="mlp-300-100", mu=paper.MU, train_size=1000, passes=1, hessian_samples=100)),
    "mlp-300-deslant-eq8": ("paper", dict(network="mlp-300-deslant", mu=paper.MU, loss="ml", train_size=1000, passes=1,
                                          hessian_samples=100)),
}
TIMING = ("seconds", "eval_seconds", "samples_per_s")


def weights_sha256(state):
    digest = hashlib.sha256()
    for k in sorted(state):
        digest.update(k.encode() + state[k].contiguous().numpy().tobytes())
    return digest.hexdigest()


def run_cases(tmp, data):
    """{case: {metric: value, ..., "weights_sha256": ...}} from real trainings in folder `tmp`; `data` is
    repro.data.load_mnist()'s."""
    from repro.config import get_config
    from repro.train import load_data, train
    torch.set_num_threads(1)
    out = {}
    for name, (variant, overrides) in CASES.items():
        run_dir = Path(tmp) / name
        config = get_config(variant, **overrides)
        own = data if config.network in ("lenet5", "lenet4") else load_data(config)
        (row,) = train(config, 0, run_dir, own, progress=None, require_portable=True)
        state = torch.load(run_dir / "checkpoint.pt", weights_only=True)["model"]
        out[name] = {**{k: v for k, v in row.items() if k not in TIMING}, "weights_sha256": weights_sha256(state)}
    return out


def differences(got, expected):
    return [f"{case}.{k}: {got[case].get(k)!r} (committed: {v!r})"
            for case, row in expected.items() for k, v in row.items() if got.get(case, {}).get(k) != v
            and not (v != v and got[case].get(k) != got[case].get(k))]  # NaN == NaN here


@pytest.fixture(scope="module")
def golden():
    return json.loads(GOLDEN.read_text())


@pytest.mark.usefixtures("kernel_path_runs")  # started first, so that they run beside this one
def test_golden_runs_give_the_committed_numbers(golden, tmp_path, mnist):
    diff = differences(run_cases(tmp_path, mnist), golden)
    assert not diff, "numbers drifted from tests/golden.json:\n" + "\n".join(diff)


# PyTorch's own kernels (ATen), oneDNN's convolutions and MKL's BLAS each pick code paths by CPU;
# these variables force the paths of older CPUs, on top of the in-process run on this CPU's own.
# (The build before this test existed changed its numbers under the second one: PAPER_NOTES.md.)
KERNEL_PATHS = {
    "oldest": dict(ATEN_CPU_CAPABILITY="default", ONEDNN_MAX_CPU_ISA="SSE41", MKL_CBWR="COMPATIBLE"),
    "avx2-only": dict(ATEN_CPU_CAPABILITY="avx2", ONEDNN_MAX_CPU_ISA="AVX2", MKL_CBWR="AVX2"),
}


@pytest.fixture(scope="module")
def kernel_path_runs(tmp_path_factory):
    """{paths: (the process running the cases with the variables of KERNEL_PATHS[paths], its folder)}, all
    started at once: each trains on one thread (run_cases), so where there are cores to spare they run
    beside one another and beside the in-process run instead of one after the other."""
    runs = {}
    for paths, variables in KERNEL_PATHS.items():
        folder = tmp_path_factory.mktemp(paths)
        with open(folder / "stdout", "w") as out, open(folder / "stderr", "w") as err:  # the child keeps its own
            runs[paths] = subprocess.Popen([sys.executable, __file__, "--print", str(folder / "runs")], stdout=out,
                                           stderr=err, env=dict(os.environ, **variables)), folder
    yield runs
    for process, _ in runs.values():  # a run that a failure left unfinished
        process.kill()
        process.wait()


@pytest.mark.parametrize("paths", KERNEL_PATHS)
def test_golden_runs_do_not_depend_on_the_cpu_paths_of_pytorchs_kernels(golden, paths, kernel_path_runs):
    process, folder = kernel_path_runs[paths]
    assert process.wait(timeout=600) == 0, (folder / "stderr").read_text()[-2000:]
    diff = differences(json.loads((folder / "stdout").read_text()), golden)
    assert not diff, f"with {KERNEL_PATHS[paths]}:\n" + "\n".join(diff)


def main():
    ap = argparse.ArgumentParser(description="Run the golden cases; --write stores them in tests/golden.json.")
    ap.add_argument("--write", action="store_true")
    ap.add_argument("--print", dest="folder", help="run in this folder and print the results as JSON")
    args = ap.parse_args()
    import tempfile
    from repro import data as mnist
    with tempfile.TemporaryDirectory() as tmp:
        got = run_cases(args.folder or tmp, mnist.load_mnist())
    if args.write:
        old = json.loads(GOLDEN.read_text()) if GOLDEN.exists() else {}
        print("\n".join(differences(got, old)) or ("unchanged" if old else f"wrote {GOLDEN}"))
        GOLDEN.write_text(json.dumps(got, indent=1) + "\n")
    else:
        print(json.dumps(got))


if __name__ == "__main__":
    main()
