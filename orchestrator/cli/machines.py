"""`ktest boot`, `ktest ssh`, `ktest exec` and `ktest smoke`: one guest."""

from __future__ import annotations

import argparse
import os
import shlex
import sys
import time
from pathlib import Path
from typing import Any

from orchestrator.cli.common import (
    EXIT_CRASH,
    EXIT_FAIL,
    EXIT_HANG,
    Progress,
    artifacts,
    die,
    die_build,
    kernel_request,
)


def profile_of(args: argparse.Namespace) -> Any:
    from orchestrator.machine.profiles import ProfileError, load_profile

    try:
        return load_profile(args.machine)
    except ProfileError as e:
        die(str(e))


def dry_run(args: argparse.Namespace) -> int:
    """The QEMU command line a launch would use, without building or booting:
    the kernel and initramfs paths the cache has (or will have) for these
    options, and the accelerator the probe chose. The NIC socket descriptors
    and the SSH port are assigned at launch."""
    from orchestrator.builds import image as image_mod
    from orchestrator.builds import kernel as kernel_mod
    from orchestrator.builds import tools as tools_mod
    from orchestrator.builds.common import BuildError
    from orchestrator.machine import accel as accel_mod
    from orchestrator.machine import qemu
    from orchestrator.machine.profiles import Resources, qemu_argv
    from orchestrator.machine.vm import default_runs_dir, initrd_path

    prof = profile_of(args)
    try:
        entry = kernel_mod.planned_entry(kernel_request(args))
    except BuildError as e:
        die(str(e))
    built = kernel_mod.Kernel.load(entry)
    kernel = accel_mod.boot_image(built) if built else entry / "bzImage"
    wanted = args.accel or prof.accel
    if wanted == "auto":
        accel = accel_mod.probe(built.bzimage if built else None).accel
    else:
        accel = wanted
    run_dir = default_runs_dir() / "RUN"
    res = Resources(
        kernel=kernel, initrd=initrd_path(image_mod.image_key(), entry.name,
                                          (tools_mod.tools_key(),)),
        qmp_socket=run_dir / "qmp.sock", console_socket=run_dir / "console.sock",
        ssh_port=10022, nic_fds={n.id: 3 + i for i, n in enumerate(prof.nics)}, accel=accel,
    )
    print(shlex.join(qemu_argv(prof, res, qemu.binary())))
    notes = [] if built else ["the kernel is not built yet (ktest build kernel)"]
    notes.append("RUN, the SSH port and the NIC fds are chosen at launch")
    print(f"# {'; '.join(notes)}", file=sys.stderr)
    return 0


def launch(args: argparse.Namespace, progress: Progress) -> Any:
    from orchestrator.machine import session
    from orchestrator.machine.vm import MachineError

    prof = profile_of(args)
    arts = artifacts(args, progress)
    m = session.make_machine(prof, arts, accel=args.accel, snapshots=not args.cold)
    progress(f"booting {prof.name} (console: {m.run_dir / 'console.log'})")
    try:
        m.launch()
    except MachineError as e:
        progress.done()
        print(e.details(), file=sys.stderr)
        die(str(e))
    progress.done()
    return m


def came_up(m: Any) -> str:
    return (f"restored from snapshot {m.restored_from}" if m.restored_from
            else "cold boot")


CRASH_GRACE = 15.0  # seconds a crashing guest has to print its panic and exit


def cmd_boot(args: argparse.Namespace) -> int:
    from orchestrator.machine import session

    if args.dry_run:
        return dry_run(args)
    m = launch(args, Progress())
    try:
        session.write_guest_info(m)
        bt = m.boot_times
        print(f"guest {m.profile.name} is up ({came_up(m)}, {bt.ready:.1f}s to SSH); "
              f"run directory {m.run_dir}")
        print("reach it with: ktest ssh        (or: ktest ssh -- CMD)")
        print("Ctrl-C stops it.", flush=True)
        while True:
            time.sleep(0.5)
            if m.crashed or not m.alive():
                m.console.wait_closed(30)  # the rest of the panic output
                print(m.console_tail(30), file=sys.stderr)
                die("guest kernel crashed" if m.crashed else "QEMU exited", EXIT_CRASH)
    finally:
        how = m.shutdown()
        print(f"guest stopped ({how})", file=sys.stderr)


def cmd_ssh(args: argparse.Namespace) -> int:
    from orchestrator.machine import session
    from orchestrator.machine.guest import CmdTimeout, Guest, SSHUnavailable

    try:
        run_dir, info = session.find_running_guest(Path(args.run) if args.run else None)
    except LookupError as e:
        die(str(e))
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
        die(str(e))
    except CmdTimeout as e:
        die(str(e), EXIT_HANG)
    finally:
        g.close()
    sys.stdout.write(res.stdout)
    sys.stderr.write(res.stderr)
    return res.exit_status


def cmd_exec(args: argparse.Namespace) -> int:
    from orchestrator.machine.console import PANIC_RE, ConsoleClosed, ConsoleTimeout
    from orchestrator.machine.guest import CmdError, CmdTimeout, SSHUnavailable
    from orchestrator.scenario import drivers

    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        die("nothing to run: ktest exec [options] -- CMD")
    if args.dry_run:
        return dry_run(args)
    progress = Progress()
    loads = []
    if args.load:
        arts = artifacts(args, progress)
        try:
            loads = [drivers.resolve_driver(spec, arts, progress)
                     for spec in args.load.split(",") if spec]
        except Exception as e:  # BuildError, missing file
            die_build(e, progress)
    m = launch(args, progress)
    try:
        g = m.ssh()
        for drv in loads:
            try:
                drivers.load_module(g, drv)
            except CmdError as e:
                die(f"loading {drv.name} failed: {e}")
        text = shlex.join(command) if len(command) > 1 else command[0]
        lost: Exception | None = None
        try:
            res = g.cmd(text, check=False, timeout=args.timeout)
            if res.exit_status == -1:
                # the channel ended before the command: a crash the console
                # may not have shown yet, or a lost guest; never a status
                lost = EOFError("the SSH channel ended before the command did")
        except (CmdTimeout, SSHUnavailable, OSError, EOFError) as err:
            lost = err
        if lost is not None:
            # A crash ends in a panic line and QEMU's exit; a hang in neither.
            try:
                m.console.wait_for(PANIC_RE, timeout=CRASH_GRACE)
            except (ConsoleClosed, ConsoleTimeout):
                pass
            if m.crashed or not m.alive():
                m.console.wait_closed(CRASH_GRACE)
                print(m.console_tail(40), file=sys.stderr)
                die("guest kernel crashed while running the command", EXIT_CRASH)
            print(m.console_tail(20), file=sys.stderr)
            die(f"guest hung or lost: {lost}", EXIT_HANG)
        sys.stdout.write(res.stdout)
        sys.stderr.write(res.stderr)
        if m.crashed:
            m.console.wait_closed(CRASH_GRACE)
            print(m.console_tail(40), file=sys.stderr)
            die("guest kernel crashed", EXIT_CRASH)
        return res.exit_status
    finally:
        m.shutdown()


def cmd_smoke(args: argparse.Namespace) -> int:
    from orchestrator.scenario.smoke import judge_power_off, run_smoke

    if args.dry_run:
        return dry_run(args)
    t0 = time.monotonic()
    m = launch(args, Progress())
    try:
        bt = m.boot_times
        print(f"{m.profile.name} up in {bt.ready:.1f}s, {came_up(m)} (run directory {m.run_dir})")
        result = run_smoke(m)
        if m.crashed:
            print(m.console_tail(40), file=sys.stderr)
    finally:
        how = m.shutdown()
    judge_power_off(result, m, how)
    width = max(len(s.name) for s in result.steps)
    print(f"\nsmoke check: {result.profile} / {result.driver}")
    for s in result.steps:
        print(f"  {'PASS' if s.passed else 'FAIL'}  {s.name:<{width}}  {s.detail}")
    for r in result.reports:
        print(f"\n--- {r.title} ---\n{r.text}")
    verdict = "PASS" if result.passed else "FAIL"
    print(f"\nverdict: {verdict} ({time.monotonic() - t0:.0f}s, guest stopped: {how}; "
          f"logs: {m.run_dir})")
    return 0 if verdict == "PASS" else EXIT_FAIL


