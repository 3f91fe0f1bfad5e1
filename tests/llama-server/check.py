"""Compares a run of llama.cpp's server tests (the report written by report.py) with
expected-failures.txt: exits 1 on a test that failed and is not listed, on a listed test that
passed or did not run, and on an entry without a reason. Usage: check.py REPORT EXPECTED."""

import sys


def expected(path):
    entries, problems = {}, []
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            line = line.rstrip("\n")
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            nodeid, sep, reason = line.partition("  # ")
            if not sep or not reason.strip():
                problems.append(f"{path}:{n}: `{line.strip()}` has no reason (write `NODEID  # why`)")
                continue
            entries[nodeid.strip()] = reason.strip()
    return entries, problems


def main(report_path, expected_path):
    entries, problems = expected(expected_path)
    outcomes = {}
    with open(report_path, encoding="utf-8") as f:
        for line in f:
            nodeid, _, outcome = line.rstrip("\n").rpartition("\t")
            outcomes[nodeid] = outcome
    if not outcomes:
        problems.append("no test ran (see pytest's output)")
    for nodeid, outcome in sorted(outcomes.items()):
        if outcome == "failed" and nodeid not in entries:
            problems.append(f"unexpected failure: {nodeid}")
        if outcome == "passed" and nodeid in entries:
            problems.append(f"unexpected pass (remove it from {expected_path}): {nodeid}")
    for nodeid in sorted(entries):
        if nodeid not in outcomes:
            problems.append(f"listed but not run (remove it or fix its id): {nodeid}")
    counts = {o: sum(1 for v in outcomes.values() if v == o) for o in ("passed", "failed", "skipped")}
    print(f"llama-server tests: {counts['passed']} passed, {counts['failed']} failed "
          f"({len(entries)} expected), {counts['skipped']} skipped", file=sys.stderr)
    for p in problems:
        print(p, file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
