"""The kernel's NIC selftests (tools/testing/selftests/drivers/net) in a
guest, against the NIC under test, the way NIPA runs them.

Layout: the DUT's interface keeps ktest's addresses (GUEST_IP4/6); a second
NIC of the same guest, wired to the DUT back to back through the host
(:class:`orchestrator.scenario.relay.Relay`), goes into the network
namespace ``ns-remote`` with the peer's addresses. ``net.config`` beside the
tests says so (``REMOTE_TYPE=netns``). Each upstream program runs through
``run_kselftest.sh -t COLLECTION:PROGRAM`` with a timeout fit for TCG; its
KTAP output becomes one result for the program and one per subtest
(:func:`parse_ktap`).
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from orchestrator.builds.selftests import GUEST_DIR

REMOTE_NS = "ns-remote"
DEFAULT_TIMEOUT = 900  # seconds per program; the runner's own default is 45

__all__ = ["KtapResult", "Layout", "ProgramResult", "install", "parse_ktap", "place_peer",
           "run_program"]


@dataclass(frozen=True)
class KtapResult:
    name: str
    outcome: str  # passed, failed, skipped, xfailed
    reason: str = ""  # the directive's text (SKIP/XFAIL/TIMEOUT reason) or diagnostics


@dataclass
class ProgramResult:
    test: str  # "collection:program"
    result: KtapResult | None  # None: the runner printed no result line
    subtests: list[KtapResult] = field(default_factory=list)
    output: str = ""


_RESULT = re.compile(r"^(not ok|ok) (\d+) ?(.*?)(?: # (\S+)\s*(.*))?$")
# net/forwarding/lib.sh prints one line per check: "TEST: what   [ OK ]"
_LIB_SH = re.compile(r"^TEST: (.*?)\s+\[\s*(OK|FAIL|SKIP|XFAIL)\s*\]$")


def _outcome(ok: bool, directive: str | None) -> str:
    d = (directive or "").upper()
    if d == "SKIP":
        return "skipped"
    if d == "XFAIL":
        return "xfailed"
    return "passed" if ok and d != "TIMEOUT" else "failed"


_DIRECTIVES = ("SKIP", "XFAIL", "TIMEOUT", "TODO")
# what run_kselftest.sh itself says around a program's output
_RUNNER_LINES = ("selftests:", "timeout set", "overriding timeout")


def _reason(ok: bool, directive: str | None, text: str, diag: list[str]) -> str:
    d = (directive or "").upper()
    if d in _DIRECTIVES:
        if not text.strip() and diag:  # the runner's bare "# SKIP": say why
            return f"{d} " + " | ".join(diag[-3:])
        return f"{d} {text}".strip()
    if ok:
        return ""
    comment = f"{directive or ''} {text}".strip()  # e.g. the runner's "exit=1"
    return ": ".join(x for x in (comment, _why(diag)) if x)


def _why(diag: list[str]) -> str:
    """The lines that say why a (sub)test failed: lib/py's failed checks,
    else the exception (a traceback's last lines), else the last lines."""
    checks = [d for d in diag if d.startswith(("Check failed", "Check| At"))]
    if checks:
        return " | ".join(checks[-4:])
    exc = [d.removeprefix("Exception|").strip() for d in diag if d.startswith("Exception|")]
    if exc:
        last_file = max((i for i, e in enumerate(exc) if e.startswith('File "')), default=-2)
        # past the last frame's file and code lines (and its ^^^ marks)
        tail = [e for e in exc[last_file + 2:] if e and not set(e) <= set("^~ ")]
        # where in the program itself (not its lib/py) it went wrong
        frames = [m for e in exc if (m := re.match(r'File "([^"]+)", line (\d+), in (\S+)', e))]
        own = next((m for m in frames if "/lib/py/" not in m.group(1)), None)
        where = f"{Path(own.group(1)).name}:{own.group(2)} in {own.group(3)}: " if own else ""
        return where + " | ".join(tail[:3] or exc[-3:])
    return " | ".join(diag[-4:])


def parse_ktap(test: str, text: str) -> ProgramResult:
    """One program's run_kselftest.sh output. The program's own KTAP comes
    indented one level ("# ok 1 ping.test_v4"); the runner's line at depth 0
    ("ok 1 selftests: drivers/net: ping.py") is the program's result."""
    res = ProgramResult(test, None, output=text)
    sub_diag: list[str] = []  # the program's own comments since its last result
    prog_diag: list[str] = []  # everything the program printed
    for raw in text.splitlines():
        line = raw.rstrip()
        depth = 0
        while line.startswith("# "):
            line = line[2:]
            depth += 1
        m = _RESULT.match(line)
        if m:
            ok = m.group(1) == "ok"
            name, directive, dtext = m.group(3), m.group(4), m.group(5) or ""
            if depth == 0:
                res.result = KtapResult(name, _outcome(ok, directive),
                                        _reason(ok, directive, dtext, prog_diag))
            elif depth == 1:
                res.subtests.append(KtapResult(name, _outcome(ok, directive),
                                               _reason(ok, directive, dtext, sub_diag)))
            sub_diag = []
            continue
        lib = _LIB_SH.match(line.strip())
        if lib and depth >= 1:
            outcome = {"OK": "passed", "FAIL": "failed", "SKIP": "skipped",
                       "XFAIL": "xfailed"}[lib.group(2)]
            res.subtests.append(KtapResult(lib.group(1).strip(), outcome,
                                           " | ".join(sub_diag[-8:]) if outcome != "passed"
                                           else ""))
            sub_diag = []
            continue
        text_line = line.strip()
        if not text_line or text_line.startswith(("TAP version", "KTAP version", "1..")):
            continue
        runner = depth == 1 and text_line.startswith(_RUNNER_LINES)
        if depth >= 1 and not runner:
            prog_diag.append(text_line)
        if depth >= 2 or (depth == 1 and not runner and _LIB_SH.match(text_line) is None):
            sub_diag.append(text_line)
    return res


class GuestLike(Protocol):
    def put_once(self, local: Path, remote: str) -> None: ...

    def cmd(self, command: str, *, check: bool = ..., timeout: float = ...) -> Any: ...


@dataclass(frozen=True)
class Layout:
    """Who is who: the DUT's interface and addresses, the peer NIC's MAC and
    the addresses it gets inside ns-remote."""

    dut_ifname: str
    peer_mac: str
    peer_modules: tuple[str, ...]  # the peer NIC's driver, after what it needs (no autoload)
    local4: str
    remote4: str
    local6: str
    remote6: str
    prefix4: int
    prefix6: int


def net_config(lay: Layout) -> str:
    return "\n".join([f"NETIF={lay.dut_ifname}", f"LOCAL_V4={lay.local4}",
                      f"REMOTE_V4={lay.remote4}", f"LOCAL_V6={lay.local6}",
                      f"REMOTE_V6={lay.remote6}", "REMOTE_TYPE=netns",
                      f"REMOTE_ARGS={REMOTE_NS}", ""])


def install(guest: GuestLike, tarball: Path) -> None:
    """Unpack the selftests under GUEST_DIR (again only if the tarball changed)."""
    remote = "/tmp/ktest-selftests.tar.gz"
    guest.put_once(tarball, remote)
    stamp = f"{GUEST_DIR}/.ktest-stamp"
    guest.cmd(f"cmp -s {remote} {stamp} || {{ rm -rf {GUEST_DIR}; mkdir -p {GUEST_DIR}; "
              f"tar -xzf {remote} -C {GUEST_DIR} --strip-components=1 && "
              f"cp {remote} {stamp}; }}", timeout=120)


def place_peer(guest: GuestLike, lay: Layout, timeout: int = 30) -> str:
    """The peer NIC (found by MAC, in ns-remote already or back in the root
    namespace after a driver reload) in ns-remote, up, with the remote
    addresses only; net.config written for every collection. Returns the
    peer's interface name. Raises RuntimeError when the peer never shows up."""
    ns, mac = REMOTE_NS, lay.peer_mac.lower()
    find = (f"ip -o link show | awk -v m={mac} '$0 ~ (\"link/ether \" m) "
            "{sub(/:$/, \"\", $2); sub(/@.*/, \"\", $2); print $2; exit}'")
    cfg = shlex.quote(net_config(lay))
    script = (
        f"ip netns add {ns} 2>/dev/null; "
        f"p=$(ip netns exec {ns} sh -c {shlex.quote(find)}); "
        f"if [ -z \"$p\" ]; then "
        f"  for mod in {' '.join(shlex.quote(x) for x in lay.peer_modules)}; do "
        f"    modprobe $mod || exit 5; done; "
        f"  for i in $(seq 1 {timeout * 5}); do p=$({find}); [ -n \"$p\" ] && break; "
        f"  sleep 0.2; done; "
        f"  [ -n \"$p\" ] || {{ echo \"no interface with MAC {mac}\" >&2; exit 3; }}; "
        f"  ip link set \"$p\" netns {ns} || exit 4; "
        f"fi; "
        f"ip -n {ns} link set lo up; ip -n {ns} addr flush dev \"$p\"; "
        f"ip -n {ns} addr add {lay.remote4}/{lay.prefix4} dev \"$p\"; "
        f"ip -n {ns} -6 addr add {lay.remote6}/{lay.prefix6} dev \"$p\" nodad; "
        f"ip -n {ns} link set \"$p\" up; "
        f"for d in drivers/net drivers/net/hw; do "
        f"[ -d {GUEST_DIR}/$d ] && printf %s {cfg} > {GUEST_DIR}/$d/net.config; done; "
        f"echo \"$p\""
    )
    r = guest.cmd(script, check=False, timeout=timeout + 60)
    if r.exit_status != 0:
        raise RuntimeError(f"the peer NIC ({mac}) cannot be placed in {ns}: "
                           f"{(r.stderr or r.stdout).strip()}")
    return str(r.stdout).strip().splitlines()[-1]


def run_program(guest: GuestLike, test: str, timeout: int = DEFAULT_TIMEOUT) -> ProgramResult:
    """run_kselftest.sh -t TEST; the parsed result (the runner's exit status
    says nothing the KTAP does not). The runner writes a program's output by
    opening /dev/stdout, which fails on SSH's socket: it gets a pipe."""
    r = guest.cmd(f"cd {GUEST_DIR} && ./run_kselftest.sh -o {timeout} -t {shlex.quote(test)} "
                  "2>&1 | cat",
                  check=False, timeout=timeout + 120)
    return parse_ktap(test, r.stdout)
