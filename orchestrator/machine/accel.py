"""Which accelerator works here: a real probe boot, cached per host.

The presence of /dev/kvm proves nothing (on some hosts it opens and a guest
then hangs, even though a bare boot sector runs). The probe boots the guest
kernel under KVM with a tiny initramfs whose /init (a 200-byte static ELF
written here) prints one line and powers off; KVM is used only if that line
arrives in time. A guest that prints nothing for a few seconds is taken as
hung, so the answer comes quickly either way. The answer is cached per host
(hostname, host kernel, QEMU version).
"""

from __future__ import annotations

import io
import json
import os
import platform
import select
import shutil
import struct
import subprocess
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from orchestrator.builds import cache
from orchestrator.builds.common import die_with_parent
from orchestrator.builds.cpio import CpioWriter
from orchestrator.builds.kernel import Kernel
from orchestrator.machine import qemu as qemu_mod
from orchestrator.machine.profiles import TCG_CMDLINE

PROBE_LINE = b"KTEST-PROBE-INIT"
PROBE_TIMEOUT = 25.0  # a debug kernel reaches init in a few seconds under KVM
PROBE_SILENCE = 8.0  # no console output at all for this long: the guest hangs


def probe_init_elf() -> bytes:
    """A static x86-64 /init: write PROBE_LINE to stdout, then power off."""
    base, code_off = 0x400000, 64 + 56
    msg = PROBE_LINE + b"\n"
    code = bytearray()
    code += b"\xb8\x01\x00\x00\x00"  # mov eax, 1 (write)
    code += b"\xbf\x01\x00\x00\x00"  # mov edi, 1 (stdout: /dev/console)
    lea_at = len(code)
    code += b"\x48\x8d\x35\x00\x00\x00\x00"  # lea rsi, [rip + msg]
    code += b"\xba" + struct.pack("<I", len(msg))  # mov edx, len
    code += b"\x0f\x05"  # syscall
    code += b"\xb8\xa9\x00\x00\x00"  # mov eax, 169 (reboot)
    code += b"\xbf" + struct.pack("<I", 0xFEE1DEAD)  # LINUX_REBOOT_MAGIC1
    code += b"\xbe" + struct.pack("<I", 672274793)  # LINUX_REBOOT_MAGIC2
    code += b"\xba" + struct.pack("<I", 0x4321FEDC)  # LINUX_REBOOT_CMD_POWER_OFF
    code += b"\x0f\x05"  # syscall
    code += b"\xeb\xfe"  # jmp . (if power-off failed)
    disp = len(code) - (lea_at + 7)
    code[lea_at + 3 : lea_at + 7] = struct.pack("<i", disp)
    body = bytes(code) + msg
    size = code_off + len(body)
    ehdr = b"\x7fELF" + bytes([2, 1, 1, 0]) + b"\0" * 8 + struct.pack(
        "<HHIQQQIHHHHHH", 2, 0x3E, 1, base + code_off, 64, 0, 0, 64, 56, 1, 0, 0, 0)
    phdr = struct.pack("<IIQQQQQQ", 1, 5, 0, base, base, size, size, 0x1000)
    return ehdr + phdr + body


def probe_initramfs() -> bytes:
    buf = io.BytesIO()
    w = CpioWriter(buf)
    w.add_dir("dev")
    w.add_device("dev/console", char=True, perm=0o600, major=5, minor=1)
    w.add_file("init", probe_init_elf(), 0o755)
    w.close()
    return buf.getvalue()


@dataclass(frozen=True)
class ProbeResult:
    accel: str  # "kvm" or "tcg"
    reason: str
    seconds: float
    cached: bool = False


def _qemu_version(qemu: str) -> str:
    try:
        out = subprocess.run([qemu, "--version"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return "missing"
    return out.stdout.splitlines()[0] if out.stdout else "unknown"


def boots_under(accel: str, kernel: Path, qemu: str = qemu_mod.DEFAULT_BINARY,
                timeout: float = PROBE_TIMEOUT) -> tuple[bool, str, float]:
    """Boot `kernel` with a one-line /init under `accel`: (reached init, reason, s)."""
    start = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="ktest-probe-") as tmp:
        initrd = Path(tmp) / "probe.cpio"
        initrd.write_bytes(probe_initramfs())
        cpu = "host" if accel == "kvm" else "max"
        cmdline = TCG_CMDLINE if accel == "tcg" else ()
        argv = [qemu, "-accel", accel, "-cpu", cpu, "-M", "q35", "-m", "512", "-nodefaults",
                "-no-user-config", "-display", "none", "-serial", "stdio", "-monitor", "none",
                "-no-reboot", "-kernel", str(kernel), "-initrd", str(initrd),
                "-append", " ".join(["console=ttyS0", "panic=-1", *cmdline])]
        try:
            proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                    stderr=subprocess.STDOUT, start_new_session=True,
                                    preexec_fn=die_with_parent)
        except OSError as e:
            return False, f"cannot run {qemu}: {e.strerror}", 0.0
        out = bytearray()
        try:
            assert proc.stdout is not None
            os.set_blocking(proc.stdout.fileno(), False)
            last = time.monotonic()
            while True:
                now = time.monotonic()
                if PROBE_LINE in out:
                    return True, f"the kernel reached init under {accel}", now - start
                if proc.poll() is not None and not select.select([proc.stdout], [], [], 0)[0]:
                    tail = out.decode(errors="replace").strip().splitlines()
                    return False, (f"QEMU exited {proc.returncode} under {accel}: "
                                   f"{tail[-1] if tail else 'no output'}"), now - start
                if now - start > timeout:
                    return False, f"no init under {accel} within {timeout:.0f}s", now - start
                if now - last > PROBE_SILENCE:
                    what = "no output" if not out else "output stopped"
                    return False, (f"guest hangs under {accel} ({what} for "
                                   f"{PROBE_SILENCE:.0f}s)"), now - start
                if select.select([proc.stdout], [], [], 0.2)[0]:
                    chunk = proc.stdout.read()
                    if chunk:
                        out += chunk
                        last = time.monotonic()
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, 9)
            proc.wait()
            if proc.stdout is not None:
                proc.stdout.close()


def _host_key(qemu: str) -> str:
    kvm = Path("/dev/kvm")
    st = kvm.stat() if kvm.exists() else None
    return json.dumps(["kernel-init-probe-v1", platform.node(), platform.release(),
                       _qemu_version(qemu),
                       st.st_ino if st else None])


def probe(kernel: Path | None, qemu: str | None = None,
          refresh: bool = False) -> ProbeResult:
    """The accelerator to use on this host (cached after the first probe).

    `kernel` is the guest kernel to boot; without one (nothing built yet) the
    answer is TCG, not cached, with the reason saying so.
    """
    qemu = qemu or qemu_mod.binary()
    path = cache.cache_root() / "accel.json"
    key = _host_key(qemu)
    if not refresh:
        try:
            data = json.loads(path.read_text())
            if data.get("host") == key:
                return ProbeResult(data["accel"], data["reason"], data["seconds"], cached=True)
        except (OSError, ValueError, KeyError):
            pass
    if shutil.which(qemu) is None:
        return ProbeResult("tcg", f"{qemu} not found", 0.0)
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        result = ProbeResult("tcg", "/dev/kvm is not usable", 0.0)
    elif kernel is None:
        return ProbeResult("tcg", "KVM not probed yet: no guest kernel built", 0.0)
    else:
        ok, reason, seconds = boots_under("kvm", kernel, qemu)
        result = ProbeResult("kvm" if ok else "tcg", reason, round(seconds, 2))
    cache.write_atomic(path, json.dumps({"host": key, **asdict(result)}) + "\n")
    return result


def resolve(requested: str, kernel: Path, qemu: str | None = None) -> str:
    """'auto' -> the probed accelerator; 'kvm'/'tcg' stay as asked."""
    if requested == "auto":
        return probe(kernel, qemu).accel
    return requested


def boot_image(kernel: Kernel, qemu: str | None = None) -> Path:
    """What QEMU boots for `kernel`: the uncompressed vmlinux through its PVH
    entry point (no decompression, no real-mode set-up: several seconds
    less under TCG) when a probe boot of it reaches init with this QEMU,
    else bzImage. Measured here: Debian's 6.1 with KASAN faults in
    xen_prepare_pvh (instrumented before its shadow exists); 6.12 boots.
    The answer is cached in the kernel's cache entry, per QEMU version."""
    if not kernel.has_pvh:
        return kernel.bzimage
    qemu = qemu or qemu_mod.binary()
    path = kernel.dir / "pvh-probe.json"
    key = _qemu_version(qemu)
    try:
        data = json.loads(path.read_text())
        if data.get("qemu") == key:
            return kernel.vmlinux if data["ok"] else kernel.bzimage
    except (OSError, ValueError, KeyError):
        pass
    ok, reason, seconds = boots_under("tcg", kernel.vmlinux, qemu)
    cache.write_atomic(path, json.dumps({"qemu": key, "ok": ok, "reason": reason,
                                         "seconds": round(seconds, 2)}) + "\n")
    return kernel.vmlinux if ok else kernel.bzimage
