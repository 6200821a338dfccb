#!/usr/bin/env python3
# ruff: noqa: E501
# (the boot log below keeps its real line lengths)
"""Benchmark orchestrator.report against the syzkaller-derived report corpus.

Usage: python bench/report_corpus.py [--corpus PATH] [--verbose] [--reps N] [--mb N]
       python bench/report_corpus.py --save-reports FILE | --check-reports FILE

Everything goes through the code path of ``ktest parse --json`` (``run_parse``),
on files written to a temporary directory.

Figures:
  titles     entries with an expected title for which the first entry of the
             log's "bugs" list has exactly that title (strict; alt_titles are not
             counted).
  events     entries whose "bugs" list holds an event (must be 0: events have a
             list of their own, so none can stand before the first bug).
  no-report  entries without expected title for which no bug is found.
  corrupted  entries with an expected title whose first bug's corrupted flag
             equals the expected one.
  speed      MB per second of CPU time (best of --reps runs; the wall-clock figure
             follows, it also counts the other processes of a shared machine) over
             the corpus files, over a dense log of --mb MB made of corpus entries
             with a report put back to back, and over a clean log of --mb MB (a boot
             log without reports, repeated).

Report equality (for a change meant to keep every report as it is):
``--save-reports FILE`` writes the full ``Report.to_dict()`` (text included) of
every report, before and after folding repeats, of every log of a fixed set
(each corpus entry as is and with host timestamps, each golden log, the dense
log, a dense log of golden logs, a clean log); ``--check-reports FILE``
compares the current parser's output with such a file and lists differences
(exit status 1 if any). Run the first on the old code, the second on the new.
"""

from __future__ import annotations

import argparse
import base64
import gzip
import io
import json
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from orchestrator.report.cli import run_parse  # noqa: E402
from orchestrator.report.parser import all_reports, parse_log  # noqa: E402
from orchestrator.runs.golden import golden_logs, split_golden  # noqa: E402

DEFAULT_CORPUS = ROOT.parent / "shared" / "report-corpus" / "syzkaller-linux-dev.jsonl"


@dataclass
class Entry:
    name: str
    data: bytes
    title: str | None
    corrupted: bool
    frame: str | None


@dataclass
class Results:
    titled: int = 0
    title_ok: int = 0
    untitled: int = 0
    none_ok: int = 0
    corrupted_ok: int = 0
    frames: int = 0
    frame_ok: int = 0
    events_in_bugs: int = 0
    misses: list[str] = field(default_factory=list)
    mb_per_s: float = 0.0  # per CPU second
    wall_mb_per_s: float = 0.0
    total_bytes: int = 0

    @property
    def title_acc(self) -> float:
        return self.title_ok / self.titled if self.titled else 1.0

    @property
    def none_acc(self) -> float:
        return self.none_ok / self.untitled if self.untitled else 1.0

    @property
    def corrupted_acc(self) -> float:
        return self.corrupted_ok / self.titled if self.titled else 1.0


def load(path: Path) -> list[Entry]:
    entries = []
    with path.open(encoding="utf-8") as f:
        for line in f:
            if not line.strip():
                continue
            obj = json.loads(line)
            if obj.get("text_b64"):
                data = base64.b64decode(obj["text_b64"])
            else:
                data = obj["text"].encode("utf-8", "surrogateescape")
            entries.append(
                Entry(
                    str(obj["name"]),
                    data,
                    obj.get("title"),
                    bool(obj.get("corrupted")),
                    obj.get("frame"),
                )
            )
    return entries


def parse_files(paths: list[str]) -> list[dict[str, Any]]:
    """``ktest parse --json PATHS``: the parsed JSON output."""
    out = io.StringIO()
    status = run_parse(paths, as_json=True, out=out)
    if status == 2:
        raise RuntimeError(f"ktest parse: bad input among {len(paths)} files")
    result: list[dict[str, Any]] = json.loads(out.getvalue())
    return result


def best_time(fn: Callable[[], object], reps: int) -> tuple[float, float]:
    """(CPU seconds, wall seconds) of the fastest of ``reps`` runs of ``fn``. The
    CPU time is the figure that counts: on a shared machine the wall time also
    measures the other processes."""
    best = (float("inf"), float("inf"))
    for _ in range(max(1, reps)):
        c0, w0 = time.process_time(), time.perf_counter()
        fn()
        best = min(best, (time.process_time() - c0, time.perf_counter() - w0))
    return best


def _score(res: Results, e: Entry, got: dict[str, Any]) -> None:
    bugs = got["bugs"]
    res.events_in_bugs += any(b["severity"] != "bug" for b in bugs)
    first = bugs[0] if bugs else None
    if e.title is None:
        res.untitled += 1
        if first is None:
            res.none_ok += 1
        else:
            res.misses.append(f"{e.name}: expected no report, got {first['title']!r}")
        return
    res.titled += 1
    title = first["title"] if first else None
    if title == e.title:
        res.title_ok += 1
    else:
        res.misses.append(f"{e.name}: expected {e.title!r}, got {title!r}")
    got_corrupted = bool(first and first["corrupted"])
    if got_corrupted == e.corrupted:
        res.corrupted_ok += 1
    else:
        reason = first["corrupted_reason"] if first else None
        res.misses.append(
            f"{e.name}: corrupted expected {e.corrupted}, got {got_corrupted} ({reason}) "
            f"[{e.title!r}]"
        )
    if e.frame:
        res.frames += 1
        if first is not None and (first["frame"] or "corrupted") == e.frame:
            res.frame_ok += 1


def evaluate(entries: list[Entry], reps: int = 3) -> Results:
    res = Results()
    with tempfile.TemporaryDirectory(prefix="report-corpus-") as tmp:
        paths = []
        for k, e in enumerate(entries):
            p = Path(tmp) / f"{k:04d}-{e.name}.log"
            p.write_bytes(e.data)
            paths.append(str(p))
        for e, got in zip(entries, parse_files(paths), strict=True):
            _score(res, e, got)
        res.total_bytes = sum(len(e.data) for e in entries)
        cpu, wall = best_time(lambda: parse_files(paths), reps)
    res.mb_per_s = res.total_bytes / cpu / 1e6 if cpu > 0 else float("inf")
    res.wall_mb_per_s = res.total_bytes / wall / 1e6 if wall > 0 else float("inf")
    return res


# A clean boot of a 6.12 debug kernel (printk caller ids), no report in it.
BOOT = """\
[T0] Linux version 6.12.9-ktest (builder@ktest) (gcc (Debian 12.2.0-14) 12.2.0, GNU ld 2.40) #1 SMP PREEMPT_DYNAMIC
[T0] Command line: console=ttyS0 root=/dev/vda rw kmemleak=on slub_debug=FZP panic_on_warn=0
[T0] BIOS-provided physical RAM map:
[T0] BIOS-e820: [mem 0x0000000000000000-0x000000000009fbff] usable
[T0] NX (Execute Disable) protection: active
[T0] DMI: QEMU Standard PC (Q35 + ICH9, 2009), BIOS 1.16.3-debian-1.16.3-2 04/01/2014
[T0] tsc: Detected 2994.374 MHz processor
[T0] Memory: 1982344K/2096632K available (22528K kernel code, 4412K rwdata, 9148K rodata)
[T0] Dentry cache hash table entries: 262144 (order: 9, 2097152 bytes, linear)
[T0] rcu: Preemptible hierarchical RCU implementation.
[T0] kmemleak: Kernel memory leak detector initialized (mem pool available: 15697)
[T1] smpboot: CPU0: Intel Core Processor (Skylake, IBRS) (family: 0x6, model: 0x5e, stepping: 0x3)
[T1] smp: Brought up 1 node, 2 CPUs
[T1] devtmpfs: initialized
[T1] PCI: Using configuration type 1 for base access
[T1] ACPI: Interpreter enabled
[T1] pci 0000:00:02.0: [1af4:1000] type 00 class 0x020000 conventional PCI endpoint
[T1] pci 0000:01:00.0: [8086:10d3] type 00 class 0x020000 PCIe Endpoint
[T1] SCSI subsystem initialized
[T1] DMA-API: preallocated 65536 debug entries
[T1] DMA-API: debugging enabled by kernel config
[T1] NET: Registered PF_INET6 protocol family
[T1] Serial: 8250/16550 driver, 4 ports, IRQ sharing enabled
[T1] virtio_blk virtio1: [vda] 2097152 512-byte logical blocks (1.07 GB/1.00 GiB)
[T1] e1000e: Intel(R) PRO/1000 Network Driver
[T1] e1000e 0000:01:00.0: Interrupt Throttling Rate (ints/sec) set to dynamic conservative mode
[T1] e1000e 0000:01:00.0 eth0: (PCI Express:2.5GT/s:Width x1) 52:54:00:12:34:56
[T1] pcieport 0000:00:1c.0: AER: enabled with IRQ 24
[T1] Freeing unused kernel image (initmem) memory: 4096K
[T1] Run /init as init process
[T140] EXT4-fs (vda): mounted filesystem 1c7d2e55-33a0-4c42-9d7e-1dd1e1b7a1f0 r/w with ordered data mode
[T152] random: crng init done
[T170] systemd[1]: Started Journal Service.
[T201] ktest: guest ready
[T233] ktest: test begin tests/nic/test_mtu.py::test_mtu_steps
[T240] 8021q: 802.1Q VLAN Support v1.8
[T233] ktest: test end tests/nic/test_mtu.py::test_mtu_steps call
"""


def clean_log(size: int) -> bytes:
    """A log of about ``size`` bytes: the clean boot, again and again."""
    lines = BOOT.splitlines()
    out: list[str] = []
    total = 0
    t = 0.0
    while total < size:
        for line in lines:
            t += 0.000731
            caller, msg = line.split(" ", 1)
            row = f"[{t:12.6f}][{caller[1:-1]:>6}] {msg}\n"
            out.append(row)
            total += len(row)
    return "".join(out).encode()


def dense_log(entries: list[Entry], size: int) -> bytes:
    """A log of about ``size`` bytes: the corpus entries that hold a report,
    back to back, again and again."""
    parts: list[bytes] = []
    total = 0
    reports = [e.data if e.data.endswith(b"\n") else e.data + b"\n" for e in entries if e.title]
    while total < size:
        for data in reports:
            parts.append(data)
            total += len(data)
            if total >= size:
                break
    return b"".join(parts)




def with_host_timestamps(data: bytes) -> bytes:
    """``data`` with a host wall-clock timestamp before every line."""
    lines = data.split(b"\n")
    return b"\n".join(
        b"10:%02d:%02d.%06d " % (k // 3600 % 60, k // 60 % 60, k % 1000000) + line
        for k, line in enumerate(lines)
    )


def equality_logs(entries: list[Entry], size: int) -> dict[str, bytes]:
    """The logs whose reports --save-reports/--check-reports compare, by name."""
    logs: dict[str, bytes] = {}
    for k, e in enumerate(entries):
        logs[f"corpus/{k:04d}-{e.name}"] = e.data
        logs[f"hosted/{k:04d}-{e.name}"] = with_host_timestamps(e.data)
    golden = []
    for path in golden_logs():
        log = split_golden(path.read_bytes())[1]
        logs[f"golden/{path.stem}"] = log
        golden.append(log)
    logs["dense"] = dense_log(entries, size)
    logs["golden-dense"] = b"".join(golden * max(1, size // 20 // max(1, len(b"".join(golden)))))
    logs["clean"] = clean_log(size // 10)
    return logs


def report_dicts(data: bytes) -> dict[str, list[dict[str, Any]]]:
    return {
        "all": [r.to_dict() for r in all_reports(data)],
        "folded": [r.to_dict() for r in parse_log(data)],
    }


def save_reports(entries: list[Entry], size: int, path: Path) -> int:
    got = {name: report_dicts(data) for name, data in equality_logs(entries, size).items()}
    with gzip.open(path, "wt", encoding="utf-8") as f:
        json.dump(got, f)
    n = sum(len(v["all"]) for v in got.values())
    print(f"saved {n} reports of {len(got)} logs to {path}")
    return 0


def check_reports(entries: list[Entry], size: int, path: Path, show: int = 20) -> int:
    with gzip.open(path, "rt", encoding="utf-8") as f:
        want = json.load(f)
    logs = equality_logs(entries, size)
    diffs: list[str] = []
    if set(logs) != set(want):
        diffs.append(f"log sets differ: {sorted(set(logs) ^ set(want))[:10]}")
    n = 0
    for name, data in logs.items():
        if name not in want:
            continue
        got = report_dicts(data)
        for which in ("all", "folded"):
            a, b = want[name][which], got[which]
            n += len(b) if which == "all" else 0
            if len(a) != len(b):
                diffs.append(f"{name} ({which}): {len(a)} reports saved, {len(b)} now")
            for k, (ra, rb) in enumerate(zip(a, b, strict=False)):
                for key in sorted(set(ra) | set(rb)):
                    if ra.get(key) != rb.get(key):
                        diffs.append(
                            f"{name} ({which}) report {k} {key}: "
                            f"{str(ra.get(key))[:200]!r} -> {str(rb.get(key))[:200]!r}"
                        )
    for d in diffs[:show]:
        print("DIFF", d)
    if diffs:
        print(f"{len(diffs)} differences ({n} reports of {len(logs)} logs compared)")
        return 1
    print(f"identical: {n} reports of {len(logs)} logs (every field of to_dict())")
    return 0


def speed(path: Path, reps: int) -> tuple[float, float, int, int]:
    """(MB per CPU second, MB per wall second, bugs, events) of ``ktest parse
    --json`` on one file."""
    size = path.stat().st_size
    (got,) = parse_files([str(path)])
    cpu, wall = best_time(lambda: parse_files([str(path)]), reps)
    return size / cpu / 1e6, size / wall / 1e6, len(got["bugs"]), len(got["events"])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    ap.add_argument("--verbose", action="store_true", help="list every miss")
    ap.add_argument("--reps", type=int, default=5, help="timing repetitions (best-of)")
    ap.add_argument("--mb", type=float, default=20.0, help="size of the dense and clean logs")
    check = ap.add_mutually_exclusive_group()
    check.add_argument(
        "--save-reports", type=Path, metavar="FILE", help="save every report (.json.gz), no timing"
    )
    check.add_argument(
        "--check-reports", type=Path, metavar="FILE", help="compare every report with FILE"
    )
    args = ap.parse_args(argv)
    if not args.corpus.exists():
        print(f"corpus not found: {args.corpus}", file=sys.stderr)
        return 2
    entries = load(args.corpus)
    size = int(args.mb * 1e6)
    if args.save_reports is not None:
        return save_reports(entries, size, args.save_reports)
    if args.check_reports is not None:
        return check_reports(entries, size, args.check_reports)
    res = evaluate(entries, args.reps)
    if args.verbose:
        for miss in res.misses:
            print("MISS", miss)
        print()
    print(f"entries:    {len(entries)} ({res.total_bytes / 1e6:.2f} MB)")
    print(f"titles:     {res.title_ok}/{res.titled} = {100 * res.title_acc:.1f}% exact (first bug)")
    print(f"events:     {res.events_in_bugs} logs with an event among (or before) the bugs")
    print(f"no-report:  {res.none_ok}/{res.untitled} = {100 * res.none_acc:.1f}% correct")
    print(f"corrupted:  {res.corrupted_ok}/{res.titled} = {100 * res.corrupted_acc:.1f}% agree")
    if res.frames:
        print(f"frames:     {res.frame_ok}/{res.frames} agree (entries giving a frame)")
    print(
        f"speed:      {res.mb_per_s:.1f} MB/s corpus files "
        f"(wall {res.wall_mb_per_s:.1f}; best of {max(1, args.reps)})"
    )
    reps = max(1, min(args.reps, 3))
    with tempfile.TemporaryDirectory(prefix="report-bench-") as tmp:
        for name, data in (("dense", dense_log(entries, size)), ("clean", clean_log(size))):
            path = Path(tmp) / f"{name}.log"
            path.write_bytes(data)
            del data
            mbs, wall, nbugs, nevents = speed(path, reps)
            mb = path.stat().st_size / 1e6
            print(
                f"{name + ':':<11} {mbs:.1f} MB/s on a {mb:.1f} MB log (wall {wall:.1f}; "
                f"{nbugs} distinct bugs, {nevents} distinct events; best of {reps})"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
