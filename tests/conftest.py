"""What the tests share: whether this machine has the native code (repro/native.py), asked once.
Without a C compiler the tests that need it are skipped (`needs_native`), and the run says at its
start that the golden proof (tests/test_golden.py) did not run."""
import pytest

from repro import native

NATIVE, WHY_NOT = native.available()
needs_native = pytest.mark.skipif(not NATIVE, reason=f"needs the native code, unavailable here: {WHY_NOT}")


def pytest_sessionstart(session):
    # Not pytest_report_header: `make test` runs pytest -q, which prints no header.
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if not NATIVE and reporter is not None:
        reporter.write_line(f"NOT RUN: the golden proof (tests/test_golden.py) and the other native-code tests; "
                            f"the native code is unavailable here: {WHY_NOT}", yellow=True, bold=True)
