"""`ktest`: the command line. The only layer that prints or exits.

Exit statuses: 0 success; 1 a check or test failed; 2 bad input or a
failed build/launch (one line on stderr says why); for `ktest exec`, the
command's own status, or 124 when the guest hung / the command timed out,
or 125 when the guest kernel crashed; 130 on Ctrl-C, 143 on SIGTERM.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

EXIT_FAIL, EXIT_ERROR, EXIT_HANG, EXIT_CRASH = 1, 2, 124, 125


class Progress:
    """One updating status line on a terminal; sparse lines otherwise."""

    def __init__(self, stream: Any = sys.stderr) -> None:
        self.stream = stream
        self.tty = stream.isatty()
        self._last = 0.0
        self._last_head = ""
        self._open = False

    def __call__(self, msg: str) -> None:
        if self.tty:
            self.stream.write("\r\033[K" + msg[:200])
            self._open = True
        else:
            head = msg.split(":")[0]
            now = time.monotonic()
            if head != self._last_head or now - self._last >= 30:
                self.stream.write(msg + "\n")
                self._last, self._last_head = now, head
        self.stream.flush()

    def done(self) -> None:
        if self._open:
            self.stream.write("\r\033[K")
            self.stream.flush()
            self._open = False


def _die(msg: str, code: int = EXIT_ERROR) -> NoReturn:
    print(f"ktest: error: {msg}", file=sys.stderr)
    raise SystemExit(code)


def _kernel_request(args: argparse.Namespace) -> Any:
    from .build.kernel import KernelRequest

    src = getattr(args, "kernel_src", None)
    return KernelRequest(
        src=Path(src) if src else None,
        variant=getattr(args, "variant", "debug"),
        extra_fragments=tuple(Path(f) for f in getattr(args, "config", None) or ()),
    )


# ---------------------------------------------------------------- doctor
def cmd_doctor(args: argparse.Namespace) -> int:
    from . import doctor

    statuses = [doctor.run_check(c) for c in doctor.CHECKS]
    missing = [s for s in statuses if not s.found]
    if args.install and missing:
        pkgs = sorted({s.check.package for s in missing if s.check.package})
        print(f"installing: {' '.join(pkgs)}")
        try:
            doctor.install(pkgs)
        except PermissionError as e:
            _die(str(e))
        statuses = [doctor.run_check(c) for c in doctor.CHECKS]
        missing = [s for s in statuses if not s.found]
    _, accel_text = doctor.accelerator_line(refresh=args.refresh_probe)
    rows = [(s.check.name, "found" if s.found else "MISSING", s.detail) for s in statuses]
    rows.append(("accelerator", "found", accel_text))
    rows.append(("cache", "found", doctor.cache_line()))
    if args.json:
        print(json.dumps([{"name": n, "status": st, "detail": d} for n, st, d in rows], indent=2))
    else:
        width = max(len(n) for n, _, _ in rows)
        for name, st, detail in rows:
            print(f"{name:<{width}}  {st:<7}  {detail}")
    if missing:
        pkgs = sorted({s.check.package for s in missing if s.check.package})
        print(f"\nmissing: {', '.join(s.check.name for s in missing)}; "
              f"`ktest doctor --install` (as root) installs: {' '.join(pkgs)}", file=sys.stderr)
        return EXIT_FAIL
    return 0


# ---------------------------------------------------------------- build
def cmd_build(args: argparse.Namespace) -> int:
    from .build import image as image_mod
    from .build import kernel as kernel_mod
    from .build import module as module_mod

    progress = Progress()
    t = time.monotonic()
    try:
        if args.what == "kernel":
            k = kernel_mod.build_kernel(_kernel_request(args), progress)
            progress.done()
            print(f"kernel {k.release} {k.key}: {k.bzimage} ({time.monotonic() - t:.1f}s)")
            print(f"  config: {k.config}\n  build tree: {k.build_dir}")
        elif args.what == "image":
            im = image_mod.build_image(progress)
            progress.done()
            print(f"image {im.key}: {im.cpio} ({time.monotonic() - t:.1f}s)")
        else:
            src = module_mod.check_src(Path(args.src) if args.src
                                       else module_mod.DEFAULT_MODULE_DIR)
            k = kernel_mod.build_kernel(_kernel_request(args), progress)
            m = module_mod.build_module(src, k, progress)
            progress.done()
            for ko in m.kos:
                print(f"module {ko.name} {m.key}: {ko} ({time.monotonic() - t:.1f}s)")
    except kernel_mod.BuildError as e:
        _die_build(e, progress)
    return 0


def _die_build(e: Any, progress: Progress) -> NoReturn:
    """A failed build: its detail lines (compiler errors) and log, then one
    line saying what failed."""
    progress.done()
    for line in getattr(e, "details", []):
        print(f"  {line}", file=sys.stderr)
    if getattr(e, "log", None):
        print(f"  log: {e.log}", file=sys.stderr)
    _die(str(e))


# ---------------------------------------------------------------- machines
def _artifacts(args: argparse.Namespace, progress: Progress) -> Any:
    from . import session
    from .build.common import BuildError

    try:
        arts = session.artifacts(_kernel_request(args), progress)
    except BuildError as e:
        _die_build(e, progress)
    progress.done()
    return arts


def _profile(args: argparse.Namespace) -> Any:
    from .profiles import ProfileError, load_profile

    try:
        return load_profile(args.machine)
    except ProfileError as e:
        _die(str(e))


def _dry_run(args: argparse.Namespace) -> int:
    from .profiles import Resources, qemu_argv

    prof = _profile(args)
    fds = {n.id: 3 + i for i, n in enumerate(prof.nics)}
    res = Resources(
        kernel=Path("KERNEL/bzImage"), initrd=Path("INITRD.cpio"),
        qmp_socket=Path("RUN/qmp.sock"), console_socket=Path("RUN/console.sock"),
        ssh_port=10022, nic_fds=fds, accel="tcg" if prof.accel == "auto" else prof.accel,
    )
    print(shlex.join(qemu_argv(prof, res)))
    return 0


def _launch(args: argparse.Namespace, progress: Progress) -> Any:
    from . import session
    from .machine import MachineError

    prof = _profile(args)
    arts = _artifacts(args, progress)
    m = session.make_machine(prof, arts, accel=args.accel)
    progress(f"booting {prof.name} (console: {m.run_dir / 'console.log'})")
    try:
        m.launch()
    except MachineError as e:
        progress.done()
        print(e.details(), file=sys.stderr)
        _die(str(e))
    progress.done()
    return m


def cmd_boot(args: argparse.Namespace) -> int:
    from . import session

    if args.dry_run:
        return _dry_run(args)
    m = _launch(args, Progress())
    try:
        session.write_guest_info(m)
        bt = m.boot_times
        print(f"guest {m.profile.name} is up ({bt.ready:.1f}s to SSH); run directory {m.run_dir}")
        print("reach it with: ktest ssh        (or: ktest ssh -- CMD)")
        print("Ctrl-C stops it.", flush=True)
        while True:
            time.sleep(0.5)
            if m.crashed or not m.alive():
                time.sleep(1)
                print(m.console_tail(30), file=sys.stderr)
                _die("guest kernel crashed" if m.crashed else "QEMU exited", EXIT_CRASH)
    finally:
        how = m.shutdown()
        print(f"guest stopped ({how})", file=sys.stderr)


def cmd_ssh(args: argparse.Namespace) -> int:
    from . import session
    from .guest import CmdTimeout, Guest, SSHUnavailable

    try:
        run_dir, info = session.find_running_guest(Path(args.run) if args.run else None)
    except LookupError as e:
        _die(str(e))
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        ssh_argv = ["ssh", "-i", info["key"], "-p", str(info["ssh_port"]),
                    "-o", f"UserKnownHostsFile={run_dir / 'known_hosts'}",
                    "-o", "StrictHostKeyChecking=yes", "-o", "IdentitiesOnly=yes",
                    "root@127.0.0.1"]
        os.execvp("ssh", ssh_argv)
    g = Guest("127.0.0.1", int(info["ssh_port"]), Path(info["key"]), info["host_key"])
    try:
        res = g.cmd(shlex.join(command) if len(command) > 1 else command[0], check=False,
                    timeout=args.timeout)
    except SSHUnavailable as e:
        _die(str(e))
    except CmdTimeout as e:
        _die(str(e), EXIT_HANG)
    finally:
        g.close()
    sys.stdout.write(res.stdout)
    sys.stderr.write(res.stderr)
    return res.exit_status


def cmd_exec(args: argparse.Namespace) -> int:
    from . import session
    from .guest import CmdError, CmdTimeout, SSHUnavailable

    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        _die("nothing to run: ktest exec [options] -- CMD")
    progress = Progress()
    loads = []
    if args.load:
        arts = _artifacts(args, progress)
        try:
            loads = [session.resolve_module(spec, arts, progress)
                     for spec in args.load.split(",") if spec]
        except Exception as e:  # BuildError, missing file
            _die_build(e, progress)
    m = _launch(args, progress)
    try:
        g = m.ssh()
        for name, ko in loads:
            try:
                session.load_module(m, name, ko)
            except CmdError as e:
                _die(f"loading {name} failed: {e}")
        text = shlex.join(command) if len(command) > 1 else command[0]
        try:
            res = g.cmd(text, check=False, timeout=args.timeout)
        except (CmdTimeout, SSHUnavailable, OSError, EOFError) as e:
            time.sleep(2)
            if m.crashed:
                print(m.console_tail(40), file=sys.stderr)
                _die("guest kernel crashed while running the command", EXIT_CRASH)
            print(m.console_tail(20), file=sys.stderr)
            _die(f"guest hung or lost: {e}", EXIT_HANG)
        sys.stdout.write(res.stdout)
        sys.stderr.write(res.stderr)
        if m.crashed:
            print(m.console_tail(40), file=sys.stderr)
            _die("guest kernel crashed", EXIT_CRASH)
        return res.exit_status
    finally:
        m.shutdown()


def cmd_run(args: argparse.Namespace) -> int:
    from . import runner

    try:
        if args.machine or args.driver:
            plan = _adhoc_plan(args)
        else:
            plan = runner.load_plan(args.plan)
    except (runner.PlanError, ValueError) as e:
        _die(str(e))
    extra: list[str] = []
    if args.kernel_src:
        extra += ["--ktest-kernel-src", args.kernel_src]
    if args.variant != "debug":
        extra += ["--ktest-kernel-variant", args.variant]
    for frag in args.config or ():
        extra += ["--ktest-kernel-config", frag]
    if args.accel:
        extra += ["--ktest-accel", args.accel]
    if args.no_pcap:
        import dataclasses

        plan = dataclasses.replace(plan, pcap=False)
    out = Path(args.out) if args.out else runner.default_out()
    if args.dry_run:
        for pair in plan.pairs:
            print(" ".join(runner._pytest_argv(plan, pair, out, args.k, extra)))
        return 0
    # Build once up front, with progress, so every pair starts from the cache
    # and a failed build is one clear error, not one per pair.
    from . import session

    progress = Progress()
    arts = _artifacts(args, progress)
    try:
        for drv in sorted({p.driver for p in plan.pairs}):
            session.resolve_module(drv, arts, progress)
    except Exception as e:  # BuildError, missing file
        _die_build(e, progress)
    progress.done()
    print(f"ktest run: plan {plan.name} ({len(plan.pairs)} pairs), results in {out}")
    result = runner.run_plan(plan, out, k=args.k, extra=extra)
    print()
    print(runner.summary_table(result))
    state = "interrupted" if result.interrupted else "FAIL" if result.failed else "PASS"
    print(f"\nverdict: {state} ({result.seconds / 60:.1f} min); results: "
          f"{out / 'results.jsonl'}, {out / 'junit.xml'}")
    if result.interrupted:
        return 130
    return EXIT_FAIL if result.failed else 0


def _adhoc_plan(args: argparse.Namespace) -> Any:
    """--machine/--driver instead of a plan: those pairs, the default suites."""
    import tempfile

    import yaml

    from . import profiles, runner

    base = runner.load_plan(args.plan)
    machines = args.machine or [profiles.DEFAULT_PROFILE]
    pairs = []
    for m in machines:
        nic = profiles.load_profile(m).nics[0]
        for d in args.driver or [nic.driver]:
            pairs.append({"profile": m, "driver": d})
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as fh:
        yaml.safe_dump({"description": "command line", "suites": list(base.suites),
                        "pairs": pairs, "pcap": base.pcap}, fh)
    try:
        plan = runner.load_plan(fh.name)
    finally:
        os.unlink(fh.name)  # the plan keeps its text for the run directory
    import dataclasses

    return dataclasses.replace(plan, name="command-line")


def cmd_smoke(args: argparse.Namespace) -> int:
    from .smoke import run_smoke

    if args.dry_run:
        return _dry_run(args)
    t0 = time.monotonic()
    m = _launch(args, Progress())
    try:
        bt = m.boot_times
        print(f"booted {m.profile.name} in {bt.ready:.1f}s (run directory {m.run_dir})")
        result = run_smoke(m)
        if m.crashed:
            print(m.console_tail(40), file=sys.stderr)
    finally:
        how = m.shutdown()
    width = max(len(s.name) for s in result.steps)
    print(f"\nsmoke check: {result.profile} / {result.driver}")
    for s in result.steps:
        print(f"  {'PASS' if s.passed else 'FAIL'}  {s.name:<{width}}  {s.detail}")
    for r in result.reports:
        print(f"\n--- {r.title} ---\n{r.text}")
    verdict = "PASS" if result.passed and how != "crashed" else "FAIL"
    print(f"\nverdict: {verdict} ({time.monotonic() - t0:.0f}s, guest stopped: {how}; "
          f"logs: {m.run_dir})")
    return 0 if verdict == "PASS" else EXIT_FAIL


def cmd_parse(args: argparse.Namespace) -> int:
    from .report.cli import run_parse

    return run_parse(args.logs, args.json, fail_on=args.fail_on)


# ---------------------------------------------------------------- parser
def _add_kernel_opts(p: argparse.ArgumentParser, src_name: str = "--kernel-src") -> None:
    p.add_argument(src_name, dest="kernel_src", metavar="DIR",
                   help="build this kernel tree instead of Debian's linux-source-6.1")
    p.add_argument("--variant", default="debug", choices=["debug", "fast"],
                   help="kernel config variant (fast = no KASAN)")
    p.add_argument("--config", action="append", metavar="FRAG",
                   help="extra kernel config fragment (repeatable)")


def _add_machine_opts(p: argparse.ArgumentParser) -> None:
    from .profiles import DEFAULT_PROFILE

    p.add_argument("--machine", "-m", default=DEFAULT_PROFILE, metavar="PROFILE",
                   help=f"machine profile name or YAML path (default {DEFAULT_PROFILE})")
    p.add_argument("--accel", choices=["auto", "tcg", "kvm"], default=None,
                   help="override the profile's accelerator")
    p.add_argument("--dry-run", action="store_true", help="print the QEMU command line only")
    _add_kernel_opts(p)


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="ktest", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--version", action="version", version="ktest 0.1.0")
    sub = ap.add_subparsers(dest="cmd", required=True)

    p = sub.add_parser("doctor", help="check host prerequisites")
    p.add_argument("--install", action="store_true", help="apt-get install what is missing")
    p.add_argument("--refresh-probe", action="store_true", help="re-run the KVM probe boot")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_doctor)

    p = sub.add_parser("build", help="build kernel, image or module (cached)")
    bsub = p.add_subparsers(dest="what", required=True)
    b = bsub.add_parser("kernel", help="the debug guest kernel")
    _add_kernel_opts(b, "--src")
    b.set_defaults(func=cmd_build)
    b = bsub.add_parser("image", help="the guest root filesystem (initramfs)")
    b.set_defaults(func=cmd_build)
    b = bsub.add_parser("module", help="an out-of-tree module (default drivers/ktest_nic)")
    b.add_argument("--src", metavar="DIR", help="module source directory")
    _add_kernel_opts(b)
    b.set_defaults(func=cmd_build)

    p = sub.add_parser("boot", help="boot a guest and keep it up until Ctrl-C")
    _add_machine_opts(p)
    p.set_defaults(func=cmd_boot)

    p = sub.add_parser("ssh", help="a shell (or -- CMD) in the running guest")
    p.add_argument("--run", metavar="DIR", help="run directory of the guest")
    p.add_argument("--timeout", type=float, default=600.0)
    p.add_argument("command", nargs=argparse.REMAINDER)
    p.set_defaults(func=cmd_ssh)

    p = sub.add_parser("exec", help="boot, [load a module,] run CMD, shut down")
    _add_machine_opts(p)
    p.add_argument("--load", metavar="MODULE",
                   help="ktest_nic, an in-tree module name, a .ko, or a module source dir; "
                        "several separated by commas load in that order")
    p.add_argument("--timeout", type=float, default=600.0, help="seconds CMD may take")
    p.add_argument("command", nargs=argparse.REMAINDER)
    p.set_defaults(func=cmd_exec)

    p = sub.add_parser("run", help="run a plan: the NIC suite on (profile, driver) pairs")
    p.add_argument("--plan", default="default", metavar="PLAN",
                   help="plan name in qemu-configs/plans/ or a YAML path (default: default)")
    p.add_argument("-k", metavar="EXPR", help="only tests matching this pytest -k expression")
    p.add_argument("--out", metavar="DIR", help="run directory (default: a new one in the cache)")
    p.add_argument("--machine", "-m", action="append", metavar="PROFILE",
                   help="instead of the plan's pairs: this profile (repeatable)")
    p.add_argument("--driver", "-d", action="append", metavar="DRIVER",
                   help="instead of the plan's pairs: this driver (repeatable)")
    p.add_argument("--accel", choices=["auto", "tcg", "kvm"], default=None)
    p.add_argument("--no-pcap", action="store_true", help="do not save pcaps")
    p.add_argument("--dry-run", action="store_true", help="print the pytest command lines")
    _add_kernel_opts(p)
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("smoke", help="boot one machine, load its NIC driver, check the link")
    _add_machine_opts(p)
    p.set_defaults(func=cmd_smoke)

    p = sub.add_parser("parse", help="find kernel reports in console logs",
                       description="Exit 0: nothing counted by --fail-on; 1: found; "
                                   "2: bad input (unreadable file, unknown kind).")
    p.add_argument("--json", action="store_true", help="per log: its bugs and its events")
    p.add_argument("--fail-on", default="bug", metavar="KIND[,KIND]",
                   help="reports that make the exit status 1: 'bug' (any bug, the default) "
                        "and/or kinds such as KASAN or LINK_CHANGE (events too)")
    p.add_argument("logs", nargs="+", metavar="LOG")
    p.set_defaults(func=cmd_parse)
    return ap


def _on_sigterm(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    signal.signal(signal.SIGTERM, _on_sigterm)
    signal.signal(signal.SIGHUP, _on_sigterm)
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        return func(args)
    except KeyboardInterrupt:
        print("\nktest: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
