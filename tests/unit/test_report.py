# ruff: noqa: E501
# (console snippets keep their real line lengths)
"""Unit tests for orchestrator.report with small, realistic console snippets."""

from __future__ import annotations

import io
import json
import pathlib
import re

import pytest

from orchestrator.report import (
    Kind,
    bugs_and_events,
    judge,
    parse,
    split_prefix,
    strip_prefixes,
)
from orchestrator.report.cli import run_parse


def ts(text: str, start: float = 20.0, caller: str | None = None) -> str:
    """Prefix every line with a kernel timestamp (and optional caller id)."""
    out = []
    for i, line in enumerate(text.strip("\n").split("\n")):
        stamp = f"[{start + i * 0.000011:12.6f}]"
        if caller:
            stamp += f"[{caller:>6}]"
        out.append(f"{stamp} {line}")
    return "\n".join(out) + "\n"


def bugs(text: str | bytes) -> list:
    return [r for r in parse(text) if r.severity == "bug"]


def first(text: str | bytes):
    reports = parse(text)
    assert reports, "no report found"
    return reports[0]


KASAN = """\
==================================================================
BUG: KASAN: use-after-free in e1000_clean_tx_irq+0x9b/0x4a0 [e1000e]
Read of size 8 at addr ffff888012345678 by task swapper/0/0

CPU: 0 PID: 0 Comm: swapper/0 Tainted: G           O       6.1.0 #1
Hardware name: QEMU Standard PC (Q35 + ICH9, 2009), BIOS 1.16.2 04/01/2014
Call Trace:
 <IRQ>
 dump_stack_lvl+0x45/0x5e
 print_report+0x17f/0x47b
 kasan_report+0xbb/0xf0
 e1000_clean_tx_irq+0x9b/0x4a0 [e1000e]
 e1000_clean+0x5a/0x1f0 [e1000e]
 __napi_poll+0x28/0x160
 net_rx_action+0x29e/0x350
 __do_softirq+0xc5/0x2c8
 </IRQ>

Allocated by task 1:
 kasan_save_stack+0x1e/0x40
 __kasan_kmalloc+0x7f/0x90
 e1000_setup_tx_resources+0x4a/0x140 [e1000e]

Freed by task 250:
 kasan_save_stack+0x1e/0x40
 kfree+0x91/0x1c0
 e1000_free_tx_resources+0x2c/0x70 [e1000e]
==================================================================
"""

WARNING = """\
------------[ cut here ]------------
WARNING: CPU: 1 PID: 123 at drivers/net/ethernet/intel/e1000e/netdev.c:4321 e1000e_down+0x1a/0x40 [e1000e]
Modules linked in: e1000e(O)
CPU: 1 PID: 123 Comm: ip Tainted: G           O       6.1.0 #1
Hardware name: QEMU Standard PC (Q35 + ICH9, 2009), BIOS 1.16.2 04/01/2014
RIP: 0010:e1000e_down+0x1a/0x40 [e1000e]
Code: 48 89 e5 41 54 53 48 8b 9f 40 09 00 00 <0f> 0b 5b 41 5c 5d c3
RSP: 0018:ffffc90000abfd20 EFLAGS: 00010246
RAX: 0000000000000000 RBX: ffff888003a1c000 RCX: 0000000000000000
Call Trace:
 <TASK>
 e1000_close+0x35/0x90 [e1000e]
 __dev_close_many+0xa0/0x110
 __dev_change_flags+0x1a0/0x220
 dev_change_flags+0x21/0x60
 </TASK>
---[ end trace 0000000000000000 ]---
"""

LOCKDEP = """\
======================================================
WARNING: possible circular locking dependency detected
6.1.0 #1 Tainted: G           O
------------------------------------------------------
kworker/0:1/12 is trying to acquire lock:
ffff888003a1c0e8 (&adapter->lock){+.+.}-{3:3}, at: e1000_reset_task+0x20/0x80 [e1000e]

but task is already holding lock:
ffffffff82a0f4a8 (rtnl_mutex){+.+.}-{3:3}, at: rtnl_lock+0x15/0x20

which lock already depends on the new lock.

the existing dependency chain (in reverse order) is:

-> #1 (rtnl_mutex){+.+.}-{3:3}:
       __mutex_lock+0x8b/0x870
       e1000_open+0x30/0x90 [e1000e]

other info that might help us debug this:

stack backtrace:
CPU: 0 PID: 12 Comm: kworker/0:1 Tainted: G           O       6.1.0 #1
Call Trace:
 <TASK>
 dump_stack_lvl+0x45/0x5e
 check_noncircular+0xfe/0x110
 __lock_acquire+0x1237/0x2000
 lock_acquire+0xc2/0x2b0
 __mutex_lock+0x8b/0x870
 e1000_reset_task+0x20/0x80 [e1000e]
 process_one_work+0x1c4/0x380
 </TASK>
"""

SLEEP_IN_ATOMIC = """\
BUG: sleeping function called from invalid context at kernel/locking/mutex.c:580
in_atomic(): 1, irqs_disabled(): 0, non_block: 0, pid: 0, name: swapper/0
preempt_count: 101, expected: 0
CPU: 0 PID: 0 Comm: swapper/0 Tainted: G        W  O       6.1.0 #1
Call Trace:
 <IRQ>
 dump_stack_lvl+0x45/0x5e
 __might_resched.cold+0xcc/0xdd
 mutex_lock+0x1a/0x40
 ktest_nic_watchdog+0x2c/0x100 [ktest_nic]
 call_timer_fn+0x24/0x120
 </IRQ>
"""

NULL_DEREF = """\
BUG: kernel NULL pointer dereference, address: 0000000000000010
#PF: supervisor read access in kernel mode
#PF: error_code(0x0000) - not-present page
PGD 0 P4D 0
Oops: 0000 [#1] PREEMPT SMP NOPTI
CPU: 1 PID: 0 Comm: swapper/1 Tainted: G           O       6.1.0 #1
Hardware name: QEMU Standard PC (Q35 + ICH9, 2009), BIOS 1.16.2 04/01/2014
RIP: 0010:ktest_nic_poll+0x15/0x60 [ktest_nic]
Code: 00 00 00 55 48 89 e5 41 54 53 48 8b 47 10 <48> 8b 40 10 c3
RSP: 0018:ffffc90000003ee8 EFLAGS: 00010246
Call Trace:
 <IRQ>
 __napi_poll+0x28/0x160
 net_rx_action+0x29e/0x350
 __do_softirq+0xc5/0x2c8
 </IRQ>
Modules linked in: ktest_nic(O)
CR2: 0000000000000010
---[ end trace 0000000000000000 ]---
Kernel panic - not syncing: Fatal exception in interrupt
Kernel Offset: disabled
---[ end Kernel panic - not syncing: Fatal exception in interrupt ]---
"""

GPF = """\
general protection fault, probably for non-canonical address 0xdffffc0000000001: 0000 [#1] PREEMPT SMP KASAN
KASAN: null-ptr-deref in range [0x0000000000000008-0x000000000000000f]
CPU: 0 PID: 1 Comm: swapper/0 Not tainted 6.1.0 #1
RIP: 0010:e1000_probe+0x123/0x900 [e1000e]
Code: 48 89 df e8 00 00 00 00 <80> 3c 02 00 0f 85 00 00 00 00
Call Trace:
 <TASK>
 local_pci_probe+0x40/0x80
 pci_device_probe+0xb9/0x1e0
 </TASK>
"""

PAGING = """\
BUG: unable to handle page fault for address: ffffc90000a00000
#PF: supervisor write access in kernel mode
#PF: error_code(0x0002) - not-present page
Oops: 0002 [#1] PREEMPT SMP
CPU: 0 PID: 77 Comm: ip Tainted: G           O       6.1.0 #1
RIP: 0010:ktest_nic_write_reg+0x8/0x20 [ktest_nic]
Call Trace:
 <TASK>
 ktest_nic_open+0x40/0x100 [ktest_nic]
 __dev_open+0xe6/0x190
 </TASK>
"""

HUNG_TASK = """\
INFO: task kworker/0:1:12 blocked for more than 120 seconds.
      Tainted: G           O       6.1.0 #1
"echo 0 > /proc/sys/kernel/hung_task_timeout_secs" disables this message.
task:kworker/0:1     state:D stack:0     pid:12    ppid:2      flags:0x00004000
Workqueue: events ktest_nic_reset_task [ktest_nic]
Call Trace:
 <TASK>
 __schedule+0x2f0/0x950
 schedule+0x5d/0xd0
 schedule_preempt_disabled+0x11/0x20
 __mutex_lock.constprop.0+0x3a0/0x6a0
 ktest_nic_reset_task+0x20/0x80 [ktest_nic]
 process_one_work+0x1c4/0x380
 worker_thread+0x4d/0x380
 kthread+0xe9/0x110
 ret_from_fork+0x22/0x30
 </TASK>
"""

RCU_STALL = """\
rcu: INFO: rcu_preempt self-detected stall on CPU
rcu: \t0-....: (20999 ticks this GP) idle=b3c/1/0x4000000000000000 softirq=1201/1201 fqs=5031
\t(t=21000 jiffies g=2149 q=1234 ncpus=2)
NMI backtrace for cpu 0
CPU: 0 PID: 345 Comm: ktest-tx Tainted: G           O       6.1.0 #1
Call Trace:
 <IRQ>
 dump_stack_lvl+0x45/0x5e
 nmi_cpu_backtrace.cold+0x30/0x70
 rcu_dump_cpu_stacks+0xe6/0x130
 rcu_sched_clock_irq.cold+0x56/0x2c5
 update_process_times+0x5c/0x90
 tick_sched_timer+0x65/0x80
 __hrtimer_run_queues+0x10f/0x2a0
 hrtimer_interrupt+0x106/0x220
 __sysvec_apic_timer_interrupt+0x51/0xd0
 sysvec_apic_timer_interrupt+0x6d/0x90
 </IRQ>
 <TASK>
 asm_sysvec_apic_timer_interrupt+0x16/0x20
RIP: 0010:ktest_nic_spin+0x10/0x20 [ktest_nic]
Code: 90 90 90 f3 90 eb fc <90> 90
RSP: 0018:ffffc90000b1fd00 EFLAGS: 00000246
 ktest_nic_xmit+0x4a/0x90 [ktest_nic]
 dev_hard_start_xmit+0x8d/0x1d0
 __dev_queue_xmit+0x7f0/0xb70
 packet_sendmsg+0x1a2/0x1b60
 __sys_sendto+0x106/0x160
 __x64_sys_sendto+0x20/0x30
 do_syscall_64+0x35/0x80
 entry_SYSCALL_64_after_hwframe+0x63/0xcd
 </TASK>
"""

SOFT_LOCKUP = """\
watchdog: BUG: soft lockup - CPU#1 stuck for 22s! [ktest-tx:345]
Modules linked in: ktest_nic(O)
CPU: 1 PID: 345 Comm: ktest-tx Tainted: G           O L     6.1.0 #1
RIP: 0010:ktest_nic_spin+0x10/0x20 [ktest_nic]
Code: 90 90 90 f3 90 eb fc <90> 90
RSP: 0018:ffffc90000b1fd00 EFLAGS: 00000246
Call Trace:
 <TASK>
 ktest_nic_xmit+0x4a/0x90 [ktest_nic]
 dev_hard_start_xmit+0x8d/0x1d0
 __dev_queue_xmit+0x7f0/0xb70
 __sys_sendto+0x106/0x160
 __x64_sys_sendto+0x20/0x30
 do_syscall_64+0x35/0x80
 entry_SYSCALL_64_after_hwframe+0x63/0xcd
 </TASK>
"""

HARD_LOCKUP = """\
NMI watchdog: Watchdog detected hard LOCKUP on cpu 1
Modules linked in: ktest_nic(O)
CPU: 1 PID: 0 Comm: swapper/1 Tainted: G           O       6.1.0 #1
RIP: 0010:ktest_nic_irq_spin+0x8/0x20 [ktest_nic]
RSP: 0018:ffffc90000128f00 EFLAGS: 00000046
Call Trace:
 <IRQ>
 __handle_irq_event_percpu+0x46/0x190
 handle_irq_event+0x34/0x70
 </IRQ>
"""

WQ_LOCKUP = """\
BUG: workqueue lockup - pool cpus=0 node=0 flags=0x0 nice=0 stuck for 45s!
Showing busy workqueues and worker pools:
workqueue events: flags=0x0
  pwq 0: cpus=0 node=0 flags=0x0 nice=0 active=2/256 refcnt=3
    in-flight: 12:ktest_nic_reset_task [ktest_nic]
"""

KMEMLEAK = """\
kmemleak: unreferenced object 0xffff888005e2c000 (size 2048):
kmemleak:   comm "insmod", pid 210, jiffies 4294893250 (age 21.320s)
kmemleak:   hex dump (first 32 bytes):
kmemleak:     00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00  ................
kmemleak:   backtrace:
kmemleak:     [<00000000f2c1a7b5>] __kmalloc+0x4b/0x140
kmemleak:     [<000000003a5c3d0e>] ktest_nic_alloc_ring+0x2a/0x90 [ktest_nic]
kmemleak:     [<0000000096b8c5a4>] ktest_nic_open+0x40/0x100 [ktest_nic]
kmemleak:     [<00000000d4a21a6c>] __dev_open+0xe6/0x190
kmemleak: 1 new suspected memory leaks (see /sys/kernel/debug/kmemleak)
"""

REFCOUNT = """\
------------[ cut here ]------------
refcount_t: underflow; use-after-free.
WARNING: CPU: 0 PID: 321 at lib/refcount.c:28 refcount_warn_saturate+0xba/0x110
Modules linked in: ktest_nic(O)
CPU: 0 PID: 321 Comm: rmmod Tainted: G           O       6.1.0 #1
RIP: 0010:refcount_warn_saturate+0xba/0x110
Call Trace:
 <TASK>
 ktest_nic_release+0x50/0x70 [ktest_nic]
 pci_device_remove+0x3b/0xb0
 </TASK>
"""

DMA_MAP_ERROR = """\
------------[ cut here ]------------
DMA-API: e1000e 0000:00:02.0: device driver failed to check map error[device address=0x0000000012340000] [size=1514 bytes] [mapped as single]
WARNING: CPU: 0 PID: 0 at kernel/dma/debug.c:1027 check_unmap+0x6a4/0x8d0
Modules linked in: e1000e
CPU: 0 PID: 0 Comm: swapper/0 Not tainted 6.1.0 #1
RIP: 0010:check_unmap+0x6a4/0x8d0
Code: 4c 89 ef e8 00 00 00 00 <0f> 0b 48 83 c4 20
Call Trace:
 <IRQ>
 debug_dma_unmap_page+0x7c/0x90
 e1000_clean_tx_irq+0x1b2/0x4a0 [e1000e]
 e1000e_poll+0x7d/0x2e0 [e1000e]
 __napi_poll+0x28/0x160
 </IRQ>
---[ end trace 0000000000000000 ]---
"""

DMA_PENDING = """\
------------[ cut here ]------------
DMA-API: ktest_nic 0000:00:04.0: device driver has pending DMA allocations while released from device [count=12]
One of leaked entries details: [device address=0x0000000002a40000] [size=2048 bytes] [mapped with DMA_FROM_DEVICE] [mapped as single]
WARNING: CPU: 1 PID: 400 at kernel/dma/debug.c:868 dma_debug_device_change+0x16a/0x1f0
Modules linked in: ktest_nic(O-)
CPU: 1 PID: 400 Comm: rmmod Tainted: G           O       6.1.0 #1
RIP: 0010:dma_debug_device_change+0x16a/0x1f0
Call Trace:
 <TASK>
 blocking_notifier_call_chain+0x60/0x80
 device_release_driver_internal+0x1b9/0x240
 driver_detach+0x44/0x90
 </TASK>
"""

DMAR = """\
e1000e 0000:00:03.0: enabling device (0000 -> 0003)
DMAR: DRHD: handling fault status reg 2
DMAR: [DMA Read NO_PASID] Request device [00:03.0] fault addr 0xfffff000 [fault reason 0x06] PTE Read access is not set
"""

WATCHDOG_61 = "e1000e 0000:00:03.0 eth0: NETDEV WATCHDOG: CPU: 1: transmit queue 0 timed out 5120 ms\n"

WATCHDOG_OLD = """\
------------[ cut here ]------------
NETDEV WATCHDOG: eth1 (e1000e): transmit queue 0 timed out
WARNING: CPU: 0 PID: 0 at net/sched/sch_generic.c:525 dev_watchdog+0x21f/0x230
Modules linked in: e1000e
RIP: 0010:dev_watchdog+0x21f/0x230
Call Trace:
 <IRQ>
 call_timer_fn+0x24/0x120
 run_timer_softirq+0x3b1/0x410
 </IRQ>
"""

UNREGISTER = """\
unregister_netdevice: waiting for eth0 to become free. Usage count = 2
leaked reference.
 ref_tracker_alloc+0x6d/0x110
 netdev_hold+0x2b/0x40
 ktest_nic_open+0x40/0x100 [ktest_nic]
 __dev_open+0xe6/0x190
"""

REF_TRACKER = """\
leaked reference.
 ref_tracker_alloc+0x6d/0x110
 netdev_hold+0x2b/0x40
 ktest_nic_start_queue+0x31/0x80 [ktest_nic]
 __dev_open+0xe6/0x190
------------[ cut here ]------------
WARNING: CPU: 0 PID: 99 at lib/ref_tracker.c:38 ref_tracker_dir_exit+0x10e/0x140
Modules linked in: ktest_nic(O-)
RIP: 0010:ref_tracker_dir_exit+0x10e/0x140
Call Trace:
 <TASK>
 free_netdev+0x113/0x1c0
 ktest_nic_remove+0x55/0x70 [ktest_nic]
 </TASK>
"""

AER_OK = """\
pcieport 0000:00:1c.0: AER: Uncorrected (Non-Fatal) error received: 0000:01:00.0
e1000e 0000:01:00.0: AER: PCIe Bus Error: severity=Uncorrected (Non-Fatal), type=Transaction Layer, (Requester ID)
e1000e 0000:01:00.0: AER:   device [8086:10d3] error status/mask=00004000/00000000
e1000e 0000:01:00.0: AER:    [14] CmpltTO                (First)
e1000e 0000:01:00.0: AER: can't recover (no error_detected callback)
pcieport 0000:00:1c.0: AER: device recovery successful
"""

AER_CORRECTED = """\
pcieport 0000:00:1c.0: AER: Corrected error received: 0000:01:00.0
e1000e 0000:01:00.0: PCIe Bus Error: severity=Corrected, type=Physical Layer, (Receiver ID)
e1000e 0000:01:00.0:   device [8086:10d3] error status/mask=00000001/00002000
e1000e 0000:01:00.0:    [ 0] RxErr
"""

FAULT_INJECTION = """\
FAULT_INJECTION: forcing a failure.
name failslab, interval 1, probability 0, space 0, times 0
CPU: 0 PID: 123 Comm: ip Tainted: G           O       6.1.0 #1
Call Trace:
 <TASK>
 dump_stack_lvl+0x45/0x5e
 should_fail.cold+0x5/0xa
 should_failslab+0x5/0x10
 __kmalloc+0x6b/0x140
 ktest_nic_alloc_ring+0x2a/0x90 [ktest_nic]
 ktest_nic_open+0x40/0x100 [ktest_nic]
 </TASK>
"""

UBSAN = """\
================================================================================
UBSAN: array-index-out-of-bounds in drivers/net/ethernet/ktest/ktest_nic.c:120:10
index 8 is out of range for type 'u32 [8]'
CPU: 0 PID: 1 Comm: swapper/0 Not tainted 6.1.0 #1
Call Trace:
 <TASK>
 dump_stack_lvl+0x45/0x5e
 ubsan_epilogue+0x5/0x40
 __ubsan_handle_out_of_bounds.cold+0x44/0x49
 ktest_nic_set_rx_mode+0x1a4/0x1b0 [ktest_nic]
 __dev_set_rx_mode+0x5b/0xb0
 </TASK>
================================================================================
"""

KFENCE = """\
==================================================================
BUG: KFENCE: use-after-free read in ktest_nic_poll+0x20/0x60 [ktest_nic]

Use-after-free read at 0x000000006e7d6d7c (in kfence-#12):
 ktest_nic_poll+0x20/0x60 [ktest_nic]
 __napi_poll+0x28/0x160
 net_rx_action+0x29e/0x350

kfence-#12: 0x000000006e7d6d7c-0x00000000b8b2ddc3, size=64, cache=kmalloc-64

CPU: 0 PID: 0 Comm: swapper/0 Tainted: G           O       6.1.0 #1
==================================================================
"""

SCHED_ATOMIC = """\
BUG: scheduling while atomic: ktest-tx/345/0x00000002
Modules linked in: ktest_nic(O)
CPU: 1 PID: 345 Comm: ktest-tx Tainted: G           O       6.1.0 #1
Call Trace:
 <TASK>
 dump_stack_lvl+0x45/0x5e
 __schedule_bug.cold+0x6c/0x80
 __schedule+0x6f8/0x950
 schedule+0x5d/0xd0
 ktest_nic_wait_tx+0x4a/0x90 [ktest_nic]
 </TASK>
"""

KERNEL_BUG = """\
------------[ cut here ]------------
kernel BUG at drivers/net/ethernet/ktest/ktest_nic.c:310!
invalid opcode: 0000 [#1] PREEMPT SMP
CPU: 0 PID: 77 Comm: ip Tainted: G           O       6.1.0 #1
RIP: 0010:ktest_nic_fill_ring+0x90/0xa0 [ktest_nic]
Call Trace:
 <TASK>
 ktest_nic_open+0x40/0x100 [ktest_nic]
 </TASK>
"""

LINK = """\
e1000e 0000:00:03.0 eth0: NIC Link is Down
e1000e 0000:00:03.0 eth0: NIC Link is Up 1000 Mbps Full Duplex, Flow Control: Rx/Tx
IPv6: ADDRCONF(NETDEV_CHANGE): eth0: link becomes ready
r8169 0000:02:00.0 enp2s0: Link is Up - 1Gbps/Full - flow control rx/tx
"""

NOISE = """\
Linux version 6.1.0 (builder@host) (gcc (Debian 12.2.0-14) 12.2.0) #1 SMP PREEMPT_DYNAMIC
Command line: console=ttyS0 panic_on_warn=0 kmemleak=on
e1000e: Intel(R) PRO/1000 Network Driver
e1000e 0000:00:03.0: Interrupt Throttling Rate (ints/sec) set to dynamic conservative mode
DMA-API: preallocated 65536 debug entries
DMA-API: debugging enabled by kernel config
pcieport 0000:00:1c.0: AER: enabled with IRQ 24
random: crng init done
systemd[1]: Started Journal Service.
"""


@pytest.mark.parametrize(
    ("snippet", "title", "kind"),
    [
        (KASAN, "KASAN: use-after-free Read in e1000_clean_tx_irq", Kind.KASAN),
        (WARNING, "WARNING in e1000e_down", Kind.WARNING),
        (LOCKDEP, "possible deadlock in e1000_reset_task", Kind.LOCKDEP),
        (
            SLEEP_IN_ATOMIC,
            "BUG: sleeping function called from invalid context in ktest_nic_watchdog",
            Kind.SLEEP_IN_ATOMIC,
        ),
        (SCHED_ATOMIC, "BUG: scheduling while atomic in ktest_nic_wait_tx", Kind.SLEEP_IN_ATOMIC),
        (
            NULL_DEREF,
            "BUG: unable to handle kernel NULL pointer dereference in ktest_nic_poll",
            Kind.NULL_DEREF,
        ),
        (GPF, "general protection fault in e1000_probe", Kind.GPF),
        (
            PAGING,
            "BUG: unable to handle kernel paging request in ktest_nic_write_reg",
            Kind.PAGING_FAULT,
        ),
        (HUNG_TASK, "INFO: task hung in ktest_nic_reset_task", Kind.HUNG_TASK),
        (RCU_STALL, "INFO: rcu detected stall in ktest_nic_spin", Kind.RCU_STALL),
        (SOFT_LOCKUP, "BUG: soft lockup in ktest_nic_spin", Kind.SOFT_LOCKUP),
        (HARD_LOCKUP, "BUG: hard lockup in ktest_nic_irq_spin", Kind.HARD_LOCKUP),
        (WQ_LOCKUP, "BUG: workqueue lockup", Kind.WQ_LOCKUP),
        (KMEMLEAK, "memory leak in ktest_nic_alloc_ring", Kind.MEMORY_LEAK),
        (REFCOUNT, "WARNING: refcount bug in ktest_nic_release", Kind.REFCOUNT),
        (
            DMA_MAP_ERROR,
            "DMA-API: device driver failed to check map error in e1000_clean_tx_irq",
            Kind.DMA_API,
        ),
        (
            DMA_PENDING,
            "DMA-API: device driver has pending DMA allocations while released from device"
            " in ktest_nic",
            Kind.DMA_API,
        ),
        (DMAR, "DMAR: DMA Read fault in e1000e: PTE Read access is not set", Kind.IOMMU_FAULT),
        (WATCHDOG_61, "NETDEV WATCHDOG: transmit queue timed out in e1000e", Kind.NETDEV_WATCHDOG),
        (WATCHDOG_OLD, "NETDEV WATCHDOG: transmit queue timed out in e1000e", Kind.NETDEV_WATCHDOG),
        (
            UNREGISTER,
            "unregister_netdevice: waiting for DEV to become free",
            Kind.UNREGISTER_NETDEVICE,
        ),
        (
            REF_TRACKER,
            "ref_tracker: net device leaked reference in ktest_nic_start_queue",
            Kind.UNREGISTER_NETDEVICE,
        ),
        (UBSAN, "UBSAN: array-index-out-of-bounds in ktest_nic_set_rx_mode", Kind.UBSAN),
        (KFENCE, "KFENCE: use-after-free read in ktest_nic_poll", Kind.KFENCE),
        (KERNEL_BUG, "kernel BUG in ktest_nic_fill_ring", Kind.BUG),
    ],
)
def test_bug_kinds(snippet: str, title: str, kind: Kind) -> None:
    for text in (snippet, ts(snippet), ts(snippet, caller="T345")):
        found = bugs(NOISE + text + NOISE)
        assert len(found) == 1, [r.title for r in found]
        r = found[0]
        assert r.title == title
        assert r.kind is kind
        assert r.severity == "bug"


def test_one_report_per_snippet_and_offsets() -> None:
    data = (ts(NOISE) + ts(KASAN, 30) + ts(NOISE, 31) + ts(WARNING, 40)).encode()
    reports = parse(data)
    assert [r.title for r in reports] == [
        "KASAN: use-after-free Read in e1000_clean_tx_irq",
        "WARNING in e1000e_down",
    ]
    k, w = reports
    assert data[k.start :].startswith(b"[")
    assert b"BUG: KASAN: use-after-free" in data[k.start : k.end]
    assert b"Freed by task" in data[k.start : k.end]
    assert b"systemd" not in data[k.start : k.end]
    assert k.end <= w.start
    assert data[w.start : w.end].rstrip().endswith(b"---[ end trace 0000000000000000 ]---")


def test_report_fields() -> None:
    r = first(ts(KASAN))
    assert r.frame == "e1000_clean_tx_irq"
    assert r.modules == ("e1000e",)
    assert r.taint == "GO"
    assert not r.corrupted and r.corrupted_reason is None
    assert r.text.startswith("==========") is False
    assert r.text.startswith("BUG: KASAN: use-after-free in e1000_clean_tx_irq")
    assert "[" not in r.text.split("\n")[1][:3]  # timestamps stripped
    d = r.to_dict()
    assert d["kind"] == "KASAN" and d["severity"] == "bug"
    json.dumps(d)
    assert first(GPF).taint == ""  # "Not tainted"
    assert first(NULL_DEREF).modules == ("ktest_nic",)


def test_panic_after_oops_is_folded() -> None:
    reports = parse(ts(NULL_DEREF))
    assert [r.title for r in reports] == [
        "BUG: unable to handle kernel NULL pointer dereference in ktest_nic_poll"
    ]
    assert b"Kernel panic" in ts(NULL_DEREF).encode()[reports[0].start : reports[0].end]


def test_panic_alone() -> None:
    r = first(
        ts(
            "VFS: Cannot open root device \"vda\" or unknown-block(0,0): error -6\n"
            "Kernel panic - not syncing: VFS: Unable to mount root fs on unknown-block(0,0)\n"
            "CPU: 0 PID: 1 Comm: swapper/0 Not tainted 6.1.0 #1\n"
            "Call Trace:\n <TASK>\n dump_stack_lvl+0x45/0x5e\n panic+0x118/0x2f0\n"
            " mount_block_root+0x1d3/0x1e6\n prepare_namespace+0x136/0x165\n"
        )
    )
    assert r.title == "kernel panic: VFS: Unable to mount root fs on unknown-block(NUM,NUM)"
    assert r.kind is Kind.PANIC


@pytest.mark.parametrize(
    ("snippet", "titles"),
    [
        (AER_OK, ["AER: recovery successful"]),
        (AER_CORRECTED, ["AER: corrected error in e1000e"]),
        (
            LINK,
            [
                "NIC Link is Down on eth0",
                "NIC Link is Up on eth0",
                "link becomes ready on eth0",
                "NIC Link is Up on enp2s0",
            ],
        ),
        (FAULT_INJECTION, ["FAULT_INJECTION: failslab in ktest_nic_alloc_ring"]),
        # fail-nth with verbose=1 (ktest's sweeps): no stack, so no frame
        (FAULT_INJECTION.split("CPU:")[0], ["FAULT_INJECTION: failslab"]),
    ],
)
def test_events(snippet: str, titles: list[str]) -> None:
    for text in (snippet, ts(snippet)):
        reports = parse(NOISE + text)
        assert [r.title for r in reports] == titles
        assert all(r.severity == "event" for r in reports)
        verdict = judge(NOISE + text)
        assert verdict.passed
        assert [r.title for r in verdict.events] == titles


def test_event_kinds() -> None:
    assert {r.kind for r in parse(LINK)} == {Kind.LINK_CHANGE}
    assert first(AER_OK).kind is Kind.AER
    assert first(FAULT_INJECTION).kind is Kind.FAULT_INJECTION
    assert first(FAULT_INJECTION).frame == "ktest_nic_alloc_ring"


def test_aer_recovery_with_a_link_event_in_between() -> None:
    # a fatal error's recovery brings links up before the root port says
    # how it went: still one AER event, and a successful one
    lines = AER_OK.splitlines(keepends=True)
    link_up = "igb 0000:01:00.0 eth1: igb: eth1 NIC Link is Up 1000 Mbps Full Duplex\n"
    text = "".join(lines[:-1]) + link_up + lines[-1]
    for t in (text, ts(text)):
        reports = parse(NOISE + t)
        assert sorted(r.title for r in reports) == ["AER: recovery successful",
                                                    "NIC Link is Up on eth1"]
        assert judge(NOISE + t).passed


def test_aer_recovery_failed_is_a_bug() -> None:
    text = AER_OK.replace("device recovery successful", "device recovery failed")
    r = first(ts(text))
    assert r.title == "AER: recovery failed"
    assert r.severity == "bug"
    assert not judge(ts(text)).passed


def test_fault_injection_does_not_hide_later_bug() -> None:
    reports = parse(ts(FAULT_INJECTION) + ts(KASAN, 40))
    assert [r.severity for r in reports] == ["event", "bug"]  # log order
    found, events = bugs_and_events(reports)
    assert [r.kind for r in found] == [Kind.KASAN]
    assert [r.kind for r in events] == [Kind.FAULT_INJECTION]


def test_kmemleak_summary_alone() -> None:
    r = first("kmemleak: 3 new suspected memory leaks (see /sys/kernel/debug/kmemleak)\n")
    assert r.kind is Kind.MEMORY_LEAK and r.severity == "bug"


def test_nothing_in_clean_boot_log() -> None:
    assert parse(NOISE) == []
    assert parse(ts(NOISE)) == []
    assert parse(b"") == []
    boot = (
        "SeaBIOS (version 1.16.2)\nBooting from ROM..\n"
        "early console in extract_kernel\nDecompressing Linux... Parsing ELF... done.\n"
        "Booting the kernel.\n" + ts(NOISE)
    )
    assert parse(boot) == []


def test_reboot_in_the_middle_of_a_log() -> None:
    log = ts(NOISE) + "SeaBIOS (version 1.16.2)\nBooting the kernel.\n" + ts(NOISE, 0.0)
    r = first(log)
    assert r.title == "unexpected kernel reboot" and r.kind is Kind.REBOOT


# --- prefixes --------------------------------------------------------------------------

HOST_FORMS = [
    lambda i: f"09:10:{11 + i // 100:02d}.{i * 37 % 1000000:06d} ",
    lambda i: f"2026-11-24T09:10:11.{i:06d} ",
    lambda i: f"[+{12.345678 + i / 1000:.6f}] ",
    lambda i: f"[2026-11-24 09:10:11.{i:06d}] ",
]


def host_prefixed(text: str, form) -> str:
    return "".join(form(i) + line + "\n" for i, line in enumerate(text.rstrip("\n").split("\n")))


@pytest.mark.parametrize("form", HOST_FORMS)
@pytest.mark.parametrize("caller", [None, "T345", "C1"])
def test_host_timestamps_give_identical_titles(form, caller) -> None:
    log = ts(NOISE) + ts(KASAN, 30, caller) + ts(LOCKDEP, 40, caller) + ts(LINK, 50)
    log += ts(DMA_MAP_ERROR, 60, caller) + ts(HUNG_TASK, 70, caller)
    plain = [(r.title, r.corrupted, r.frame, r.modules) for r in parse(log)]
    assert len(plain) == 8
    stamped = [(r.title, r.corrupted, r.frame, r.modules) for r in parse(host_prefixed(log, form))]
    assert stamped == plain
    assert all(not c for _, c, _, _ in plain)


def test_logs_without_kernel_timestamps_and_syslog_levels() -> None:
    raw = [r.title for r in parse(KASAN + WARNING)]
    leveled = "".join(f"<4>{line}\n" for line in ts(KASAN + WARNING).splitlines())
    assert [r.title for r in parse(leveled)] == raw == [
        "KASAN: use-after-free Read in e1000_clean_tx_irq",
        "WARNING in e1000e_down",
    ]


def test_strip_prefixes() -> None:
    assert strip_prefixes("[   12.345678] BUG: foo") == "BUG: foo"
    assert strip_prefixes("[   12.345678][  T123] BUG: foo\n") == "BUG: foo"
    assert strip_prefixes("[   12.345678][    C1] BUG: foo") == "BUG: foo"
    assert strip_prefixes("09:10:11.123456 [   12.345678] BUG: foo") == "BUG: foo"
    assert strip_prefixes("2026-11-24T09:10:11.123456 [   12.345678] BUG: foo") == "BUG: foo"
    assert strip_prefixes("[+12.345678] [   12.345678] BUG: foo") == "BUG: foo"
    assert strip_prefixes("09:10:11.123456 BUG: foo") == "BUG: foo"
    assert strip_prefixes(b"<4>[   12.345678] BUG: foo\r\n") == "BUG: foo"
    assert strip_prefixes("BUG: foo") == "BUG: foo"
    assert split_prefix("[   12.345678][  T123] x") == ("T123", "x")
    assert split_prefix("[   12.345678] x") == ("console", "x")
    assert split_prefix("x") == ("", "x")


def test_interleaved_tasks_are_separated() -> None:
    kasan = ts(KASAN, 30, "T100").splitlines()
    other = ts("sshd[412]: Accepted publickey for root\n" * len(kasan), 30, "T412").splitlines()
    mixed = "\n".join(x for pair in zip(kasan, other, strict=True) for x in pair) + "\n"
    r = first(mixed)
    assert r.title == "KASAN: use-after-free Read in e1000_clean_tx_irq"
    assert "sshd" not in r.text


def test_corrupted_report_without_trace() -> None:
    text = ts("BUG: unable to handle page fault for address: ffffc90000a00000\n") + ts(NOISE, 21)
    r = first(text)
    assert r.corrupted
    assert r.title == "BUG: unable to handle kernel paging request in corrupted"
    assert r.frame is None


def test_title_normalisation() -> None:
    r = first(
        ts(
            "BUG: Bad rss-counter state mm:00000000c2f0cb2a type:MM_ANONPAGES val:1\n"
            "BUG: workqueue lockup - pool cpus=1 node=0 flags=0x0 nice=0 stuck for 33s!\n"
        )
    )
    assert r.title == "BUG: Bad rss-counter state"
    r = first("WARNING: CPU: 3 PID: 4242 at net/core/dev.c:1234 dev_foo.isra.0+0x1/0x2\n")
    assert r.title.startswith("WARNING in ")
    assert "4242" not in r.title


# --- verdict policy ---------------------------------------------------------------------


def test_judge_default_fails_on_bugs() -> None:
    v = judge(ts(KASAN) + ts(LINK, 30))
    assert not v.passed
    assert [r.kind for r in v.failing] == [Kind.KASAN]
    assert len(v.events) == 4
    assert "KASAN" in v.summary()


def test_judge_allow_regex_and_kind() -> None:
    log = ts(KASAN) + ts(WARNING, 30)
    assert not judge(log, allow=["^KASAN: "]).passed
    v = judge(log, allow=["^KASAN: ", re.compile(r"WARNING in e1000e_down")])
    assert v.passed and len(v.allowed) == 2
    v = judge(log, allow=[Kind.KASAN, Kind.WARNING])
    assert v.passed
    assert judge(b"").passed


def test_judge_fail_kinds() -> None:
    log = ts(KASAN) + ts(LINK, 30)
    assert judge(log, fail_kinds={Kind.WARNING}).passed
    v = judge(log, fail_kinds={Kind.LINK_CHANGE})
    assert not v.passed and all(r.kind is Kind.LINK_CHANGE for r in v.failing)
    assert judge(parse(log), allow=[Kind.KASAN]).passed


# --- CLI --------------------------------------------------------------------------------


def test_run_parse_text_and_json(tmp_path) -> None:
    a = tmp_path / "a.log"
    a.write_text(ts(NOISE) + ts(LINK, 10) + ts(KASAN, 30) + ts(LINK, 40))
    b = tmp_path / "b.log"
    b.write_text(ts(NOISE))
    out = io.StringIO()
    assert run_parse([str(a), str(b)], as_json=False, out=out) == 1
    text = out.getvalue().splitlines()
    assert text[0] == f"{a}: 1 bug, 4 events"
    assert text[1].startswith("  bug   [") and "KASAN: use-after-free Read in e1000_clean_tx_irq" in text[1]
    assert "link becomes ready on eth0" in text[4] and "count=2" in text[4]
    assert f"{b}: 0 bugs, 0 events" in text
    out = io.StringIO()
    assert run_parse([str(a), str(b)], as_json=True, out=out) == 1
    data = json.loads(out.getvalue())
    assert data[0]["path"] == str(a)
    (bug,) = data[0]["bugs"]
    assert bug["kind"] == "KASAN" and bug["modules"] == ["e1000e"] and bug["count"] == 1
    assert [e["title"] for e in data[0]["events"]] == [
        "NIC Link is Down on eth0",
        "NIC Link is Up on eth0",
        "link becomes ready on eth0",
        "NIC Link is Up on enp2s0",
    ]
    assert [e["count"] for e in data[0]["events"]] == [2, 2, 2, 2]
    assert {e["severity"] for e in data[0]["events"]} == {"event"}
    assert data[1] == {"path": str(b), "bugs": [], "events": []}


def test_run_parse_exit_status_and_fail_on(tmp_path) -> None:
    clean = tmp_path / "clean.log"
    clean.write_text(ts(NOISE) + ts(LINK, 10))
    bug = tmp_path / "bug.log"
    bug.write_text(ts(KASAN, 30))
    sink = io.StringIO()
    assert run_parse([str(clean)], out=sink) == 0
    assert run_parse([str(clean), str(bug)], out=sink) == 1
    assert run_parse([str(bug)], out=sink, fail_on="WARNING") == 0
    assert run_parse([str(bug)], out=sink, fail_on="warning,kasan") == 1
    assert run_parse([str(clean)], out=sink, fail_on="LINK_CHANGE") == 1
    assert run_parse([str(clean)], out=sink, fail_on="bug,LINK_CHANGE") == 1


def test_run_parse_unknown_kind(tmp_path, capsys) -> None:
    log = tmp_path / "a.log"
    log.write_text(ts(KASAN))
    out = io.StringIO()
    assert run_parse([str(log)], out=out, fail_on="KASAN,NOPE") == 2
    assert out.getvalue() == ""
    assert "NOPE" in capsys.readouterr().err


def test_run_parse_unreadable(tmp_path, capsys) -> None:
    out = io.StringIO()
    assert run_parse([str(tmp_path / "missing.log")], as_json=False, out=out) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "missing.log" in err


def test_run_parse_reports_readable_files_next_to_unreadable_ones(tmp_path, capsys) -> None:
    good = tmp_path / "good.log"
    good.write_text(ts(KASAN))
    paths = [str(tmp_path / "missing.log"), str(good), str(tmp_path)]
    out = io.StringIO()
    assert run_parse(paths, as_json=True, out=out) == 2
    data = json.loads(out.getvalue())
    assert [d["path"] for d in data] == [str(good)]
    assert data[0]["bugs"][0]["kind"] == "KASAN"
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 2 and "missing.log" in err[0] and str(tmp_path) in err[1]
    out = io.StringIO()
    assert run_parse(paths, out=out) == 2
    assert out.getvalue().startswith(f"{good}: 1 bug, 0 events")


def test_run_parse_into_a_closed_pipe(tmp_path) -> None:
    import subprocess
    import sys

    log = tmp_path / "a.log"
    log.write_text(ts(KASAN) + ts(LINK, 30))
    code = "import sys; from orchestrator.report.cli import run_parse; sys.exit(run_parse(sys.argv[1:]))"
    proc = subprocess.Popen(
        [sys.executable, "-c", code, *[str(log)] * 3000],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdout is not None and proc.stderr is not None
    assert proc.stdout.readline().startswith(str(log).encode())
    proc.stdout.close()  # like `| head -1`
    err = proc.stderr.read()
    assert proc.wait(timeout=60) == 1
    assert err == b""


def test_warning_without_bugverbose_names_the_function() -> None:
    # CONFIG_DEBUG_BUGVERBOSE=n: the WARNING line has no file:line
    log = (b"[   12.578050][   T47] WARNING: CPU: 0 PID: 47 at ktest_bug_warn_check+0x4/0xf "
           b"[ktest_bug_warn]\n"
           b"[   12.579328][   T47] Modules linked in: ktest_bug_warn(O+)\n"
           b"[   12.580560][   T47] RIP: 0010:ktest_bug_warn_check+0x4/0xf [ktest_bug_warn]\n"
           b"[   12.580561][   T47] Call Trace:\n"
           b"[   12.580562][   T47]  <TASK>\n"
           b"[   12.580563][   T47]  ktest_bug_warn_init+0x11/0x1000 [ktest_bug_warn]\n"
           b"[   12.580564][   T47]  do_one_initcall+0xf4/0x420\n"
           b"[   12.580565][   T47]  </TASK>\n"
           b"[   12.580566][   T47] ---[ end trace 0000000000000000 ]---\n")
    from orchestrator.report import parse as parse_log

    (r,) = [x for x in parse_log(log) if x.is_bug]
    assert r.title == "WARNING in ktest_bug_warn_check"
    assert r.modules == ("ktest_bug_warn",)


def test_leak_under_kvmalloc_names_the_caller() -> None:
    # 6.12: kvmalloc() is __kvmalloc_node_noprof in a backtrace
    text = """\
unreferenced object 0xffff888011df4000 (size 8192):
  comm "ktest-fault", pid 115, jiffies 4294900126
  backtrace (crc 967ba78c):
    kmemleak_alloc+0x24/0x30
    __kmalloc_node_noprof+0x27a/0x4a0
    __kvmalloc_node_noprof+0x4a/0xf0
    alloc_netdev_mqs+0x71/0x14b0
    alloc_etherdev_mqs+0x22/0x30
    0xffffffffa000163e
    pci_device_probe+0x24d/0x690
"""
    assert first(ts(text)).title == "memory leak in alloc_etherdev_mqs"


# 6.12, CONFIG_DEBUG_BUGVERBOSE=n: a work's timer still active when the
# driver's remove frees the net_device (ktest_nic bugs=work_outlives_remove)
ODEBUG_612 = """\
[   36.227128][  T100] ------------[ cut here ]------------
[   36.227623][  T100] ODEBUG: free active (active state 0) object: 00000000b923d31f object type: timer_list hint: ktnic_reset_task+0x0/0x150 [ktest_nic]
[   36.233940][  T100] WARNING: CPU: 1 PID: 100 at debug_print_object+0x1ad/0x2b0
[   36.235082][  T100] Modules linked in: ktest_nic(O-)
[   36.238616][  T100] CPU: 1 UID: 0 PID: 100 Comm: rmmod Tainted: G           O       6.12.118-ktest #1
[   36.239510][  T100] Tainted: [O]=OOT_MODULE
[   36.240846][  T100] RIP: 0010:debug_print_object+0x1ad/0x2b0
[   36.246039][  T100] Call Trace:
[   36.246381][  T100]  <TASK>
[   36.247428][  T100]  debug_check_no_obj_freed+0x485/0x5c0
[   36.248945][  T100]  kfree+0x1f8/0x3a0
[   36.249606][  T100]  kvfree+0x24/0x30
[   36.249809][  T100]  netdev_release+0x68/0x80
[   36.250039][  T100]  device_release+0xc6/0x240
[   36.250304][  T100]  kobject_put+0x120/0x210
[   36.250547][  T100]  put_device+0xe/0x20
[   36.250752][  T100]  free_netdev+0x3f8/0x5b0
[   36.251014][  T100]  ktnic_remove+0x2b0/0x3a0 [ktest_nic]
[   36.251743][  T100]  pci_device_remove+0x5d/0xc0
[   36.252333][  T100]  device_remove+0xbf/0x150
[   36.252628][  T100]  device_release_driver_internal+0x31b/0x680
[   36.252976][  T100]  driver_detach+0xc4/0x190
[   36.253268][  T100]  bus_remove_driver+0x10f/0x1c0
"""

# 6.12: KASAN in debugobjects' lookup, under cancel_delayed_work_sync on a
# freed object (ktest_nic bugs=free_netdev_early)
KASAN_CANCEL_612 = """\
[   38.002603][  T123] BUG: KASAN: slab-use-after-free in timer_is_static_object+0x64/0x70
[   38.004271][  T123] Read of size 8 at addr ffff888005fe1628 by task rmmod/123
[   38.004696][  T123]
[   38.005710][  T123] CPU: 1 UID: 0 PID: 123 Comm: rmmod Tainted: G           O       6.12.118-ktest #1
[   38.006647][  T123] Tainted: [O]=OOT_MODULE
[   38.007078][  T123] Call Trace:
[   38.007177][  T123]  <TASK>
[   38.007323][  T123]  dump_stack_lvl+0x6b/0xa0
[   38.007447][  T123]  print_report+0xc7/0x620
[   38.007644][  T123]  kasan_report+0xec/0x120
[   38.007723][  T123]  __asan_report_load8_noabort+0x14/0x20
[   38.007748][  T123]  timer_is_static_object+0x64/0x70
[   38.007775][  T123]  lookup_object_or_alloc.part.0+0x68e/0xae0
[   38.007866][  T123]  debug_object_assert_init+0x2b3/0x370
[   38.008013][  T123]  __timer_delete+0x6a/0x130
[   38.008148][  T123]  timer_delete+0xb/0x10
[   38.008172][  T123]  try_to_grab_pending+0x54/0x640
[   38.008210][  T123]  __cancel_work+0x88/0x250
[   38.008426][  T123]  cancel_delayed_work_sync+0x14/0xb0
[   38.008458][  T123]  ktnic_remove+0x12c/0x3a0 [ktest_nic]
[   38.009091][  T123]  pci_device_remove+0x5d/0xc0
[   38.009131][  T123]  device_remove+0xbf/0x150
[   38.009167][  T123]  device_release_driver_internal+0x31b/0x680
[   38.009210][  T123]  driver_detach+0xc4/0x190
[   38.009243][  T123]  bus_remove_driver+0x10f/0x1c0
[   38.009277][  T123]  driver_unregister+0x68/0x90
[   38.009303][  T123]  pci_unregister_driver+0x24/0x240
[   38.009348][  T123]  ktnic_exit+0x10/0x20 [ktest_nic]
[   38.009414][  T123]  __x64_sys_delete_module+0x316/0x4d0
[   38.009538][  T123]  x64_sys_call+0x522/0x9f0
[   38.009560][  T123]  do_syscall_64+0x5f/0x100
[   38.009592][  T123]  entry_SYSCALL_64_after_hwframe+0x4b/0x53
"""


def test_odebug_without_bugverbose_names_the_driver() -> None:
    from orchestrator.report import parse as parse_log

    (r,) = [x for x in parse_log(ODEBUG_612.encode()) if x.is_bug]
    assert r.title == "WARNING: ODEBUG bug in ktnic_remove"


def test_use_after_free_under_cancel_work_names_the_caller() -> None:
    from orchestrator.report import parse as parse_log

    (r,) = [x for x in parse_log(KASAN_CANCEL_612.encode()) if x.is_bug]
    assert r.title == "KASAN: slab-use-after-free Read in ktnic_remove"


KASAN_INLINED = """\
[   32.571461][    C0] BUG: KASAN: slab-use-after-free in ktnic_poll+0x374d/0x4070 [ktest_nic]
[   32.574528][    C0] Read of size 4 at addr ffff8880118e2428 by task bash/79
[   32.577820][    C0] Call Trace:
[   32.577820][    C0]  <IRQ>
[   32.577950][    C0]  dump_stack_lvl+0x6b/0xa0
[   32.578662][    C0]  print_report+0xc7/0x620
[   32.578853][    C0]  kasan_report+0xec/0x120
[   32.578951][    C0]  __asan_report_load4_noabort+0x14/0x20
[   32.578977][    C0]  ktnic_poll+0x374d/0x4070 [ktest_nic]
[   32.582104][    C0]  __napi_poll.constprop.0+0xa3/0x5b0
[   32.582175][    C0]  net_rx_action+0x9a1/0x10c0
[   32.582667][    C0]  </IRQ>
"""


def test_a_frame_in_the_module_is_named_after_the_function_inlined_there() -> None:
    from orchestrator.report import name_inlined, parse

    (r,) = [x for x in parse(KASAN_INLINED.encode()) if x.is_bug]
    assert r.title == "KASAN: slab-use-after-free Read in ktnic_poll"
    asked = []

    def lookup(func: str, off: int) -> list[tuple[str, str]]:
        asked.append((func, off))
        return [("skb_headlen", "/src/linux/include/linux/skbuff.h"),
                ("ktnic_clean_tx", "/tmp/ktest-mod-1/ktest_nic/ktnic_txrx.c"),
                ("ktnic_poll", "/tmp/ktest-mod-1/ktest_nic/ktnic_txrx.c")]

    named = name_inlined(r, "ktest_nic", lookup)
    assert asked == [("ktnic_poll", 0x374D)]
    assert named.title == "KASAN: slab-use-after-free Read in ktnic_clean_tx"
    assert named.frame == "ktnic_clean_tx"
    # nothing inlined there, another module, or no debug information: as it was
    assert name_inlined(r, "ktest_nic", lambda f, o: [("ktnic_poll", "x.c")]) == r
    assert name_inlined(r, "e1000e", lookup) == r
    assert name_inlined(r, "ktest_nic", lambda f, o: []) == r


def test_inlined_at_reads_the_debug_information(tmp_path: pathlib.Path) -> None:
    import subprocess

    from orchestrator.builds.module import inlined_at

    # (gcc and binutils: the bootstrap installs them for the kernel build)
    (tmp_path / "m.c").write_text(
        "int g;\n"
        "static inline void inner(int *p) { g += *p * 3; }\n"
        "void outer(int *p) { g++; inner(p); g--; }\n")
    obj = tmp_path / "m.o"  # relocatable, like a .ko
    subprocess.run(["gcc", "-O2", "-g", "-c", str(tmp_path / "m.c"), "-o", str(obj)], check=True)
    chains = {tuple(f for f, _ in inlined_at(obj, "outer", off)) for off in range(1, 40)}
    assert ("inner", "outer") in chains and ("outer",) in chains
    assert inlined_at(obj, "nosuch", 4) == []

    # a kmemleak backtrace after the module is gone: bare addresses
    from orchestrator.scenario.dut import name_module_frames

    base = 0xFFFFFFFFA0000000
    leak = ("  backtrace (crc 0):\n    __kvmalloc_node_noprof+0x21/0xf0\n"
            f"    {base + 3:#x}\n    0xffffffff81234567\n    __dev_open+0x1ee/0x3c0\n")
    named = name_module_frames(leak, base, obj, "m")
    assert "    outer+0x3/0x" in named and named.count(" [m]") == 1
    assert "    0xffffffff81234567\n" in named  # not the module's


# 6.12, CONFIG_DEBUG_LIST, no BUGVERBOSE: a NAPI instance scheduled while
# still on a poll list (ktest_nic bugs=budget_after_complete)
LIST_DOUBLE_ADD_612 = """\
[   37.483463][    C1] ------------[ cut here ]------------
[   37.484367][    C1] list_add double add: new=ffff888005fb8b68, prev=ffff888005fb8b68, next=ffff888066b3a0c0.
[   37.485786][    C1] WARNING: CPU: 1 PID: 24 at __list_add_valid_or_report+0xe4/0x120
[   37.487504][    C1] Modules linked in: ktest_nic(O)
[   37.490542][    C1] CPU: 1 UID: 0 PID: 24 Comm: ksoftirqd/1 Tainted: G           O       6.12.118-ktest #1
[   37.491396][    C1] Tainted: [O]=OOT_MODULE
[   37.496566][    C1] Call Trace:
[   37.496864][    C1]  <IRQ>
[   37.497232][    C1]  __napi_schedule_irqoff+0x136/0x2d0
[   37.498548][    C1]  ktnic_msix_queue_irq+0x27/0x40 [ktest_nic]
[   37.498863][    C1]  __handle_irq_event_percpu+0x1db/0x5c0
[   37.499232][    C1]  handle_irq_event+0xa6/0x1c0
[   37.499479][    C1]  handle_edge_irq+0x1fe/0xad0
[   37.499795][    C1]  __common_interrupt+0x71/0x1d0
[   37.500139][    C1]  common_interrupt+0x7d/0x90
[   37.500389][    C1]  </IRQ>
[   37.500556][    C1]  <TASK>
[   37.500725][    C1]  asm_common_interrupt+0x27/0x40
"""


def test_list_corruption_without_bugverbose_is_a_corrupted_list() -> None:
    (r,) = [x for x in parse(LIST_DOUBLE_ADD_612.encode()) if x.is_bug]
    assert r.title == "BUG: corrupted list in ktnic_msix_queue_irq"


def test_refcount_warning_without_bugverbose() -> None:
    log = (b"[   12.1][   T47] refcount_t: underflow; use-after-free.\n"
           b"[   12.2][   T47] WARNING: CPU: 0 PID: 47 at refcount_warn_saturate+0x12/0x80\n"
           b"[   12.3][   T47] RIP: 0010:refcount_warn_saturate+0x12/0x80\n"
           b"[   12.4][   T47] Call Trace:\n"
           b"[   12.5][   T47]  <TASK>\n"
           b"[   12.6][   T47]  ktnic_remove+0x11/0x100 [ktest_nic]\n"
           b"[   12.7][   T47]  </TASK>\n")
    (r,) = [x for x in parse(log) if x.is_bug]
    assert r.title == "WARNING: refcount bug in ktnic_remove"


def test_a_hung_task_is_named_after_the_first_frame_that_is_not_a_wait() -> None:
    """The semaphore's down() family is a wait; a function whose name only
    holds "down" (a driver's shutdown callback) is the culprit."""
    from orchestrator.report.stack import hang_chooser

    waits = ["__schedule", "schedule_timeout", "wait_for_completion", "__down_common",
             "down_write", "percpu_down_write", "rwsem_down_read_slowpath", "mutex_lock"]
    assert hang_chooser([*waits, "ktnic_shutdown", "pci_device_shutdown"]) == len(waits)
    assert hang_chooser([*waits, "e1000e_down", "e1000e_close"]) == len(waits)
    assert hang_chooser(["schedule", "down", "ktnic_reset_task"]) == 2
