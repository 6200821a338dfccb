"""Which QEMU runs the guests, its version, and what that version enables.

Everything in ktest that depends on the QEMU version is in one table,
:data:`FEATURES`, as data: a feature name, the first version that has it,
and what needs it. Profiles and tests ask :func:`require` for a feature and
get one line naming the version and the reason when this QEMU is too old;
:data:`LIMITATIONS` lists the emulator bugs (of older versions, or of
every version so far) that a test must not blame on a driver (the plugin
marks those tests xfail, and orchestrator.runs.known reads the same table
as known issues). (Measured facts: ../shared/QEMU-NOTES.md.)

The binary is ``$KTEST_QEMU`` when set (a user's own build; ``ktest
--qemu PATH`` sets it for everything it starts), else
``qemu-system-x86_64`` on PATH.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

DEFAULT_BINARY = "qemu-system-x86_64"
ENV = "KTEST_QEMU"
MIN_VERSION = (7, 2)  # -netdev dgram, which every NIC under test uses


class QemuError(Exception):
    """No usable QEMU, or one too old for what was asked (one line)."""


@dataclass(frozen=True, order=True)
class QemuVersion:
    major: int
    minor: int
    micro: int = 0
    text: str = ""  # the --version line, e.g. "QEMU emulator version 10.0.2 (Debian ...)"

    def __str__(self) -> str:
        return f"{self.major}.{self.minor}.{self.micro}"

    def at_least(self, v: tuple[int, int]) -> bool:
        return (self.major, self.minor) >= v


@dataclass(frozen=True)
class Feature:
    name: str
    since: tuple[int, int]
    what: str  # what it is, for messages and `ktest doctor`


FEATURES: dict[str, Feature] = {f.name: f for f in (
    Feature("dgram-netdev", (7, 2), "-netdev dgram, the frame socket of every NIC under test"),
    Feature("igb", (8, 0), "the igb NIC model (82576) with SR-IOV (8 VFs)"),
    Feature("e1000e-msix-link", (8, 1),
            "e1000e raises link changes in MSI-X mode while old causes sit in ICR "
            "(\"e1000e: Add ICR clearing by corresponding IMS bit\")"),
    Feature("aer-correctable-numeric", (8, 0),
            "pcie_aer_inject_error -c takes only a numeric status"),
    Feature("igb-flr", (8, 2), "function-level reset of the igb PF"),
    Feature("file-migration", (8, 2), "migration to and from a file: URI (snapshots)"),
    Feature("mapped-ram", (9, 0), "the mapped-ram migration capability (compact snapshots)"),
    Feature("tcg-x2apic", (9, 0), "x2APIC under TCG with -cpu max"),
)}


@dataclass(frozen=True)
class Limitation:
    """An emulator bug of QEMU versions without `feature` (None: no version
    fixes it yet, every QEMU has it): a test of one of `drivers` whose name
    matches one of `tests` cannot tell the driver apart from the model
    there, so it is reported as this known limitation."""

    feature: str | None
    drivers: tuple[str, ...]
    tests: tuple[str, ...]  # regexes searched in the test id
    reason: str
    link: str = ""
    name: str = ""  # what to call it where there is no feature
    # what a test failing this way says (regexes searched in its failure
    # message): where known, a failure that says none of them is another one
    says: tuple[str, ...] = ()

    @property
    def label(self) -> str:
        return self.feature or self.name


LIMITATIONS: tuple[Limitation, ...] = (
    Limitation(
        "e1000e-msix-link", ("e1000e",),
        (r"test_link_down_up", r"link_flap", r"test_ethtool_reports_identity_and_link_state",
         r"test_load_unload_cycles", r"test_bind_unbind_cycles"),
        "QEMU < 8.1: the e1000e model in MSI-X mode raises no interrupt for a cause "
        "while old causes sit in ICR, and the in-tree e1000e never clears them: link "
        "changes are missed, and after a load or a bind the link-up and the first "
        "frames can be late",
        "https://lore.kernel.org/qemu-devel/?q=%22e1000e%3A+Add+ICR+clearing+by+"
        "corresponding+IMS+bit%22",
    ),
    # hw/net/igb_core.c, mailbox_interrupt_to_vf(): the PF's message to a VF
    # raises the EICR causes (vector << shift) instead of (1 << vector) <<
    # shift, so it lands on the VF's vector below the one IVAR_MISC names
    # (on none for vector 0). igbvf's "other" vector is 2: igb's ping
    # arrives on its Rx vector, which only schedules NAPI, and
    # get_link_status is never set. The VF's STATUS register does follow
    # the cable (it reads the PF's), but igbvf reads it only after that
    # interrupt, a reset of the VF or a mailbox timeout.
    Limitation(
        None, ("igbvf",), (r"test_link_down_up", r"test_ethtool_reports_identity_and_link_state"),
        "QEMU's igb delivers the PF's mailbox message to a VF on the wrong MSI-X vector "
        "(mailbox_interrupt_to_vf shifts the vector number, not its bit): igbvf never "
        "gets the \"other\" interrupt igb's link-change ping should raise, so a VF keeps "
        "carrier when the cable is pulled",
        "https://gitlab.com/qemu-project/qemu/-/blob/master/hw/net/igb_core.c",
        name="igb-vf-mailbox-irq", says=(r"carrier 0: not within \d+s",),
    ),
)


def binary() -> str:
    return os.environ.get(ENV) or DEFAULT_BINARY


def parse_version(text: str) -> QemuVersion | None:
    m = re.search(r"version (\d+)\.(\d+)(?:\.(\d+))?", text)
    if not m:
        return None
    line = next((ln for ln in text.splitlines() if "version" in ln), text).strip()
    return QemuVersion(int(m.group(1)), int(m.group(2)), int(m.group(3) or 0), line)


def version(path: str | None = None) -> QemuVersion:
    """The version of `path` (default: :func:`binary`); QemuError if there
    is no such QEMU, it does not answer, or it is older than MIN_VERSION."""
    exe = shutil.which(path or binary())
    if exe is None:
        hint = f" (${ENV} is set to it)" if os.environ.get(ENV) and path is None else ""
        raise QemuError(f"{path or binary()} not found{hint}: run ./scripts/bootstrap or "
                        "`ktest doctor --install`, or pass --qemu PATH")
    st = Path(exe).stat()
    return _version(exe, st.st_mtime_ns, st.st_size)


@lru_cache(maxsize=8)
def _version(exe: str, mtime: int, size: int) -> QemuVersion:
    try:
        out = subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise QemuError(f"{exe} --version failed: {e}") from None
    v = parse_version(out.stdout)
    if v is None:
        raise QemuError(f"{exe} --version printed no version: {out.stdout.strip()[:100]!r}")
    if not v.at_least(MIN_VERSION):
        raise QemuError(f"{exe} is QEMU {v}; ktest needs {_fmt(MIN_VERSION)} or later "
                        f"({FEATURES['dgram-netdev'].what})")
    return v


def _fmt(v: tuple[int, int]) -> str:
    return f"{v[0]}.{v[1]}"


def has(v: QemuVersion, feature: str) -> bool:
    return v.at_least(FEATURES[feature].since)


def require(v: QemuVersion, feature: str, needed_by: str) -> None:
    """Raise QemuError naming the version and the reason if `v` lacks `feature`."""
    f = FEATURES[feature]
    if not v.at_least(f.since):
        raise QemuError(f"{needed_by} needs QEMU {_fmt(f.since)} or later ({f.what}); "
                        f"this QEMU is {v}")


def enabled(v: QemuVersion) -> list[tuple[Feature, bool]]:
    """Every feature of the table with whether `v` has it (for `ktest doctor`)."""
    return [(f, v.at_least(f.since)) for f in FEATURES.values()]


def limitation_for(v: QemuVersion, driver: str, test_id: str) -> Limitation | None:
    for lim in LIMITATIONS:
        if (lim.feature and has(v, lim.feature)) or driver not in lim.drivers:
            continue
        if any(re.search(p, test_id) for p in lim.tests):
            return lim
    return None
