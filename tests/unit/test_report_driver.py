# ruff: noqa: E501
# (console snippets keep their real line lengths)
"""Titles a driver engineer can act on (issue 17): console logs of a 6.12 debug
kernel (printk caller ids) with small faulty NIC modules."""

from __future__ import annotations

import pytest

from orchestrator.report import Kind, bugs_and_events, parse
from orchestrator.report.titles import demangle


def k612(text: str, start: float = 100.0, caller: str = "T2301") -> str:
    """Prefix every line like a 6.12 kernel with CONFIG_PRINTK_CALLER:
    ``[  100.000000][ T2301] ...``."""
    out = []
    for i, line in enumerate(text.strip("\n").split("\n")):
        out.append(f"[{start + i * 0.000013:12.6f}][{caller:>6}] {line}")
    return "\n".join(out) + "\n"


BOOT = """\
ktest_nic: loading out-of-tree module taints kernel.
ktest_nic 0000:01:00.0: enabling device (0000 -> 0002)
ktest_nic 0000:01:00.0 eth0: registered, MAC 52:54:00:12:34:56
"""

LINK_UP = """\
ktest_nic 0000:01:00.0 eth0: NIC Link is Up 1000 Mbps Full Duplex
IPv6: ADDRCONF(NETDEV_CHANGE): eth0: link becomes ready
"""

WARN_IN_XMIT = """\
------------[ cut here ]------------
WARNING: CPU: 1 PID: 2301 at drivers/net/ethernet/ktest/ktest_nic.c:412 ktest_nic_xmit+0x1c4/0x2a0 [ktest_nic]
Modules linked in: ktest_nic(O)
CPU: 1 UID: 0 PID: 2301 Comm: ping Tainted: G           O       6.12.9-ktest #1
Tainted: [O]=OOT_MODULE
Hardware name: QEMU Standard PC (Q35 + ICH9, 2009), BIOS 1.16.3-debian-1.16.3-2 04/01/2014
RIP: 0010:ktest_nic_xmit+0x1c4/0x2a0 [ktest_nic]
Code: 48 8b 45 d0 48 85 c0 75 0a <0f> 0b 31 c0 e9 6e ff ff ff
RSP: 0018:ffffc90000d3f9e8 EFLAGS: 00010246
Call Trace:
 <TASK>
 ? __warn+0x89/0x130
 ? ktest_nic_xmit+0x1c4/0x2a0 [ktest_nic]
 ? report_bug+0x164/0x190
 ? handle_bug+0x58/0x90
 ? exc_invalid_op+0x17/0x70
 ? asm_exc_invalid_op+0x1a/0x20
 dev_hard_start_xmit+0x9a/0x210
 __dev_queue_xmit+0x7a6/0xe20
 ip_finish_output2+0x2a5/0x690
 ip_output+0x63/0x110
 raw_sendmsg+0x5b5/0xe70
 __sys_sendto+0x1d6/0x1f0
 __x64_sys_sendto+0x24/0x30
 do_syscall_64+0x82/0x190
 entry_SYSCALL_64_after_hwframe+0x76/0x7e
 </TASK>
---[ end trace 0000000000000000 ]---
"""


def test_events_do_not_stand_in_front_of_the_bug() -> None:
    log = k612(BOOT, 10.0) + k612(LINK_UP, 12.0, "T120") + k612(WARN_IN_XMIT, 30.0)
    reports = parse(log)
    assert [r.severity for r in reports] == ["event", "event", "bug"]  # log order
    found, events = bugs_and_events(reports)
    assert [r.title for r in found] == ["WARNING in ktest_nic_xmit"]
    assert [r.title for r in events] == ["NIC Link is Up on eth0", "link becomes ready on eth0"]


LEAKED_OBJECT = """\
unreferenced object {addr} (size 2048):
  comm "insmod", pid 2301, jiffies 4294905392
  hex dump (first 32 bytes):
    00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00  ................
    00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00  ................
  backtrace (crc 1b7c4d2e):
    [<(____ptrval____)>] kmemleak_alloc+0x4a/0x80
    [<(____ptrval____)>] __kmalloc_cache_noprof+0x2a8/0x3a0
    [<(____ptrval____)>] ktest_nic_alloc_rings+0x4b/0x1c6 [ktest_nic]
    [<(____ptrval____)>] ktest_nic_open+0x3c/0x120 [ktest_nic]
    [<(____ptrval____)>] __dev_open+0xf8/0x1e0
    [<(____ptrval____)>] __dev_change_flags+0x1a5/0x220
    [<(____ptrval____)>] dev_change_flags+0x26/0x70
    [<(____ptrval____)>] do_setlink+0x3a4/0x12e0
    [<(____ptrval____)>] rtnl_newlink+0x5d8/0x8f0
    [<(____ptrval____)>] rtnetlink_rcv_msg+0x164/0x430
"""
KMEMLEAK_PTRVAL = LEAKED_OBJECT.format(addr="0xffff888104a3c800") + LEAKED_OBJECT.format(
    addr="0xffff888104a3d000"
)
KMEMLEAK_SUMMARY = "kmemleak: 2 new suspected memory leaks (see /sys/kernel/debug/kmemleak)\n"
# The rest of a call trace in a probe() run by insmod.
PROBED_BY_INSMOD = """\
 local_pci_probe+0x42/0x90
 pci_device_probe+0xbd/0x290
 really_probe+0xdb/0x340
 __driver_probe_device+0x78/0x110
 driver_probe_device+0x1f/0x90
 __driver_attach+0xd2/0x1c0
 bus_for_each_dev+0x85/0xd0
 bus_add_driver+0x116/0x220
 driver_register+0x59/0x100
 ktest_nic_init_module+0x1e/0xff0 [ktest_nic]
 do_one_initcall+0x5b/0x320
 do_init_module+0x60/0x240
 init_module_from_file+0x86/0xc0
 idempotent_init_module+0x120/0x2f0
 __x64_sys_finit_module+0x5e/0xb0
 do_syscall_64+0x82/0x190
 entry_SYSCALL_64_after_hwframe+0x76/0x7e
 </TASK>
"""


@pytest.mark.parametrize("summary_first", [False, True])
def test_kmemleak_with_hashed_pointers(summary_first: bool) -> None:
    summary = k612(KMEMLEAK_SUMMARY, 245.0, "T88")
    objects = k612(KMEMLEAK_PTRVAL, 246.0, "T88")
    log = k612(BOOT, 10.0) + (summary + objects if summary_first else objects + summary)
    (leak,) = [r for r in parse(log) if r.is_bug]
    assert leak.title == "memory leak in ktest_nic_alloc_rings"
    assert leak.frame == "ktest_nic_alloc_rings"
    assert leak.kind is Kind.MEMORY_LEAK and not leak.corrupted
    assert leak.modules == ("ktest_nic",)
    assert leak.count == 2


def test_kmemleak_summary_alone_is_still_a_bug() -> None:
    (r,) = parse(k612(KMEMLEAK_SUMMARY, 245.0, "T88"))
    assert r.title == "memory leak: kmemleak found new suspected leaks" and r.is_bug


RCU_SELF_DETECTED = (
    """\
rcu: INFO: rcu_preempt self-detected stall on CPU
rcu: \t0-....: (21000 ticks this GP) idle=4c4c/1/0x4000000000000000 softirq=3410/3410 fqs=5250
rcu: \t(t=21003 jiffies g=5873 q=1290 ncpus=2)
CPU: 0 UID: 0 PID: 2301 Comm: insmod Tainted: G           O       6.12.9-ktest #1
Tainted: [O]=OOT_MODULE
Hardware name: QEMU Standard PC (Q35 + ICH9, 2009), BIOS 1.16.3-debian-1.16.3-2 04/01/2014
RIP: 0010:ktest_nic_wait_link+0x2d/0x60 [ktest_nic]
Code: 0f 1f 44 00 00 48 8b 87 a0 00 00 00 8b 40 10 a8 01 75 04 <f3> 90 eb ee c3 cc cc cc cc
RSP: 0018:ffffc90000d3fb58 EFLAGS: 00000246
RAX: 0000000000000000 RBX: ffff888104b48000 RCX: 0000000000000000
RDX: 0000000000000000 RSI: 0000000000000000 RDI: ffff888104b48000
RBP: ffffc90000d3fb70 R08: 0000000000000000 R09: 0000000000000000
R10: 0000000000000000 R11: 0000000000000000 R12: ffff888100c1e000
R13: 0000000000000000 R14: ffff888100c1e0c8 R15: 0000000000000000
FS:  00007f2b0a4a7740(0000) GS:ffff88813bc00000(0000) knlGS:0000000000000000
CS:  0010 DS: 0000 ES: 0000 CR0: 0000000080050033
CR2: 000055d0b3b1e000 CR3: 0000000104a80000 CR4: 00000000000006f0
Call Trace:
 <TASK>
 ktest_nic_init_hw+0x31/0x90 [ktest_nic]
 ktest_nic_probe+0x1f2/0x3b0 [ktest_nic]
"""
    + PROBED_BY_INSMOD
)


def test_self_detected_rcu_stall_names_the_module_rip() -> None:
    (r,) = parse(k612(BOOT, 10.0) + k612(RCU_SELF_DETECTED, 130.0, "C0"))
    assert r.title == "INFO: rcu detected stall in ktest_nic_wait_link"
    assert r.kind is Kind.RCU_STALL and r.frame == "ktest_nic_wait_link"
    assert not r.corrupted


SOFT_LOCKUP_IN_INIT = (
    """\
watchdog: BUG: soft lockup - CPU#1 stuck for 26s! [insmod:2301]
Modules linked in: ktest_nic(O+)
irq event stamp: 45678
hardirqs last  enabled at (45677): [<ffffffff81e3c0a6>] irqentry_exit+0x36/0x90
hardirqs last disabled at (45678): [<ffffffff81e3a1c4>] sysvec_apic_timer_interrupt+0xe/0x90
softirqs last  enabled at (45560): [<ffffffff8110dc5a>] handle_softirqs+0x2fa/0x3e0
softirqs last disabled at (45551): [<ffffffff8110de95>] __irq_exit_rcu+0xa5/0xc0
CPU: 1 UID: 0 PID: 2301 Comm: insmod Tainted: G           O L     6.12.9-ktest #1
Tainted: [O]=OOT_MODULE, [L]=SOFTLOCKUP
Hardware name: QEMU Standard PC (Q35 + ICH9, 2009), BIOS 1.16.3-debian-1.16.3-2 04/01/2014
RIP: 0010:ktest_nic_poll_reset+0x1b/0x40 [ktest_nic]
Code: 90 90 90 90 f3 0f 1e fa 0f 1f 44 00 00 48 8b 47 08 8b 40 04 a8 01 74 04 <f3> 90 eb f1 c3 cc cc
RSP: 0018:ffffc90000d3fb60 EFLAGS: 00000246
RAX: 0000000000000000 RBX: ffff888104b48000 RCX: 0000000000000000
Call Trace:
 <IRQ>
 ? show_regs+0x6c/0x80
 ? watchdog_timer_fn+0x21d/0x2a0
 ? __pfx_watchdog_timer_fn+0x10/0x10
 ? __hrtimer_run_queues+0x10f/0x2a0
 ? hrtimer_interrupt+0xfa/0x230
 ? __sysvec_apic_timer_interrupt+0x55/0x150
 ? sysvec_apic_timer_interrupt+0x6c/0x90
 </IRQ>
 <TASK>
 ? asm_sysvec_apic_timer_interrupt+0x1a/0x20
 ? ktest_nic_poll_reset+0x1b/0x40 [ktest_nic]
 ktest_nic_reset_hw+0x2e/0x80 [ktest_nic]
 ktest_nic_probe+0x1b0/0x3b0 [ktest_nic]
"""
    + PROBED_BY_INSMOD
)


def test_soft_lockup_in_module_names_the_module_rip() -> None:
    (r,) = parse(k612(BOOT, 10.0) + k612(SOFT_LOCKUP_IN_INIT, 156.0, "C1"))
    assert r.title == "BUG: soft lockup in ktest_nic_poll_reset"
    assert r.kind is Kind.SOFT_LOCKUP and r.frame == "ktest_nic_poll_reset"


def test_soft_lockup_with_core_rip_names_the_module_caller() -> None:
    # The CPU spins in a core helper (mdelay) called by the module.
    text = SOFT_LOCKUP_IN_INIT.replace(
        "RIP: 0010:ktest_nic_poll_reset+0x1b/0x40 [ktest_nic]", "RIP: 0010:delay_tsc+0x4a/0x90"
    ).replace(
        " ? ktest_nic_poll_reset+0x1b/0x40 [ktest_nic]\n",
        " ? delay_tsc+0x4a/0x90\n __const_udelay+0x43/0x50\n",
    )
    (r,) = parse(k612(text, 156.0, "C1"))
    assert r.title == "BUG: soft lockup in ktest_nic_reset_hw"


def test_soft_lockup_in_core_code_keeps_the_syscall_title() -> None:
    # No module frame at all: syzkaller's title (the frame before the syscall dispatch).
    text = """\
watchdog: BUG: soft lockup - CPU#0 stuck for 23s! [syz-executor:4021]
CPU: 0 UID: 0 PID: 4021 Comm: syz-executor Not tainted 6.12.9-ktest #1
RIP: 0010:__sanitizer_cov_trace_pc+0x4/0x60
Call Trace:
 <TASK>
 tcp_sendmsg_locked+0x1b5/0x2f00
 tcp_sendmsg+0x2f/0x50
 __sys_sendto+0x1d6/0x1f0
 __x64_sys_sendto+0x24/0x30
 do_syscall_64+0x82/0x190
 entry_SYSCALL_64_after_hwframe+0x76/0x7e
 </TASK>
"""
    (r,) = parse(k612(text, 50.0, "C0"))
    assert r.title == "BUG: soft lockup in sys_sendto"


SCHED_WHILE_ATOMIC = """\
BUG: scheduling while atomic: ktest-rx/812/0x00000002
Modules linked in: ktest_nic(O)
Preemption disabled at:
[<ffffffffc0a1b2c4>] ktest_nic_refill+0x34/0x1a0 [ktest_nic]
CPU: 1 UID: 0 PID: 812 Comm: ktest-rx Tainted: G           O       6.12.9-ktest #1
Tainted: [O]=OOT_MODULE
Hardware name: QEMU Standard PC (Q35 + ICH9, 2009), BIOS 1.16.3-debian-1.16.3-2 04/01/2014
Call Trace:
 <TASK>
 dump_stack_lvl+0x5d/0x80
 __schedule_bug+0x9e/0xd0
 __schedule+0xa3f/0xe90
 schedule+0x27/0xf0
 {helper}
 ktest_nic_refill+0x91/0x1a0 [ktest_nic]
 ktest_nic_rx_thread+0x5c/0xa0 [ktest_nic]
 kthread+0xd2/0x100
 ret_from_fork+0x34/0x50
 ret_from_fork_asm+0x1a/0x30
 </TASK>
"""


@pytest.mark.parametrize(
    "helper",
    [
        " schedule_timeout+0x9e/0x160\n msleep+0x2d/0x40",
        " schedule_hrtimeout_range_clock+0xb4/0x140\n usleep_range_state+0x64/0x90",
        " schedule_timeout+0x9e/0x160",
        " schedule_timeout+0x9e/0x160\n __wait_for_common+0x96/0x1c0\n wait_for_completion_timeout+0x1d/0x30",
        " schedule_preempt_disabled+0x15/0x30\n __mutex_lock+0x42e/0x9b0\n mutex_lock_nested+0x1b/0x30",
    ],
)
def test_scheduling_while_atomic_names_the_caller_of_the_sleep(helper: str) -> None:
    (r,) = parse(k612(SCHED_WHILE_ATOMIC.replace(" {helper}", helper), 88.0, "T812"))
    assert r.title == "BUG: scheduling while atomic in ktest_nic_refill"
    assert r.kind is Kind.SLEEP_IN_ATOMIC


RUST_PANIC = """\
rust_kernel: panicked at drivers/net/ethernet/ktest/ktest_rnic.rs:118:21:
index out of bounds: the len is 4 but the index is 4
------------[ cut here ]------------
kernel BUG at rust/helpers/bug.c:7!
Oops: invalid opcode: 0000 [#1] PREEMPT SMP NOPTI
CPU: 0 UID: 0 PID: 2148 Comm: ip Tainted: G           O       6.12.9-ktest #1
Tainted: [O]=OOT_MODULE
Hardware name: QEMU Standard PC (Q35 + ICH9, 2009), BIOS 1.16.3-debian-1.16.3-2 04/01/2014
RIP: 0010:rust_helper_BUG+0x8/0x10
Code: cc cc cc cc 90 90 90 90 90 90 90 90 90 90 90 90 f3 0f 1e fa 0f 1f 44 00 00 <0f> 0b 66 0f 1f 44 00 00
RSP: 0018:ffffc90000d2f6b8 EFLAGS: 00010246
Call Trace:
 <TASK>
 ? die+0x36/0x90
 ? do_trap+0xdd/0x100
 ? rust_helper_BUG+0x8/0x10
 ? do_error_trap+0x6a/0x90
 ? exc_invalid_op+0x50/0x70
 ? asm_exc_invalid_op+0x1a/0x20
 _RNvCs4Yw3XmjC1nV_7___rustc17rust_begin_unwind+0x73/0x80
 _RNvNtCs9jEwPDbx20M_4core9panicking9panic_fmt+0x84/0x90
 _RNvNtCs9jEwPDbx20M_4core9panicking18panic_bounds_check+0x74/0x80
 _RNvMs_CsfZpU3rR3vZk_10ktest_rnicNtB4_4Ring6refill+0x1a4/0x2b0 [ktest_rnic]
 _RNvXs0_CsfZpU3rR3vZk_10ktest_rnicNtB5_4RNicNtNtCs43vyB533jt3_6kernel3net9NetDevOps4open+0x61/0x120 [ktest_rnic]
 __dev_open+0xf8/0x1e0
 __dev_change_flags+0x1a5/0x220
 dev_change_flags+0x26/0x70
 do_setlink+0x3a4/0x12e0
 rtnl_newlink+0x5d8/0x8f0
 rtnetlink_rcv_msg+0x164/0x430
 netlink_rcv_skb+0x5a/0x110
 netlink_unicast+0x1a2/0x280
 netlink_sendmsg+0x217/0x480
 __sys_sendto+0x1d6/0x1f0
 __x64_sys_sendto+0x24/0x30
 do_syscall_64+0x82/0x190
 entry_SYSCALL_64_after_hwframe+0x76/0x7e
 </TASK>
Modules linked in: ktest_rnic(O)
---[ end trace 0000000000000000 ]---
"""


@pytest.mark.parametrize("caller", [None, "T2148"])
def test_rust_panic_names_the_panicking_function(caller: str | None) -> None:
    log = RUST_PANIC if caller is None else k612(RUST_PANIC, 61.0, caller)
    (r,) = [x for x in parse(log) if x.is_bug]
    assert (
        r.title
        == "index out of bounds: the len is NUM but the index is NUM in <ktest_rnic::Ring>::refill"
    )
    assert r.frame == "<ktest_rnic::Ring>::refill"
    assert r.modules == ("ktest_rnic",)


@pytest.mark.parametrize(
    ("mangled", "plain"),
    [
        ("_RNvMs_CsfZpU3rR3vZk_10ktest_rnicNtB4_4Ring6refill", "<ktest_rnic::Ring>::refill"),
        (
            "_RNvXs0_CsfZpU3rR3vZk_10ktest_rnicNtB5_4RNicNtNtCs43vyB533jt3_6kernel3net9NetDevOps4open",
            "<ktest_rnic::RNic as kernel::net::NetDevOps>::open",
        ),
        ("_RNvNtCs9jEwPDbx20M_4core9panicking9panic_fmt", "core::panicking::panic_fmt"),
        ("_RNvCs4Yw3XmjC1nV_7___rustc17rust_begin_unwind", "__rustc::rust_begin_unwind"),
        ("_ZN10ktest_rnic4Ring6refill17h0123456789abcdefE", "ktest_rnic::Ring::refill"),
        ("_Z8fakeNameiii", "fakeName"),
        ("_RNvBad", "_RNvBad"),
        ("ktest_nic_poll", "ktest_nic_poll"),
    ],
)
def test_demangle(mangled: str, plain: str) -> None:
    assert demangle(mangled) == plain


DMA_PENDING_UNBOUND = """\
ktest_nic 0000:01:00.0: ktest_nic_remove: stopping rings
------------[ cut here ]------------
DMA-API: pci 0000:01:00.0: device driver has pending DMA allocations while released from device [count=3]
One of leaked entries details: [device address=0x0000000102c4a000] [size=2048 bytes] [mapped with DMA_FROM_DEVICE] [mapped as single]
WARNING: CPU: 0 PID: 2501 at kernel/dma/debug.c:993 dma_debug_device_change+0x1b5/0x210
Modules linked in: ktest_nic(O-)
CPU: 0 UID: 0 PID: 2501 Comm: rmmod Tainted: G           O       6.12.9-ktest #1
RIP: 0010:dma_debug_device_change+0x1b5/0x210
Call Trace:
 <TASK>
 notifier_call_chain+0x5a/0xd0
 blocking_notifier_call_chain+0x43/0x60
 device_release_driver_internal+0x1c1/0x230
 driver_detach+0x48/0x90
 bus_remove_driver+0x6c/0xf0
 pci_unregister_driver+0x3f/0xb0
 ktest_nic_exit_module+0x10/0x7b0 [ktest_nic]
 __do_sys_delete_module+0x1ac/0x2f0
 do_syscall_64+0x82/0x190
 entry_SYSCALL_64_after_hwframe+0x76/0x7e
 </TASK>
---[ end trace 0000000000000000 ]---
"""


def test_dma_pending_allocations_name_the_driver() -> None:
    log = k612(BOOT, 10.0, "T1") + k612(DMA_PENDING_UNBOUND, 301.0, "T2501")
    (r,) = [x for x in parse(log) if x.is_bug]
    assert (
        r.title
        == "DMA-API: device driver has pending DMA allocations while released from device in ktest_nic"
    )
    assert r.kind is Kind.DMA_API and r.frame == "ktest_nic"
    # the driver named in the message itself
    named = DMA_PENDING_UNBOUND.replace("DMA-API: pci 0000", "DMA-API: e1000e 0000")
    (r,) = [x for x in parse(k612(named, 301.0)) if x.is_bug]
    assert r.title.endswith("released from device in e1000e")
    # no dev_printk line of that device: the address
    (r,) = [x for x in parse(k612(DMA_PENDING_UNBOUND.split("\n", 1)[1], 301.0)) if x.is_bug]
    assert r.title.endswith("released from device in NUM:NUM:NUM.NUM")  # (normalised)
    assert r.frame == "0000:01:00.0"


def test_repeated_netdev_watchdog_is_one_report_with_a_count() -> None:
    lines = "".join(
        k612(
            f"ktest_nic 0000:01:00.0 eth0: NETDEV WATCHDOG: CPU: 1: transmit queue 0 timed out {5120 + 5000 * i} ms\n"
            "ktest_nic 0000:01:00.0 eth0: tx timeout, resetting\n"
            "ktest_nic 0000:01:00.0 eth0: NIC Link is Up 1000 Mbps Full Duplex\n",
            200.0 + 5 * i,
            "C1",
        )
        for i in range(7)
    )
    found, events = bugs_and_events(parse(k612(BOOT, 10.0) + lines))
    (r,) = found
    assert r.title == "NETDEV WATCHDOG: transmit queue timed out in ktest_nic"
    assert r.count == 7
    assert r.to_dict()["count"] == 7
    assert [(e.title, e.count) for e in events] == [("NIC Link is Up on eth0", 7)]


def test_repeated_unregister_wait_is_one_report_with_a_count() -> None:
    log = "".join(
        k612(
            "unregister_netdevice: waiting for eth0 to become free. Usage count = 2\n",
            300.0 + 10 * i,
            "T2501",
        )
        + k612("ktest_nic 0000:01:00.0: still waiting\n", 301.0 + 10 * i, "T77")
        for i in range(4)
    )
    (r,) = parse(log)
    assert r.title == "unregister_netdevice: waiting for DEV to become free"
    assert r.count == 4
