"""Where ktest's own files are: profiles, plans, kernel fragments and patches,
the guest image recipe, the ktest_nic source and the NIC suites.

In a checkout (an editable install) they are the checkout's top-level
folders. A wheel carries copies of the same folders inside the package, in
``orchestrator/_data/`` (setup.py puts them there), so an installed ktest
finds everything it ships from any working directory.
"""

from __future__ import annotations

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent
# The top-level folders a wheel ships (relative to the checkout root).
SHIPPED = ("qemu-configs", "guest-images", "drivers/ktest_nic", "tests/nic")


def data_root() -> Path:
    """The folder that holds qemu-configs/, guest-images/, drivers/ and tests/."""
    shipped = _PACKAGE / "_data"
    return shipped if shipped.is_dir() else _PACKAGE.parent


def project_root() -> Path:
    """Alias kept for readability where a checkout is meant (same folder)."""
    return data_root()


def profiles_dir() -> Path:
    return data_root() / "qemu-configs"


def plans_dir() -> Path:
    return data_root() / "qemu-configs" / "plans"


def kernel_dir() -> Path:
    return data_root() / "guest-images" / "kernel"


def rootfs_dir() -> Path:
    return data_root() / "guest-images" / "rootfs"


def ktest_nic_dir() -> Path:
    return data_root() / "drivers" / "ktest_nic"


def faultscope_dir() -> Path:
    """The guest helper module that keeps the kernel's checkers out of
    fail-nth sweeps (guest-images/modules/ktest_faultscope)."""
    return data_root() / "guest-images" / "modules" / "ktest_faultscope"
