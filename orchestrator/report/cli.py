"""``ktest parse [--json] LOG...``: list the kernel reports found in console logs."""

from __future__ import annotations

import json
import sys
from typing import TextIO

from .model import Report
from .parser import parse_log


def _summary_line(r: Report) -> str:
    flags = [r.kind.value, r.severity]
    if r.corrupted:
        flags.append("corrupted")
    if r.modules:
        flags.append("modules=" + ",".join(r.modules))
    return f"  [{r.start}:{r.end}] {r.title}  ({'; '.join(flags)})"


def run_parse(paths: list[str], as_json: bool, out: TextIO = sys.stdout) -> int:
    """Parse each log and print its reports.

    Returns 0 when every file was read (whatever was found in it), 2 (after a
    one-line error on stderr) when a file cannot be read.
    """
    results: list[dict[str, object]] = []
    for path in paths:
        try:
            with open(path, "rb") as f:
                data = f.read()
        except OSError as e:
            print(f"ktest parse: cannot read {path}: {e.strerror or e}", file=sys.stderr)
            return 2
        reports = parse_log(data)
        if as_json:
            results.append(
                {
                    "path": path,
                    "reports": [
                        {
                            "title": r.title,
                            "kind": r.kind.value,
                            "severity": r.severity,
                            "corrupted": r.corrupted,
                            "corrupted_reason": r.corrupted_reason,
                            "start": r.start,
                            "end": r.end,
                            "frame": r.frame,
                            "modules": list(r.modules),
                            "taint": r.taint,
                        }
                        for r in reports
                    ],
                }
            )
            continue
        bugs = sum(r.severity == "bug" for r in reports)
        events = len(reports) - bugs
        print(f"{path}: {bugs} bug report(s), {events} event(s)", file=out)
        for r in reports:
            print(_summary_line(r), file=out)
    if as_json:
        json.dump(results, out, indent=2)
        out.write("\n")
    return 0
