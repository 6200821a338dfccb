"""Glue between builds and machines: "give me a guest for this profile".

Resolves the kernel, image and guest-tools artifacts through the cache,
building what is missing, and creates the Machine. Also records how
to reach a running guest (``guest.json`` in its run directory) so that
``ktest ssh`` can find it.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from orchestrator.builds import image as image_mod
from orchestrator.builds import kernel as kernel_mod
from orchestrator.builds import tools as tools_mod
from orchestrator.builds.common import Progress
from orchestrator.machine import profiles
from orchestrator.machine.vm import Machine, default_runs_dir


@dataclass(frozen=True)
class Artifacts:
    kernel: kernel_mod.Kernel
    image: image_mod.Image
    tools: tools_mod.Tools

    @property
    def extra_initrd(self) -> tuple[tuple[str, Path], ...]:
        """What the guest's initramfs carries besides image and modules."""
        return ((self.tools.key, self.tools.cpio),)


def artifacts(req: kernel_mod.KernelRequest | None = None,
              progress: Progress | None = None) -> Artifacts:
    k = kernel_mod.build_kernel(req or kernel_mod.KernelRequest(), progress)
    im = image_mod.build_image(progress)
    return Artifacts(k, im, tools_mod.build_tools(progress))


def make_machine(profile: profiles.Profile | str, arts: Artifacts, *, accel: str | None = None,
                 run_dir: Path | None = None, **kw: Any) -> Machine:
    prof = profiles.load_profile(profile) if isinstance(profile, str) else profile
    return Machine(prof, arts.kernel, arts.image, accel=accel, run_dir=run_dir,
                   extra_initrd=arts.extra_initrd, **kw)


def write_guest_info(machine: Machine) -> Path:
    info = {
        "pid": os.getpid(),
        "qemu_pid": machine.proc.pid if machine.proc else None,
        "profile": machine.profile.name,
        "ssh_port": machine.ssh_port,
        "key": str(machine.run_dir / "id_ed25519"),
        "host_key": machine.image.host_public_key,
    }
    path = machine.run_dir / "guest.json"
    path.write_text(json.dumps(info, indent=2) + "\n")
    kh = machine.run_dir / "known_hosts"
    kh.write_text(f"[127.0.0.1]:{machine.ssh_port} {info['host_key']}\n")
    os.chmod(kh, 0o600)
    return path


def find_running_guest(run_dir: Path | None = None) -> tuple[Path, dict[str, Any]]:
    """The run directory and guest.json of a running `ktest boot`."""
    candidates = [run_dir] if run_dir else sorted(
        default_runs_dir().glob("*/guest.json"), key=lambda p: p.stat().st_mtime, reverse=True)
    for c in candidates:
        path = c / "guest.json" if c.is_dir() else c
        try:
            info = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        qpid = info.get("qemu_pid")
        if qpid and _alive(int(qpid)):
            return path.parent, info
    raise LookupError("no running guest found (start one with `ktest boot`)")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
