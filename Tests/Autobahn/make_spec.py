# Python 2.7 only: run by run.sh with the installed autobahntestsuite on sys.path.
#
# Writes the fuzzingclient spec and the resolved list of case ids it will run.
# The size of every 9.* (Limits/Performance) message is read from the installed case
# classes themselves (DATALEN, set in init(), for 9.1-9.6; LEN for 9.7/9.8), so the cap
# follows the suite rather than a table copied out of it.
#
# usage: make_spec.py URL AGENT OUTDIR MAX_MESSAGE SPEC_OUT CASES_OUT [CASE_PATTERNS]
import json
import sys

from autobahntestsuite.case import (Cases, CaseSetname, CaseBasename,
                                    CaseCategories, CaseSubCategories)
from autobahntestsuite.caseset import CaseSet

DEFAULT_CASES = ["1.*", "2.*", "3.*", "4.*", "5.*", "6.*", "7.*", "9.*", "10.*"]
# 12.* and 13.* test permessage-deflate only, which the relay declines.
ALWAYS_EXCLUDED = ["12.*", "13.*"]


def message_size(klass):
    """Bytes in the largest message a 9.* case sends, from its own class."""
    if hasattr(klass, "LEN"):  # 9.7.x / 9.8.x: COUNT messages of LEN bytes
        return klass.LEN
    probe = klass(None)  # Case.__init__ only sets attributes and calls init(): no protocol needed
    if hasattr(probe, "DATALEN"):
        return probe.DATALEN
    if hasattr(klass, "PAYLOAD"):
        return len(klass.PAYLOAD)
    raise SystemExit("make_spec.py: cannot tell the message size of case class %s" % klass.__name__)


def main():
    url, agent, outdir, cap, spec_out, cases_out = sys.argv[1:7]
    cap = int(cap)
    patterns = sys.argv[7].replace(",", " ").split() if len(sys.argv) > 7 and sys.argv[7].strip() else DEFAULT_CASES
    case_set = CaseSet(CaseSetname, CaseBasename, Cases, CaseCategories, CaseSubCategories)

    too_big = []
    for klass in Cases:
        case_id = case_set.caseClasstoId(klass)
        if case_id.split(".")[0] != "9":
            continue
        size = message_size(klass)
        if size > cap:
            too_big.append((case_id, size))

    spec = {
        "outdir": outdir,
        "servers": [{"agent": agent, "url": url}],
        "cases": patterns,
        "exclude-cases": ALWAYS_EXCLUDED + [case_id for case_id, _ in too_big],
        "exclude-agent-cases": {},
    }
    resolved = case_set.parseSpecCases(spec)
    with open(spec_out, "w") as f:
        json.dump(spec, f, indent=2, sort_keys=True)
    with open(cases_out, "w") as f:
        f.write("\n".join(resolved) + "\n")

    sizes = sorted(set(size for _, size in too_big))
    print("spec: %d cases (%s), 12.* and 13.* excluded; %d 9.* cases excluded as over "
          "AUTOBAHN_MAX_MESSAGE=%d bytes (message sizes %s)"
          % (len(resolved), " ".join(patterns), len(too_big), cap,
             ", ".join(str(s) for s in sizes) or "none"))


if __name__ == "__main__":
    main()
