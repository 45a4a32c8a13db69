"""What the tests share: whether this machine has the native code (repro/native/), asked once; MNIST,
read once per session; and the scripts of experiments/ on the import path.
Without a C compiler the tests that need it are skipped (`needs_native`), and the run says at its
start that the golden proof (tests/test_golden.py) did not run."""
import sys
from pathlib import Path

import pytest
import torch

from repro import data, native

# The scripts of experiments/ import one another by bare name (`import compare`), as when run from there.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "experiments"))
# One thread, as the project's training workers run (experiments/runner.py): the tests' networks and
# matrices gain nothing from a second one (on a busy machine it made them ten times slower), the golden
# runs need the cores side by side (tests/test_golden.py), and a test takes as long alone as in the suite.
torch.set_num_threads(1)

NATIVE, WHY_NOT = native.available()
needs_native = pytest.mark.skipif(not NATIVE, reason=f"needs the native code, unavailable here: {WHY_NOT}")


def pytest_sessionstart(session):
    # Not pytest_report_header: `make test` runs pytest -q, which prints no header.
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if not NATIVE and reporter is not None:
        reporter.write_line(f"NOT RUN: the golden proof (tests/test_golden.py) and the other native-code tests; "
                            f"the native code is unavailable here: {WHY_NOT}", yellow=True, bold=True)


@pytest.fixture(scope="session")
def mnist():
    """repro.data.load_mnist(), read once: each read checks the files' MD5s and scales 70,000 images
    (about a second). Shared by every test: read it, or take copies with `mnist_subset`."""
    return data.load_mnist()


@pytest.fixture(scope="session")
def mnist_subset(mnist):
    """mnist_subset(train, test): the first `train` training and `test` test images with their labels,
    as copies, so that a test that changes them changes nothing another test reads."""
    def subset(train, test):
        return {k: v[:train if k.startswith("train") else test].clone() for k, v in mnist.items()}
    return subset
