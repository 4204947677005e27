#!/usr/bin/env python3
"""Top functions of one callgrind dump by exclusive and inclusive Ir, per delivery.

    callgrind_top.py FILE DELIVERIES [ROWS]

(callgrind_annotate 3.19 puts every instruction of these dumps under `clone`, so the format is
read here: a cost line under `fn=` is the function's own; the line after `calls=` is the
inclusive cost of that call. Inclusive figures of recursive functions count the recursion
more than once.) Names are printed as they are in the file: pipe through
`swift demangle --simplified`.
"""
import re
import sys
from collections import defaultdict

path, deliveries = sys.argv[1], int(sys.argv[2])
rows = int(sys.argv[3]) if len(sys.argv) > 3 else 25
names = {}
exclusive = defaultdict(int)
inclusive_calls = defaultdict(int)  # cost of calls made by fn to other functions
self_calls = defaultdict(int)
current = None
callee = None
after_calls = False
total = 0
positions = 1  # columns before the cost on a cost line ("positions: instr line" makes it 2)
name_re = re.compile(r"^\((\d+)\)(?: (.*))?$")


def resolve(spec):
    m = name_re.match(spec)
    if not m:
        return spec
    ident, name = m.groups()
    if name:
        names[ident] = name
    return names.get(ident, "fn" + ident)


for line in open(path, errors="replace"):
    line = line.rstrip("\n")
    if not line:
        continue
    if line.startswith("positions:"):
        positions = len(line.split()) - 1
    elif line.startswith("fn="):
        current = resolve(line[3:])
        after_calls = False
    elif line.startswith("cfn="):
        callee = resolve(line[4:])
    elif line.startswith("calls="):
        after_calls = True
    elif line[0].isdigit() or line[0] in "+-*":
        parts = line.split()
        if len(parts) <= positions:
            continue
        cost = int(parts[positions])
        if after_calls:
            if callee == current:
                self_calls[current] += cost
            else:
                inclusive_calls[current] += cost
            after_calls = False
        else:
            exclusive[current] += cost
            total += cost
    elif line.startswith("summary:"):
        total_summary = int(line.split()[1])

functions = set(exclusive) | set(inclusive_calls)
inclusive = {f: exclusive[f] + inclusive_calls[f] for f in functions}
for title, table in (("exclusive", exclusive), ("inclusive", inclusive)):
    print(f"  top by {title} Ir (instructions per delivery, share of the thread's Ir):")
    for name, ir in sorted(table.items(), key=lambda kv: -kv[1])[:rows]:
        print(f"    {ir / deliveries:8.2f}  {100 * ir / total:5.1f} %  {name[:160]}")
