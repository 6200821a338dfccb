#!/usr/bin/env python3
"""Boot soak: how often a guest hangs at boot, and how long boots take.

Boots the default profile N times for each variant (a guest kernel and a
QEMU), interleaved so that every variant sees the same host, with a second
guest running beside them (a busy loop on one of its vCPUs, as when another
test runs). Prints per variant: boots, hangs (by known signature, or
"silent"), other failures, and the medians (and 90th percentiles) of QEMU
start -> "Run /init" and QEMU start -> SSH ready.

    .venv/bin/python bench/boot_soak.py --boots 50 --variant 6.12 --variant 6.1
    .venv/bin/python bench/boot_soak.py --boots 16 \\
        --variant 6.1-unpatched=src:/path/to/plain/linux-6.1 \\
        --variant 6.12-qemu7.2=qemu:$(python bench/boot_soak.py --fetch-qemu-7.2)

A variant is LABEL[=key:value,...] with keys kernel (6.12, 6.1), src (a
kernel tree, built like `ktest build kernel --src`), qemu (a binary) and
boots (its own count instead of --boots); a bare label that is a kernel
version means that version.
--fetch-qemu-7.2 unpacks Debian 12's own QEMU 7.2 package into the cache and
prints a wrapper script to pass as qemu: (for the QEMU 10 vs 7.2 figures).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import signal
import statistics
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from orchestrator.builds import cache  # noqa: E402
from orchestrator.builds.kernel import SOURCES, KernelRequest  # noqa: E402
from orchestrator.machine import profiles, session  # noqa: E402
from orchestrator.machine.vm import BootError, Machine  # noqa: E402


@dataclass
class Variant:
    label: str
    req: KernelRequest
    qemu: str | None = None
    want: int | None = None  # boots of its own (default: --boots)
    arts: Any = None
    init: list[float] = field(default_factory=list)
    ready: list[float] = field(default_factory=list)
    hangs: dict[str, int] = field(default_factory=dict)
    # boots that hung or crashed in a way ktest boots again past (TCG's lost
    # timer, a known QEMU crash): not a hang of the boot, but counted
    retried: dict[str, int] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)

    @property
    def boots(self) -> int:
        return len(self.ready) + sum(self.hangs.values()) + len(self.failures)


def parse_variant(text: str) -> Variant:
    label, _, rest = text.partition("=")
    opts = dict(kv.split(":", 1) for kv in rest.split(",") if kv) if rest else {}
    if not rest and label in SOURCES:
        opts = {"kernel": label}
    src = opts.get("src")
    req = KernelRequest(src=Path(src) if src else None, version=opts.get("kernel", "6.12"))
    return Variant(label, req, opts.get("qemu"),
                   int(opts["boots"]) if "boots" in opts else None)


def fetch_qemu_72() -> Path:
    """Debian 12's QEMU 7.2 unpacked into the cache; a wrapper that runs it
    with its own firmware directory."""
    root = cache.cache_root() / "qemu-7.2"
    wrapper = root / "qemu-system-x86_64"
    real = root / "root" / "usr" / "bin" / "qemu-system-x86_64"
    modules = root / "root" / "usr" / "lib" / "x86_64-linux-gnu" / "qemu"
    if not modules.exists():
        root.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory() as tmp:
            for pkg in ("qemu-system-x86/bookworm", "qemu-system-data/bookworm",
                        "qemu-system-common/bookworm"):
                subprocess.run(["apt-get", "download", pkg], cwd=tmp, check=True,
                               capture_output=True)
            for deb in Path(tmp).glob("*.deb"):
                subprocess.run(["dpkg", "-x", str(deb), str(root / "root")], check=True)
    data = root / "root" / "usr" / "share" / "qemu"
    # Debian builds TCG as a loadable module (in qemu-system-common): 7.2
    # must load its own, not the installed QEMU's
    wrapper.write_text(f'#!/bin/sh\nQEMU_MODULE_DIR={modules} exec {real} -L {data} '
                       f'-L /usr/share/seabios "$@"\n')
    wrapper.chmod(0o755)
    return wrapper


@contextlib.contextmanager
def neighbour(arts: Any, tmp: Path, mode: str) -> Any:
    """The second guest: idle, or with one vCPU in a busy loop."""
    if mode == "none":
        yield None
        return
    m = session.make_machine("e1000e", arts, run_dir=tmp / "neighbour")
    try:
        m.launch()
        if mode == "busy":
            m.ssh().cmd("nohup sh -c 'while :; do :; done' >/dev/null 2>&1 &", timeout=30)
        yield m
    finally:
        m.shutdown()


def boot_once(v: Variant, run_dir: Path) -> None:
    prof = profiles.load_profile(profiles.DEFAULT_PROFILE)
    m = Machine(prof, v.arts.kernel, v.arts.image, run_dir=run_dir, qemu=v.qemu)
    try:
        t = m.launch()
        v.init.append(t.run_init or float("nan"))
        v.ready.append(t.ready)
    except BootError as e:
        text = str(e)
        if "hangs during boot" in text:
            name = text.split("(", 1)[1].split(")", 1)[0] if "(" in text.split(":")[0] \
                else "silent"
            v.hangs[name] = v.hangs.get(name, 0) + 1
        else:
            v.failures.append(text.splitlines()[0][:200])
    finally:
        for why in m.boot_retries:
            name = "TCG lost timer" if "timer" in why else why[:60]
            v.retried[name] = v.retried.get(name, 0) + 1
        m.shutdown()


def stats(xs: list[float]) -> dict[str, float | None]:
    xs = sorted(x for x in xs if x == x)
    if not xs:
        return {"median": None, "p90": None}
    p90 = xs[min(len(xs) - 1, int(round(0.9 * (len(xs) - 1))))]
    return {"median": round(statistics.median(xs), 2), "p90": round(p90, 2)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--boots", type=int, default=50, help="boots per variant")
    ap.add_argument("--variant", action="append", default=[], metavar="SPEC")
    ap.add_argument("--neighbour", choices=("busy", "idle", "none"), default="busy")
    ap.add_argument("--keep", metavar="DIR", help="keep every boot's run directory here")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--fetch-qemu-7.2", dest="fetch72", action="store_true",
                    help="unpack Debian 12's QEMU 7.2 into the cache, print its wrapper")
    args = ap.parse_args()
    # paramiko's transport thread logs each refused SSH attempt while the
    # guest's sshd starts; the readiness wait retries them
    logging.getLogger("paramiko").setLevel(logging.CRITICAL)
    if args.fetch72:
        print(fetch_qemu_72())
        return 0
    variants = [parse_variant(s) for s in args.variant or ["6.12"]]
    for v in variants:
        print(f"building {v.label} ...", file=sys.stderr)
        v.arts = session.artifacts(v.req)
    # Ctrl-C or SIGTERM ends the soak early: the boots so far make the table
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    stopped = False
    with tempfile.TemporaryDirectory(prefix="ktest-soak-") as tmpd:
        tmp = Path(args.keep) if args.keep else Path(tmpd)
        with neighbour(variants[0].arts, tmp, args.neighbour):
            try:
                for i in range(max(v.want or args.boots for v in variants)):
                    for v in variants:
                        want = v.want or args.boots
                        if i >= want:
                            continue
                        good = len(v.ready)
                        boot_once(v, tmp / f"{v.label}-{i:03d}")
                        last = f"{v.ready[-1]:.1f}s" if len(v.ready) > good else "failed"
                        print(f"[{i + 1}/{want}] {v.label}: {last}; hangs "
                              f"{sum(v.hangs.values())}, booted again "
                              f"{sum(v.retried.values())}", file=sys.stderr, flush=True)
            except KeyboardInterrupt:
                stopped = True
    rows = []
    for v in variants:
        rows.append({
            "variant": v.label, "kernel": v.arts.kernel.release, "qemu": v.qemu or "default",
            "boots": v.boots, "hangs": sum(v.hangs.values()), "hangs_by_signature": v.hangs,
            "booted_again": v.retried,
            "other_failures": v.failures, "run_init_s": stats(v.init),
            "ssh_ready_s": stats(v.ready),
        })
    if args.json:
        print(json.dumps({"neighbour": args.neighbour, "stopped_early": stopped,
                          "variants": rows}, indent=2))
        return 0
    print(f"boot soak: {args.boots} boots per variant unless it says"
          f"{' (stopped early: the boots done)' if stopped else ''}, neighbour guest: "
          f"{args.neighbour}, "
          f"host: {os.cpu_count()} CPUs")
    print(f"{'variant':<18} {'kernel':<18} {'boots':>5} {'hangs':>5} {'other':>5} "
          f"{'/init med':>9} {'p90':>6} {'SSH med':>8} {'p90':>6}")
    for r in rows:
        i, s = r["run_init_s"], r["ssh_ready_s"]
        print(f"{r['variant']:<18} {r['kernel']:<18} {r['boots']:>5} {r['hangs']:>5} "
              f"{len(r['other_failures']):>5} {i['median'] or '-':>9} {i['p90'] or '-':>6} "
              f"{s['median'] or '-':>8} {s['p90'] or '-':>6}")
        for name, n in r["hangs_by_signature"].items():
            print(f"    hang: {name} x{n}")
        for name, n in r["booted_again"].items():
            print(f"    booted again past: {name} x{n}")
        for f in r["other_failures"][:5]:
            print(f"    failure: {f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
