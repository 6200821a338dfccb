"""A run as KernelCI's KCIDB data (schema v5.3): what `ktest export --kcidb`
prints, for `kcidb-submit` or any KCIDB consumer.

    checkout   the guest kernel's source (Debian's linux-source, or a tree)
    build      the guest kernel ktest built from it (cache key, variant)
    tests      one per record; a test that was run more than once gives one
               test per try (a flaky test shows its failure, not a pass)
    issues     the known issues that explained failures of this run, and
    incidents  one per explained failure

Statuses: passed PASS, failed FAIL, error ERROR, skipped SKIP; xfailed is
SKIP (a known emulator limitation made the test meaningless here) and
xpassed PASS (the code did what a correct driver does); ktest's own
outcome is kept in each test's misc.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

from orchestrator.plugin.record import Record
from orchestrator.runs.choices import Choices
from orchestrator.runs.rundir import Run
from orchestrator.runs.verdicts import strip_pair

ORIGIN = "ktest"
SCHEMA = {"major": 5, "minor": 3}
STATUS = {"passed": "PASS", "failed": "FAIL", "error": "ERROR", "skipped": "SKIP",
          "xfailed": "SKIP", "xpassed": "PASS", "flaky": "PASS"}
EXCERPT = 16384  # the schema's limit on log_excerpt


def _id(origin: str, *parts: str) -> str:
    return f"{origin}:" + ":".join(parts)


def _short(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def test_path(test: str) -> str:
    """A KCIDB test path: `ktest.nic.test_integrity.test_rx_integrity.v4-60`
    for tests/nic/test_integrity.py::test_rx_integrity[v4-60]."""
    file, _, name = test.partition("::")
    parts = [p for p in re.sub(r"\.py$", "", file).split("/") if p and p != "tests"]
    func, _, params = name.partition("[")
    parts += [*func.split("::"), params.rstrip("]")] if params else func.split("::")
    clean = [re.sub(r"[^a-zA-Z0-9_-]+", "_", p).strip("_") or "_" for p in parts if p]
    return ".".join(["ktest", *clean])


def _time(text: str | None) -> dict[str, str]:
    return {"start_time": text} if text else {}


def export(run: Run, origin: str = ORIGIN) -> dict[str, Any]:
    m = run.manifest
    kernel = m.get("kernel") or {}
    choices = Choices.from_dict(m.get("choices") or {})
    release = kernel.get("release") or "unknown"
    source = (f"tree {kernel['src']}" if kernel.get("src") else
              f"Debian linux-source-{kernel.get('version') or choices.kernel or '?'}")
    checkout_id = _id(origin, "checkout", _short(f"{source}\0{release}"))
    build_id = _id(origin, "build", str(kernel.get("key") or _short(release)))
    run_uid = f"{(m.get('host') or {}).get('name', 'host')}/{run.name}/{m.get('started', '')}"
    qemu = (m.get("qemu") or {}).get("version")
    checkout = {"id": checkout_id, "origin": origin, "tree_name": source, "valid": True,
                "comment": f"guest kernel source: {source}",
                "misc": {"release": release, "src": kernel.get("src"),
                         "version": kernel.get("version")}, **_time(m.get("started"))}
    build = {"id": build_id, "checkout_id": checkout_id, "origin": origin,
             "architecture": "x86_64", "config_name": f"ktest-{choices.variant}",
             "status": "PASS", "comment": f"ktest guest kernel {release}",
             "misc": {"kernel_key": kernel.get("key"),
                      "image_key": (m.get("image") or {}).get("key"),
                      "config_fragments": list(choices.config)},
             **_time(m.get("started"))}
    tests: list[dict[str, Any]] = []
    issues: dict[str, dict[str, Any]] = {}
    incidents: list[dict[str, Any]] = []
    for r in run.records:
        test_id = _id(origin, "test", _short(f"{run_uid}\0{r.pair}\0{r.test}"))
        made = _tests(r, test_id, build_id, origin, qemu)
        tests += made
        if r.known is not None:
            issue_id = _id(origin, "issue", _short(f"{r.known.source}\0{r.known.reason}"))
            issue: dict[str, Any] = {"id": issue_id, "version": 1, "origin": origin,
                                     "comment": r.known.reason,
                                     "misc": {"source": r.known.source}}
            if r.known.link.startswith(("http://", "https://")):
                issue["report_url"] = r.known.link
            issues[issue_id] = issue
            incidents.append({"id": _id(origin, "incident", _short(f"{test_id}\0{issue_id}")),
                              "origin": origin, "issue_id": issue_id, "issue_version": 1,
                              "test_id": made[-1]["id"], "build_id": build_id,
                              "present": True})
    return {"version": dict(SCHEMA), "checkouts": [checkout], "builds": [build],
            "tests": tests, "issues": list(issues.values()), "incidents": incidents}


def _tests(r: Record, test_id: str, build_id: str, origin: str,
           qemu: str | None) -> list[dict[str, Any]]:
    profile = (r.pair or "?").partition("/")[0]
    common: dict[str, Any] = {
        "build_id": build_id, "origin": origin, "path": test_path(strip_pair(r.test, r.pair)),
        "environment": {"comment": f"QEMU {qemu or '?'} guest, profile {profile}",
                        "misc": {"pair": r.pair, "qemu": qemu}},
    }
    excerpt = "\n\n".join([r.message, *(f"{x.title}\n{x.excerpt}" for x in r.reports)])
    misc = {"test": r.test, "pair": r.pair, "outcome": r.outcome, "phase": r.phase,
            "known": r.known.reason if r.known else None}
    if not r.attempts:
        return [{"id": test_id, **common, "status": STATUS.get(r.outcome, "ERROR"),
                 "duration": r.duration, "comment": f"{r.pair} {r.test}", "misc": misc,
                 **({"log_excerpt": excerpt.strip()[:EXCERPT]} if excerpt.strip() else {}),
                 **_time(r.started)}]
    out = []
    for i, a in enumerate(r.attempts, 1):
        out.append({"id": f"{test_id}:try{i}", **common,
                    "status": STATUS.get(a.outcome, "ERROR"), "duration": a.duration,
                    "comment": f"{r.pair} {r.test} (try {i} of {len(r.attempts)})",
                    "misc": {**misc, "try": i, "try_outcome": a.outcome},
                    **({"log_excerpt": a.message[:EXCERPT]} if a.message else {}),
                    **_time(a.started)})
    return out
