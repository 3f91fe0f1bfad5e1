"""A pytest plugin that writes each test's outcome, one `NODEID<TAB>OUTCOME` line per test, to
the file named by CHORUS_LLAMA_REPORT: `passed`, `failed` (in the test or its setup or
teardown) or `skipped`. Used by scripts/llama-server-tests.sh to compare the run with
expected-failures.txt."""

import os

_outcomes = {}


def pytest_runtest_logreport(report):
    previous = _outcomes.get(report.nodeid)
    if report.failed:
        _outcomes[report.nodeid] = "failed"
    elif report.skipped and previous is None:
        _outcomes[report.nodeid] = "skipped"
    elif report.when == "call" and report.passed and previous is None:
        _outcomes[report.nodeid] = "passed"


def pytest_sessionfinish(session, exitstatus):
    path = os.environ.get("CHORUS_LLAMA_REPORT")
    if not path:
        return
    with open(path, "w", encoding="utf-8") as out:
        for nodeid, outcome in sorted(_outcomes.items()):
            out.write(f"{nodeid}\t{outcome}\n")
