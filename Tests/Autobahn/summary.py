#!/usr/bin/env python3
"""Summarise an Autobahn TestSuite fuzzingclient run.

usage: summary.py REPORTS_DIR [--cases CASES_TXT] [--baseline EXPECTED_NON_STRICT_TXT]

Reads REPORTS_DIR/index.json (and the per-case JSON reports it names), prints the count of
cases per behavior and, for every case that is not OK, its description, expectation, the
report's result and its close details. Exit status 1 when a case FAILED (or has any other
non-passing behavior), when a case listed in --cases has no result, or, when the baseline
file exists, when a case is NON-STRICT that the baseline does not list. A missing baseline
file means no baseline check.
"""
import argparse
import json
import os
import sys

ORDER = ["OK", "NON-STRICT", "INFORMATIONAL", "UNIMPLEMENTED", "FAILED"]
# Behaviors that do not fail the run. NON-STRICT is judged against the baseline.
PASSING = {"OK", "NON-STRICT", "INFORMATIONAL", "UNIMPLEMENTED"}


def case_key(case_id):
    return tuple(int(part) for part in case_id.split("."))


def clip(value, limit=400):
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 5] + " ..."


def read_baseline(path):
    cases = set()
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.split("#", 1)[0].strip()
            if line:
                cases.add(line.split()[0])
    return cases


def close_line(report):
    local = report.get("localCloseCode")
    remote = report.get("remoteCloseCode")
    remote_reason = report.get("remoteCloseReason")
    parts = [
        "sent %s" % (local if local is not None else "no close"),
        "server sent %s%s" % (
            remote if remote is not None else "no close",
            " %r" % remote_reason if remote_reason else ""),
        "closed by %s" % ("fuzzer" if report.get("closedByMe") else "server"),
        "clean" if report.get("wasClean") else "unclean (%s)" % (report.get("wasNotCleanReason") or "?"),
    ]
    if report.get("droppedByMe"):
        parts.append("fuzzer dropped TCP")
    if report.get("wasCloseHandshakeTimeout"):
        parts.append("close handshake timed out")
    if report.get("wasServerConnectionDropTimeout"):
        parts.append("server did not drop TCP in time")
    if report.get("wasOpenHandshakeTimeout"):
        parts.append("opening handshake timed out")
    return "; ".join(parts)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("reports")
    parser.add_argument("--cases", help="file with the case ids that were meant to run, one a line")
    parser.add_argument("--baseline", help="NON-STRICT cases that are expected, one id a line")
    args = parser.parse_args()

    index_path = os.path.join(args.reports, "index.json")
    try:
        with open(index_path, encoding="utf-8") as f:
            index = json.load(f)
    except (OSError, ValueError) as error:
        print("autobahn: FAILED: cannot read %s: %s" % (index_path, error))
        return 1
    if not index:
        print("autobahn: FAILED: %s holds no agent: no case ran" % index_path)
        return 1

    failures = 0
    for agent in sorted(index):
        results = index[agent]
        wanted = []
        if args.cases:
            with open(args.cases, encoding="utf-8") as f:
                wanted = [line.strip() for line in f if line.strip()]
        missing = sorted(set(wanted) - set(results), key=case_key)

        counts = {}
        for result in results.values():
            counts[result["behavior"]] = counts.get(result["behavior"], 0) + 1
        names = ORDER + sorted(set(counts) - set(ORDER))
        total_ms = sum(r.get("duration", 0) for r in results.values())
        print("")
        print("Autobahn TestSuite, agent %s: %d cases (%.1f s of case time)" % (agent, len(results), total_ms / 1000))
        print("  " + "  ".join("%s %d" % (name, counts.get(name, 0)) for name in names)
              + ("  MISSING %d" % len(missing) if wanted else ""))

        baseline = None
        if args.baseline and os.path.exists(args.baseline):
            baseline = read_baseline(args.baseline)
            print("  NON-STRICT baseline: %s (%d cases)" % (args.baseline, len(baseline)))
        else:
            print("  NON-STRICT baseline: none (no check)")

        bad = []
        for case_id in sorted(results, key=case_key):
            result = results[case_id]
            behavior = result["behavior"]
            close_behavior = result.get("behaviorClose")
            verdict = None
            if behavior not in PASSING:
                verdict = "fails the run"
            elif behavior == "NON-STRICT" and baseline is not None:
                verdict = "expected (baseline)" if case_id in baseline else "NOT in the baseline: fails the run"
            if verdict is not None and verdict.endswith("fails the run"):
                failures += 1
            if behavior == "OK" and close_behavior in (None, "OK"):
                continue
            try:
                with open(os.path.join(args.reports, result["reportfile"]), encoding="utf-8") as f:
                    report = json.load(f)
            except (OSError, ValueError, KeyError):
                report = {}
            bad.append((case_id, behavior, close_behavior, verdict, result, report))

        if bad:
            print("")
            print("Cases that are not plainly OK:")
        for case_id, behavior, close_behavior, verdict, result, report in bad:
            print("")
            print("  %s  %s  (close: %s, %d ms)%s" % (
                case_id, behavior, close_behavior, result.get("duration", 0),
                "  -- " + verdict if verdict else ""))
            print("    case:     %s" % clip(report.get("description", "?")))
            print("    expect:   %s" % clip(report.get("expectation", "?")))
            print("    result:   %s" % clip(report.get("result", "?")))
            print("    closing:  %s" % clip(report.get("resultClose", "?")))
            print("    close:    %s" % close_line(report))
            if behavior not in ("OK", "INFORMATIONAL"):
                print("    received: %s" % clip(report.get("received", "?")))
                print("    expected: %s" % clip(report.get("expected", "?")))
                print("    expected close: %s" % clip(report.get("expectedClose", "?")))

        if missing:
            failures += len(missing)
            print("")
            shown = " ".join(missing[:20]) + (" ... and %d more" % (len(missing) - 20) if len(missing) > 20 else "")
            print("  MISSING (in the spec, no result; the fuzzer stopped early?): %s" % shown)
        if baseline is not None:
            stale = sorted((c for c in baseline if results.get(c, {}).get("behavior") == "OK"), key=case_key)
            if stale:
                print("")
                print("  now OK, can leave the baseline: %s" % " ".join(stale))

        passed = len(results) - sum(1 for c, r in results.items()
                                    if r["behavior"] not in PASSING
                                    or (r["behavior"] == "NON-STRICT" and baseline is not None and c not in baseline))
        print("")
        print("autobahn: %d passed, %d failed" % (passed, len(results) - passed + len(missing)))

    print("autobahn: report %s" % os.path.join(os.path.abspath(args.reports), "index.html"))
    if failures:
        print("autobahn: FAILED (%d case%s)" % (failures, "" if failures == 1 else "s"))
        return 1
    print("autobahn: OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
