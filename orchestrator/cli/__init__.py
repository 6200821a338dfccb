"""ktest tests Linux NIC drivers in QEMU guests and turns what the guest
kernel says into verdicts.

Exit statuses: 0 success; 1 a check or test failed (or `ktest parse` found a
bug); 2 bad input or a failed build or boot (one line on stderr says why);
for `ktest exec`, the command's own status, or 124 when the guest hung or
the command timed out, 125 when the guest kernel crashed; 130 on Ctrl-C,
143 on SIGTERM.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from collections.abc import Callable

import orchestrator
from orchestrator.cli.common import EXIT_ERROR


def cmd_parse(args: argparse.Namespace) -> int:
    from orchestrator.report.cli import run_parse

    return run_parse(args.logs, args.json, fail_on=args.fail_on)


def _add_kernel_opts(p: argparse.ArgumentParser, src_name: str = "--kernel-src",
                     version_names: tuple[str, ...] = ("--kernel",)) -> None:
    from orchestrator.builds.kernel import DEFAULT_VERSION, SOURCES

    p.add_argument(*version_names, dest="kernel_version", choices=list(SOURCES),
                   default=DEFAULT_VERSION, metavar="VERSION",
                   help=f"guest kernel from Debian's linux-source-VERSION (default "
                   f"{DEFAULT_VERSION}; " + "; ".join(f"{v}: {s.note}"
                                                     for v, s in SOURCES.items()) + ")")
    p.add_argument(src_name, dest="kernel_src", metavar="DIR",
                   help="build your own kernel tree instead (incremental; the config "
                        "fragments are applied to it)")
    p.add_argument("--variant", default="debug", choices=["debug", "fast"],
                   help="debug: every checker (default); fast: the same without KASAN")
    p.add_argument("--config", action="append", metavar="FRAG",
                   help="an extra kernel config fragment (repeatable)")


def _add_qemu_opt(p: argparse.ArgumentParser) -> None:
    p.add_argument("--qemu", metavar="PATH",
                   help="the QEMU binary to use (default: $KTEST_QEMU or "
                        "qemu-system-x86_64; QEMU 7.2 or later)")


def _add_known_opt(p: argparse.ArgumentParser, what: str = "more known issues") -> None:
    p.add_argument("--known", action="append", metavar="FILE",
                   help=f"{what} (YAML, like qemu-configs/known-issues/ktest.yaml): failures "
                        "they explain are KNOWN (repeatable)")


def _add_machine_opts(p: argparse.ArgumentParser) -> None:
    from orchestrator.machine.profiles import DEFAULT_PROFILE, available_profiles

    p.add_argument("--machine", "-m", default=DEFAULT_PROFILE, metavar="PROFILE",
                   help=f"machine profile: {', '.join(available_profiles())}, or a YAML file "
                        f"(default {DEFAULT_PROFILE})")
    p.add_argument("--accel", choices=["auto", "tcg", "kvm"], default=None,
                   help="accelerator (default: the profile's; auto = KVM if a probe boot "
                        "works)")
    p.add_argument("--dry-run", action="store_true",
                   help="print the QEMU command line and stop (nothing is built or booted)")
    p.add_argument("--cold", action="store_true",
                   help="boot the kernel even when a snapshot of this exact guest (same QEMU "
                        "command line, QEMU, kernel and image) is cached; by default it is "
                        "restored in seconds, and a cold boot saves one")
    _add_qemu_opt(p)
    _add_kernel_opts(p)


def _add_stress_opts(p: argparse.ArgumentParser) -> None:
    p.add_argument("--cycles", type=int, metavar="N",
                   help="load/unload, bind/unbind and link flap cycles of the suite "
                        "(KTEST_CYCLES; default 5)")
    p.add_argument("--traffic", type=float, metavar="FACTOR",
                   help="a factor on the background traffic rate of the lifecycle, fault "
                        "and XDP tests (KTEST_TRAFFIC; default 1)")
    p.add_argument("--env", action="append", metavar="KTEST_NAME=VALUE",
                   help="a knob of the suite for the test processes (repeatable)")


def _add_tree_opts(p: argparse.ArgumentParser, what: str) -> None:
    g = p.add_mutually_exclusive_group()
    g.add_argument("--tree", metavar="DIR", help=f"a kernel tree in git: {what}")
    g.add_argument("--driver-tree", metavar="DIR",
                   help=f"an out-of-tree driver's source directory in git (e.g. "
                        f"drivers/ktest_nic): {what}")


def _add_job_opts(p: argparse.ArgumentParser) -> None:
    """The tests, the driver parameters, the suite's knobs, the output and the
    kernel/QEMU choices of bisect and validate."""
    from orchestrator.builds.kernel import SOURCES

    p.add_argument("-k", metavar="EXPR", help="only the tests matching this pytest -k "
                                              "expression")
    p.add_argument("--test", action="append", metavar="TEST_ID",
                   help="just this test (its id as in results.jsonl; repeatable)")
    p.add_argument("--driver-params", metavar="PARAMS",
                   help="module parameters for every load of the driver under test")
    _add_stress_opts(p)
    p.add_argument("--out", metavar="DIR", help="output directory (default: a new one in "
                                                "the cache)")
    p.add_argument("--kernel", dest="kernel_version", choices=list(SOURCES), metavar="VERSION",
                   help="with a driver tree: Debian's linux-source-VERSION (default: the "
                        "default one)")
    p.add_argument("--variant", default="debug", choices=["debug", "fast"],
                   help="debug: every checker (default); fast: the same without KASAN")
    p.add_argument("--config", action="append", metavar="FRAG",
                   help="an extra kernel config fragment (repeatable)")
    p.add_argument("--accel", choices=["auto", "tcg", "kvm"], default=None)
    _add_qemu_opt(p)
    p.set_defaults(kernel_src=None)


def build_parser() -> argparse.ArgumentParser:
    from orchestrator.builds.kernel import SOURCES
    from orchestrator.cli import host, machines, runs, triage

    ap = argparse.ArgumentParser(prog="ktest", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--version", action="version", version=f"ktest {orchestrator.__version__}")
    sub = ap.add_subparsers(dest="cmd", required=True, metavar="COMMAND")

    p = sub.add_parser("doctor", help="is this host ready? (packages, QEMU, accelerator)")
    p.add_argument("--install", action="store_true",
                   help="install what is missing (as root; QEMU 10 from bookworm-backports "
                        "on Debian 12)")
    p.add_argument("--refresh-probe", action="store_true",
                   help="boot the KVM probe again instead of using its cached answer")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    _add_qemu_opt(p)
    p.set_defaults(func=host.cmd_doctor)

    p = sub.add_parser("build", help="build the guest kernel, the image or a module (cached)")
    bsub = p.add_subparsers(dest="what", required=True, metavar="WHAT")
    b = bsub.add_parser("kernel", help="the debug guest kernel")
    _add_kernel_opts(b, "--src", ("--version", "--kernel"))
    b.set_defaults(func=host.cmd_build)
    b = bsub.add_parser("image", help="the guest root filesystem (initramfs with SSH)")
    b.set_defaults(func=host.cmd_build)
    b = bsub.add_parser("module", help="an out-of-tree module against the guest kernel "
                                       "(default drivers/ktest_nic; W=1, warnings fail)")
    b.add_argument("--src", metavar="DIR", help="the module's source directory")
    _add_kernel_opts(b)
    b.set_defaults(func=host.cmd_build)

    p = sub.add_parser("boot", help="boot a guest and keep it up until Ctrl-C")
    _add_machine_opts(p)
    p.set_defaults(func=machines.cmd_boot)

    p = sub.add_parser("ssh", help="a shell, or one command (-- CMD), in the running guest")
    p.add_argument("--run", metavar="DIR", help="the guest's run directory (default: the "
                                               "newest running guest)")
    p.add_argument("--timeout", type=float, default=600.0, help="seconds CMD may take")
    p.add_argument("command", nargs=argparse.REMAINDER)
    p.set_defaults(func=machines.cmd_ssh)

    p = sub.add_parser("exec", help="boot, load drivers, run CMD, shut down; exit with CMD's "
                                    "status (124 hang, 125 crash)")
    _add_machine_opts(p)
    p.add_argument("--load", metavar="MODULE",
                   help="ktest_nic, an in-tree module name, a .ko, or a module source "
                        "directory; several separated by commas load in that order")
    p.add_argument("--timeout", type=float, default=600.0, help="seconds CMD may take")
    p.add_argument("command", nargs=argparse.REMAINDER)
    p.set_defaults(func=machines.cmd_exec)

    p = sub.add_parser("run", help="run a plan: the NIC suites on (machine, driver) pairs")
    p.add_argument("--plan", default="default", metavar="PLAN",
                   help="a plan in qemu-configs/plans/ or a YAML file (default: default)")
    p.add_argument("-k", metavar="EXPR", help="only the tests matching this pytest -k "
                                              "expression")
    p.add_argument("--out", metavar="DIR",
                   help="run directory (default: a new one under ~/.cache/ktest/runs)")
    p.add_argument("--machine", "-m", action="append", metavar="PROFILE",
                   help="instead of the plan's pairs: this profile (repeatable)")
    p.add_argument("--driver", "-d", action="append", metavar="DRIVER",
                   help="instead of the plan's pairs: this driver (repeatable): ktest_nic, "
                        "e1000e, virtio_net, igb, igbvf, a module source directory or a .ko")
    p.add_argument("--test", action="append", metavar="TEST_ID",
                   help="run just this test (path::name[params], as in results.jsonl; "
                        "repeatable)")
    p.add_argument("--driver-params", metavar="PARAMS",
                   help="module parameters for every load of the drivers under test "
                        "(e.g. 'bugs=tx_unmap_missing' for ktest_nic's bug injections)")
    p.add_argument("--shard", metavar="K/N",
                   help="run shard K of N of the plan (the same split on every machine; "
                        "`ktest merge` joins the shards' run directories)")
    p.add_argument("-j", "--jobs", type=int, metavar="N",
                   help="pairs to run at once (default: min(cores/2, memory GiB/3, pairs))")
    p.add_argument("--reruns", type=int, default=0, metavar="N",
                   help="run a failed test again, up to N times; one that then passes is "
                        "FLAKY (never a plain pass)")
    _add_known_opt(p)
    p.add_argument("--baseline", metavar="RUN_DIR",
                   help="an earlier run to compare with (summary and report.html)")
    p.add_argument("--list", action="store_true",
                   help="list the selected tests of each pair and stop (no guest)")
    p.add_argument("--accel", choices=["auto", "tcg", "kvm"], default=None)
    p.add_argument("--no-pcap", action="store_true", help="do not save a pcap per test")
    p.add_argument("--fresh-guest", choices=["after-crash", "per-test"], default=None,
                   help="when a test gets a fresh guest besides the start of each pair: "
                        "after a crash or a wedged DUT (default), or for every test")
    p.add_argument("--cold", action="store_true",
                   help="boot every guest cold: no snapshot is restored or saved (slower; "
                        "for a guest that must not come from a snapshot)")
    p.add_argument("--coverage", action="store_true",
                   help="build the driver under test for gcov; print and keep its line and "
                        "branch coverage (coverage.json, coverage-html/)")
    p.add_argument("--dry-run", action="store_true",
                   help="print the pytest command line of each pair and stop")
    _add_qemu_opt(p)
    _add_kernel_opts(p)
    p.set_defaults(func=runs.cmd_run)

    p = sub.add_parser("zoo", help="prove each bug class of ktest_nic's injections is caught "
                                   "with the right title")
    p.add_argument("--bug", action="append", metavar="NAME",
                   help="only this bug (repeatable; default: all of qemu-configs/zoo/)")
    p.add_argument("--machine", "-m", metavar="PROFILE",
                   help="the machine profile (default: the zoo file's, e1000e-viommu)")
    p.add_argument("--out", metavar="DIR", help="output directory (default: a new one in "
                                                "the cache)")
    p.add_argument("--accel", choices=["auto", "tcg", "kvm"], default=None)
    p.add_argument("--coverage", action="store_true",
                   help="build ktest_nic for gcov; print and keep its coverage over the "
                        "bugs' scenarios (coverage.json, coverage-html/)")
    _add_qemu_opt(p)
    _add_kernel_opts(p)
    p.set_defaults(func=runs.cmd_zoo)

    p = sub.add_parser("repro", help="run a failure again, exactly as it ran, until it shows "
                                     "again; the hit rate and the time to the first hit",
                       description="Exit 0: reproduced; 1: not within the budget; 2: bad "
                                   "input or a failed build; 130: interrupted.")
    p.add_argument("target", metavar="RUN_DIR|LOG",
                   help="a run directory, or a console log with a kernel report")
    p.add_argument("test", nargs="?", metavar="TEST",
                   help="the test: its id (with or without the pair), or its name as the "
                        "summary shows it (default: the run's one failure; for a log: the "
                        "test its ktest markers name)")
    p.add_argument("--machine", "-m", metavar="PROFILE",
                   help="the machine profile, for a log that does not say")
    p.add_argument("--driver", "-d", metavar="DRIVER",
                   help="the driver under test, for a log that does not say (ktest_nic, an "
                        "in-tree driver, a module source directory or a .ko)")
    p.add_argument("--match", metavar="REGEX",
                   help="look for a failure whose kernel report title or message matches "
                        "(default: the same report title, or the same failure message class)")
    p.add_argument("--tries", type=int, default=10, metavar="N",
                   help="run the test at most N times (default 10)")
    p.add_argument("--time", type=float, metavar="SECONDS",
                   help="start no try after this many seconds")
    p.add_argument("--keep-going", action="store_true",
                   help="use the whole budget (a hit rate), not only up to the first hit")
    _add_stress_opts(p)
    p.add_argument("--out", metavar="DIR", help="output directory: a run directory per try "
                                                "and repro.json (default: a new one in the "
                                                "cache)")
    p.add_argument("--kernel", dest="kernel_version", choices=list(SOURCES), metavar="VERSION",
                   help="instead of the run's kernel: Debian's linux-source-VERSION")
    p.add_argument("--kernel-src", metavar="DIR", help="instead of the run's kernel: this tree")
    p.add_argument("--variant", choices=["debug", "fast"], help="instead of the run's variant")
    p.add_argument("--config", action="append", metavar="FRAG",
                   help="instead of the run's config fragments: these (repeatable)")
    p.add_argument("--accel", choices=["auto", "tcg", "kvm"], default=None)
    _add_qemu_opt(p)
    p.set_defaults(func=triage.cmd_repro)

    p = sub.add_parser("bisect", help="the commit that brought a failure: git bisect with "
                                      "the test's verdict as the oracle",
                       description="Each commit between --good and --bad is built in a "
                                   "checkout of ktest's own (the user's work tree and HEAD "
                                   "are never touched) and judged by the test: the same "
                                   "failure as at the bad end = bad, a pass = good, "
                                   "anything else (a failed build or boot, another "
                                   "failure) = skip. Exit 0: found; 1: only skipped "
                                   "commits were left; 2: bad input, or an end is not what "
                                   "it should be; 130: interrupted.")
    p.add_argument("--good", required=True, metavar="REF", help="a commit without the failure")
    p.add_argument("--bad", required=True, metavar="REF", help="a commit with it")
    _add_tree_opts(p, "the git history to bisect")
    p.add_argument("--machine", "-m", metavar="PROFILE",
                   help="the machine profile (default: the default one)")
    p.add_argument("--driver", "-d", metavar="DRIVER",
                   help="with --tree: the driver under test (default: the NIC's in-tree "
                        "driver)")
    _add_job_opts(p)
    p.add_argument("--match", metavar="REGEX",
                   help="the failure to look for: a kernel report title or failure message "
                        "matching REGEX (default: the bad end's first failure)")
    p.add_argument("--tries", type=int, default=1, metavar="N",
                   help="run the test up to N times at each commit (a flaky failure): bad "
                        "at the first hit, good only if every try passes (default 1)")
    p.set_defaults(func=triage.cmd_bisect)

    p = sub.add_parser("validate", help="what a patch fixes and what it breaks: the same "
                                        "plan on its base and on the patch",
                       description="--base and --patch are two kernel trees or two module "
                                   "source directories, or with --tree/--driver-tree two "
                                   "refs of that git tree (checked out by ktest, never in "
                                   "your work tree). Exit 0: nothing introduced; 1: the "
                                   "patch introduces a failure (or does not build); 2: bad "
                                   "input, or the base does not build; 130: interrupted.")
    p.add_argument("--base", required=True, metavar="A", help="the tree (or ref) without the patch")
    p.add_argument("--patch", required=True, metavar="B", help="the tree (or ref) with it")
    _add_tree_opts(p, "--base and --patch are refs of this git tree")
    p.add_argument("--plan", metavar="PLAN",
                   help="a plan in qemu-configs/plans/ or a YAML file (default: -m and -d, "
                        "or the default profile; with a driver tree, the plan's pairs of "
                        "that driver)")
    p.add_argument("--machine", "-m", action="append", metavar="PROFILE",
                   help="instead of the plan's pairs: this profile (repeatable)")
    p.add_argument("--driver", "-d", action="append", metavar="DRIVER",
                   help="for kernel trees: the driver under test (repeatable; default: the "
                        "NIC's in-tree driver)")
    _add_job_opts(p)
    p.add_argument("--reruns", type=int, default=0, metavar="N",
                   help="run a failed test again, up to N times (FLAKY if it then passes)")
    p.set_defaults(func=triage.cmd_validate)

    p = sub.add_parser("compare", help="what changed between two runs: new failures, "
                                       "fixed, still failing, known, flaky (exit 1 if new)")
    p.add_argument("base", metavar="RUN_A", help="the baseline run directory")
    p.add_argument("run", metavar="RUN_B", help="the run to judge")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    _add_known_opt(p, "more known issues for both runs")
    p.set_defaults(func=runs.cmd_compare)

    p = sub.add_parser("coverage", help="the driver's line and branch coverage added up over "
                                        "runs made with --coverage (runs, zoos, shards)")
    p.add_argument("dirs", nargs="+", metavar="DIR", help="run or zoo directories")
    p.add_argument("--out", required=True, metavar="DIR",
                   help="where coverage.info, coverage.json and coverage-html/ go")
    p.set_defaults(func=runs.cmd_coverage)

    p = sub.add_parser("merge", help="join run directories (shards of one run) into one")
    p.add_argument("dirs", nargs="+", metavar="DIR", help="the runs to merge")
    p.add_argument("--out", required=True, metavar="DIR",
                   help="the merged run directory (new or empty)")
    p.set_defaults(func=runs.cmd_merge)

    p = sub.add_parser("report", help="write a run's report.html again")
    p.add_argument("run", metavar="RUN_DIR")
    p.add_argument("--baseline", metavar="RUN_DIR", help="a run to compare with")
    _add_known_opt(p)
    p.set_defaults(func=runs.cmd_report)

    p = sub.add_parser("export", help="a run in another format (KernelCI KCIDB)")
    p.add_argument("--kcidb", dest="run", required=True, metavar="RUN_DIR",
                   help="print the run as KCIDB v5 JSON (checkouts, builds, tests)")
    p.add_argument("--origin", default="ktest",
                   help="the KCIDB origin (CI system name; default ktest)")
    p.add_argument("-o", "--output", metavar="FILE", help="write to FILE instead of stdout")
    _add_known_opt(p)
    p.set_defaults(func=runs.cmd_export)

    p = sub.add_parser("smoke", help="boot, load the NIC's in-tree driver, check the link, "
                                     "judge the console")
    _add_machine_opts(p)
    p.set_defaults(func=machines.cmd_smoke)

    p = sub.add_parser("parse", help="the kernel reports in console logs",
                       description="Exit 0: nothing counted by --fail-on; 1: found; "
                                   "2: bad input (unreadable file, unknown kind).")
    p.add_argument("--json", action="store_true", help="per log: its bugs and its events")
    p.add_argument("--fail-on", default="bug", metavar="KIND[,KIND]",
                   help="reports that make the exit status 1: 'bug' (any bug, the default) "
                        "and/or kinds such as KASAN or LINK_CHANGE (events too)")
    p.add_argument("logs", nargs="+", metavar="LOG")
    p.set_defaults(func=cmd_parse)
    return ap


def _on_signal(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if getattr(args, "qemu", None):
        os.environ["KTEST_QEMU"] = args.qemu
    signal.signal(signal.SIGTERM, _on_signal)
    if signal.getsignal(signal.SIGHUP) != signal.SIG_IGN:  # `nohup ktest run` outlives its terminal
        signal.signal(signal.SIGHUP, _on_signal)
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        return func(args)
    except KeyboardInterrupt:
        print("\nktest: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # `ktest ... | head`: the reader is gone; say nothing more.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())
