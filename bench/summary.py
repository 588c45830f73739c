#!/usr/bin/env python3
"""The summary of every part's goals: run by bench/run.sh after the parts.
Each part keeps its goal rows in bench/data/goals/PART.json
(report.save_goals); this joins them, in the order below, into the table
between <!-- summary:begin --> and <!-- summary:end --> of RESULTS.md,
with the time each part was measured (a part not run this time keeps its
last figures). usage: summary.py [--write RESULTS.md]"""

import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import report  # noqa: E402

ORDER = ["sync", "live", "apply", "reads", "growth", "big", "tls", "filter", "cluster"]


def main():
    args = sys.argv[1:]
    write = args[1] if args[:1] == ["--write"] else None
    parts = {}
    if os.path.isdir(report.GOALS_DIR):
        for f in os.listdir(report.GOALS_DIR):
            if f.endswith(".json"):
                with open(os.path.join(report.GOALS_DIR, f)) as fh:
                    parts[f[:-5]] = json.load(fh)
    names = [p for p in ORDER if p in parts] + sorted(p for p in parts if p not in ORDER)
    out = ["Every part's goals as last measured (`make bench`; `PARTS` runs some: the "
           "others keep their last figures, with their time).\n",
           "| part | figure | goal | measured | met? | measured at |", "|---|---|---|---|---|---|"]
    met = total = 0
    for p in names:
        for g in parts[p]:
            ok = g["met"]
            if ok is not None:
                total += 1
                met += bool(ok)
            out.append("| %s | %s | %s | %s | %s | %s |" % (
                p, g["figure"], g["goal"], g["shown"],
                "-" if ok is None else ("yes" if ok else "**no**"), g["when"]))
    out.append("\n%d of %d goals met.\n" % (met, total))
    text = "\n".join(out)
    print(text)
    if write:
        report.write_sections(write, [("summary", "Summary", text)])


if __name__ == "__main__":
    main()
