"""Builders for report kinds syzkaller does not know: NIC/driver oriented messages
(DMA-API debug, IOMMU faults, NETDEV WATCHDOG, ref_tracker leaks, AER, link
changes) and the FAULT_INJECTION / kmemleak / hard-lockup messages.
"""

from __future__ import annotations

import re

from .model import Kind
from .records import Analysis, Hit, Log, Window, body_end
from .stack import CALL_TRACE, RIP, TRACE, WARN_TRAP, Stack, extract_frames, rx
from .titles import normalize_title, severity_of

# Frames of the DMA-API debug machinery and DMA mapping helpers: the caller is the driver.
DMA_SKIP = (
    "dma_unmap",
    "dma_map",
    "dma_sync",
    "dma_free",
    "dma_alloc",
    "^__dma_",
    "dma_direct_",
    "debug_dma_",
    "check_unmap",
    "check_sync",
    "check_for_stack",
    "check_for_illegal_area",
    "check_sg_segment",
    "add_dma_entry",
    "dma_debug_",
    "iommu_dma_",
    "dma_entry_",
    "err_printk",
    "^dma_",
    "dmam_",
    "dma_pool_",
    "swiotlb",
    "bus_notify",
    "blocking_notifier",
    "notifier_call_chain",
    "device_release_driver",
    "__device_release_driver",
    "driver_detach",
    "bus_remove_device",
    "device_driver_detach",
)
_WARN_TRAP = WARN_TRAP


def _warn_stack(*skip: str) -> Stack:
    return Stack(steps=(_WARN_TRAP, TRACE), fallback=(CALL_TRACE, TRACE), skip=skip)


_DMA_STACK = _warn_stack(*DMA_SKIP)
_DMA_MSG = re.compile(r"DMA-API: (\S+) (\S+): (.*)")
_COUNT = re.compile(r" *\[count=[^\]]*\]")
# dev_driver_string() of a device without driver is its bus name
_BUSES = frozenset({"pci", "platform", "usb", "virtio", "auxiliary"})
_BRACKETS = re.compile(r"\s*\[(?!count=)[^\]]*\]")


def _result(
    h: Hit,
    title: str,
    frame: str | None,
    corrupted: str,
    end: int,
    kind: Kind,
    text: str = "",
    win: Window | None = None,
) -> Analysis:
    title = normalize_title(title)
    a = Analysis(h, title, corrupted, frame, end, kind, severity_of(kind, title), text)
    if win is not None:
        a.window_lines = win.lines
        a.window_offsets = win.offsets
        a.closed = win.closed
        a.truncated = win.truncated
    return a


def _single_line_end(log: Log, h: Hit) -> int:
    return log.line_end(max(h.members) if h.members else h.index)


def _frame_or_corrupted(text: str, stack: Stack) -> tuple[str, str]:
    res = extract_frames(text, stack)
    frame = res.frames[0] if res.frames else "corrupted"
    return frame, ("" if res.ok else "extracted no frames")


def dma_api(log: Log, h: Hit, win: Window) -> Analysis:
    line = next((log.info(i)[1] for i in h.members if "DMA-API:" in log.line(i)), "")
    m = _DMA_MSG.search(line)
    msg = m.group(3) if m else line
    msg = _BRACKETS.sub("", msg).strip().rstrip(".")
    text = "\n".join(win.lines)
    if "pending DMA allocations" in msg:
        # Printed once the driver is gone: the line names the bus ("pci") unless
        # the driver still shows; its dev_printk lines name it.
        driver = m.group(1) if m else None
        if m is not None and driver in _BUSES:
            driver = driver_for_bdf(log, m.group(2)) or m.group(2)
        title = _COUNT.sub("", f"DMA-API: {msg}") + (f" in {driver}" if driver else "")
        frame, corrupted = driver, ""
    else:
        frame, corrupted = _frame_or_corrupted(text, _DMA_STACK)
        title = f"DMA-API: {msg} in {frame}"
    return _result(h, title, frame, corrupted, body_end(log, win), Kind.DMA_API, text, win)


_WATCHDOG_STACK = _warn_stack()
_WD_OLD = re.compile(r"NETDEV WATCHDOG: (\S+) \(([^)]*)\): transmit queue")
_WD_NEW = re.compile(r"^(?:(\S+) (\S+) )?(\S+): NETDEV WATCHDOG: ")


def netdev_watchdog(log: Log, h: Hit, win: Window) -> Analysis:
    line = next((log.info(i)[1] for i in h.members if "NETDEV WATCHDOG" in log.line(i)), "")
    driver = None
    m = _WD_OLD.search(line)
    if m:
        driver = m.group(2) or m.group(1)
    else:
        m2 = _WD_NEW.search(line)
        if m2:
            driver = m2.group(1) or m2.group(3)
    driver = driver or "unknown"
    text = "\n".join(win.lines)
    corrupted = ""
    if h.paired_warning is not None or len(h.members) > 1:
        end = body_end(log, win)
        _, corrupted = _frame_or_corrupted(text, _WATCHDOG_STACK)
        return _result(
            h,
            f"NETDEV WATCHDOG: transmit queue timed out in {driver}",
            driver,
            corrupted,
            end,
            Kind.NETDEV_WATCHDOG,
            text,
            win,
        )
    return _result(
        h,
        f"NETDEV WATCHDOG: transmit queue timed out in {driver}",
        driver,
        "",
        _single_line_end(log, h),
        Kind.NETDEV_WATCHDOG,
        line,
    )


REF_SKIP = (
    "ref_tracker",
    "netdev_tracker",
    "netdev_hold",
    "^dev_hold",
    "__dev_hold",
    "netdev_put",
    "stack_depot",
    "kmalloc",
    "kmem_cache",
    "slab",
)
_REF_STACK = Stack(steps=(TRACE,), skip=REF_SKIP)
_NETDEV_REF = re.compile(r"netdev_hold|dev_hold|netdev_tracker|dev_get|unregister_netdevice")


def ref_tracker(log: Log, h: Hit, win: Window) -> Analysis:
    text = "\n".join(win.lines)
    rest = text.split("\n", 1)[1] if "\n" in text else ""
    frame, corrupted = _frame_or_corrupted(rest, _REF_STACK)
    netdev = _NETDEV_REF.search(text) is not None or "netdev" in log.line(h.index)
    what = "net device leaked reference" if netdev else "leaked reference"
    title = f"ref_tracker: {what} in {frame}" if frame != "corrupted" else f"ref_tracker: {what}"
    return _result(
        h,
        title,
        frame if frame != "corrupted" else None,
        "",
        body_end(log, win),
        Kind.UNREGISTER_NETDEVICE,
        text,
        win,
    )


_DMAR = re.compile(
    r"DMAR: \[(DMA Read|DMA Write|INTR-REMAP)[^\]]*\] Request device \[([0-9a-f]{2}):"
    r"([0-9a-f]{2})\.([0-7])\](?:.*\[fault reason (?:0x)?([0-9a-f]+)\] ?(.*))?"
)
_AMDVI = re.compile(
    r"^(?:(\S+) ([0-9a-f]{4}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]): )?AMD-Vi: Event logged \[(\w+)"
    r"(?: device=([0-9a-f:.]+))?"
)


def driver_for_bdf(log: Log, bdf: str) -> str | None:
    """Name of the driver bound to PCI device ``bdf`` (``0000:00:03.0``), from its
    first dev_printk line in the log (``e1000e 0000:00:03.0: ...``); looked up
    once per log and device."""
    key = ("driver", bdf)
    if key not in log.memo:
        log.memo[key] = _first_driver(log.s, bdf)
    return log.memo[key]


def _first_driver(s: str, bdf: str) -> str | None:
    at = s.find(" " + bdf)
    while at >= 0:
        after = s[at + 1 + len(bdf) : at + 2 + len(bdf)]
        if after in (":", " "):
            start = max(s.rfind(" ", 0, at), s.rfind("]", 0, at), s.rfind("\n", 0, at)) + 1
            word = s[start:at]
            if _DRIVER_NAME.fullmatch(word) and word not in ("pci", "pcieport"):
                return word
        at = s.find(" " + bdf, at + 1)
    return None


_DRIVER_NAME = re.compile(r"[A-Za-z][\w\-]*")


def iommu(log: Log, h: Hit, win: Window) -> Analysis:
    line = log.info(h.index)[1]
    m = _DMAR.search(line)
    if m:
        bdf = f"0000:{m.group(2)}:{m.group(3)}.{m.group(4)}"
        who = driver_for_bdf(log, bdf) or bdf
        what = "interrupt remapping" if m.group(1) == "INTR-REMAP" else m.group(1)
        reason = (m.group(6) or "").strip()
        title = f"DMAR: {what} fault in {who}" + (f": {reason}" if reason else "")
        return _result(h, title, who, "", _single_line_end(log, h), Kind.IOMMU_FAULT, line)
    m2 = _AMDVI.search(line)
    if m2:
        who = m2.group(1)
        if who is None and m2.group(4):
            dev = m2.group(4)
            bdf = dev if dev.count(":") == 2 else "0000:" + dev
            who = driver_for_bdf(log, bdf) or bdf
        title = f"AMD-Vi: {m2.group(3)} in {who or 'unknown'}"
        return _result(h, title, who, "", _single_line_end(log, h), Kind.IOMMU_FAULT, line)
    return _result(h, "IOMMU fault", None, "", _single_line_end(log, h), Kind.IOMMU_FAULT, line)


_CORRECTED = re.compile(r"severity=Corrected|Correct(?:ed|able) error")
_UNCORRECTED = re.compile(r"Uncorrect|Fatal")
_AER_OUTCOME = re.compile(r"device recovery (successful|failed)")
_DEV_PREFIX = re.compile(r"^([A-Za-z][\w\-]*) ([0-9a-f]{4}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]):")


def closed(log: Log, h: Hit) -> bool:
    """Whether a folded multi-line event has reached its final line."""
    if h.group.name == "AER":
        return _AER_OUTCOME.search(log.line(h.members[-1])) is not None
    return False


def aer(log: Log, h: Hit, win: Window) -> Analysis:
    lines = [log.info(i)[1] for i in h.members]
    text = "\n".join(lines)
    outcome = None
    for line in lines:
        m = _AER_OUTCOME.search(line)
        if m:
            outcome = m.group(1)
    driver = None
    for line in lines:
        dm = _DEV_PREFIX.match(line)
        if dm and "PCIe Bus Error" in line:
            driver = dm.group(1)
            break
    if outcome == "successful":
        title = "AER: recovery successful"
    elif outcome == "failed":
        title = "AER: recovery failed"
    elif _CORRECTED.search(text) and not _UNCORRECTED.search(text):
        title = "AER: corrected error" + (f" in {driver}" if driver else "")
    else:
        title = "AER: uncorrected error" + (f" in {driver}" if driver else "")
    return _result(h, title, driver, "", _single_line_end(log, h), Kind.AER, text)


_LINK = re.compile(r"(NIC Link is (?:Up|Down)|Link is (?:Up|Down|up|down)|link becomes ready)")
_IFNAME = re.compile(r"^[A-Za-z][\w.@\-]*$")


def link(log: Log, h: Hit, win: Window) -> Analysis:
    line = log.info(h.index)[1]
    m = _LINK.search(line)
    what = m.group(1) if m else "link change"
    before = line[: m.start()] if m else line
    ifname = None
    for tok in reversed(before.split()):
        tok = tok.rstrip(":")
        if _IFNAME.match(tok) and not tok.endswith(")"):
            ifname = tok
            break
    if what.startswith("Link is"):
        what = "NIC Link is " + what[len("Link is ") :].capitalize()
    dm = _DEV_PREFIX.match(line)
    driver = dm.group(1) if dm else None
    title = f"{what} on {ifname}" if ifname else what
    kind = Kind.LINK_CHANGE
    return _result(
        h,
        title.replace("link becomes ready", "link becomes ready"),
        driver or ifname,
        "",
        _single_line_end(log, h),
        kind,
        line,
    )


FAULT_SKIP = (
    "should_fail",
    "should_failslab",
    "fail_dump",
    "should_fail_alloc_page",
    "fault_create",
    "slab_pre_alloc_hook",
    "kmalloc",
    "kmem_cache",
    "alloc_pages",
    "__alloc",
    "_alloc_node",
    "kzalloc",
    "kvmalloc",
    "kcalloc",
    "alloc_skb",
    "pcpu_alloc",
    "vmalloc",
)
_FAULT_STACK = Stack(steps=(CALL_TRACE, TRACE), skip=FAULT_SKIP, allow_fault_frames=True)
_FAULT_NAME = re.compile(r"^name (\w+),", re.M)


def fault_injection(log: Log, h: Hit, win: Window) -> Analysis:
    text = "\n".join(win.lines)
    m = _FAULT_NAME.search(text)
    frame, _ = _frame_or_corrupted(text, _FAULT_STACK)
    what = m.group(1) if m else "forcing a failure"
    # verbose=1 (ktest's sweeps) prints no stack: no frame to name
    title = f"FAULT_INJECTION: {what}" + (f" in {frame}" if frame != "corrupted" else "")
    return _result(
        h,
        title,
        frame if frame != "corrupted" else None,
        "",
        body_end(log, win),
        Kind.FAULT_INJECTION,
        text,
        win,
    )


# Generic allocators only: a driver's own "..._alloc_ring" is the interesting frame.
LEAK_SKIP = (
    "kmemleak",
    "^__?kmalloc",
    "^kmalloc",
    "kmem_cache_alloc",
    "^__kmem_cache",
    "slab_",
    "^k[vz]?[mz]alloc",
    "^kcalloc",
    "^krealloc",
    "^__?vmalloc",
    "^vzalloc",
    "alloc_pages",
    "^__alloc",
    "^pcpu_",
    "create_object",
    "^kstrdup",
    "^kmemdup",
    "^__do_kmalloc",
    "^dma_alloc",
    "^__page_frag",
    "^__netdev_alloc",
    "^__?alloc_skb",
    "^__napi_alloc",
    "^kasprintf",
    "^kvasprintf",
    "^idr_get",
    "^list_lru_init",
    "^__kmalloc_node",
    "^mempool_alloc",
    "^alloc_netdev",
    "^kvmalloc",
    "^__kvmalloc",  # 6.12: __kvmalloc_node_noprof under kvmalloc()
)
_LEAK_STACK = Stack(
    steps=(rx(r"backtrace(?: \(crc [0-9a-fA-F]*\))?:"), TRACE), skip=LEAK_SKIP, own_skip=True
)


def kmemleak(log: Log, h: Hit, win: Window) -> Analysis:
    text = "\n".join(win.lines)
    frame, corrupted = _frame_or_corrupted(text, _LEAK_STACK)
    return _result(
        h,
        f"memory leak in {frame}",
        frame,
        corrupted,
        body_end(log, win),
        Kind.MEMORY_LEAK,
        text,
        win,
    )


def kmemleak_summary(log: Log, h: Hit, win: Window) -> Analysis:
    line = log.info(h.index)[1]
    return _result(
        h,
        "memory leak: kmemleak found new suspected leaks",
        None,
        "",
        _single_line_end(log, h),
        Kind.MEMORY_LEAK,
        line,
    )


_HARD_LOCKUP_STACK = Stack(steps=(RIP, CALL_TRACE, TRACE))


def hard_lockup(log: Log, h: Hit, win: Window) -> Analysis:
    text = "\n".join(win.lines)
    frame, corrupted = _frame_or_corrupted(text, _HARD_LOCKUP_STACK)
    return _result(
        h,
        f"BUG: hard lockup in {frame}",
        frame,
        corrupted,
        body_end(log, win),
        Kind.HARD_LOCKUP,
        text,
        win,
    )


_BUILDERS = {
    "dma_api": dma_api,
    "netdev_watchdog": netdev_watchdog,
    "ref_tracker": ref_tracker,
    "iommu": iommu,
    "aer": aer,
    "link": link,
    "fault_injection": fault_injection,
    "kmemleak": kmemleak,
    "kmemleak_summary": kmemleak_summary,
    "hard_lockup": hard_lockup,
}


def build(log: Log, h: Hit, win: Window, stop: int) -> Analysis:
    custom = h.group.custom
    assert custom is not None
    return _BUILDERS[custom](log, h, win)


_FIRMWARE = re.compile(
    r"SeaBIOS|iPXE|Booting from|early console in extract_kernel|Decompressing Linux"
    r"|Performing relocations|Parsing ELF"
)


def is_real_reboot(log: Log, h: Hit) -> bool:
    """ "Booting the kernel." is a reboot only if something ran before the firmware
    (or, without firmware banner, the decompressor) started."""
    boot = h.index
    for pattern in _BOOT_MARKERS:
        found = next(
            (i for i in range(h.index, max(h.index - 200, -1), -1) if pattern.search(log.line(i))),
            None,
        )
        if found is not None:
            boot = found
            break
    return _ALNUM.search(log.s, 0, log.starts[boot]) is not None  # (in lines before boot)


_BOOT_MARKERS = (
    re.compile(r"SeaBIOS|iPXE|UEFI firmware|EFI stub"),
    re.compile(r"early console in extract_kernel"),
    _FIRMWARE,
)
_ALNUM = re.compile(r"[A-Za-z0-9]")
