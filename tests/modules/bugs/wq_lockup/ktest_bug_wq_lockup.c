// SPDX-License-Identifier: GPL-2.0
/*
 * ktest_bug_wq_lockup: queues two work items on one CPU of a per-CPU workqueue
 * ("ktest_bug_wq") when loaded: ktest_bug_wq_spin() spins for 12 s with
 * preemption disabled, so no other worker of that CPU's pool can run and
 * ktest_bug_wq_pending() waits on the pool's worklist. (Spinning with
 * cond_resched() is not enough from 6.5 on: a work item hogging the CPU is
 * then marked CPU-intensive and another worker runs the next one.) With
 * workqueue.watchdog_thresh at 3 the workqueue watchdog reports "BUG:
 * workqueue lockup - pool cpus=N ... stuck for Ns!" (golden report test);
 * with the default 30 s it stays quiet, and the soft lockup watchdog (20 s by
 * default) does too.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/cpumask.h>
#include <linux/init.h>
#include <linux/jiffies.h>
#include <linux/module.h>
#include <linux/preempt.h>
#include <linux/printk.h>
#include <linux/workqueue.h>

#define KTEST_BUG_SPIN_SECS 12

static struct workqueue_struct *ktest_bug_wq;

static void ktest_bug_wq_spin(struct work_struct *work)
{
	unsigned long until = jiffies + KTEST_BUG_SPIN_SECS * HZ;

	preempt_disable();
	while (time_before(jiffies, until))
		cpu_relax();
	preempt_enable();
	pr_info("work item spun for %d s with preemption disabled\n", KTEST_BUG_SPIN_SECS);
}

static void ktest_bug_wq_pending(struct work_struct *work)
{
	pr_info("the work item queued behind it ran\n");
}

static DECLARE_WORK(ktest_bug_spin_work, ktest_bug_wq_spin);
static DECLARE_WORK(ktest_bug_pending_work, ktest_bug_wq_pending);

static int __init ktest_bug_wq_lockup_init(void)
{
	int cpu = cpumask_last(cpu_online_mask);

	ktest_bug_wq = alloc_workqueue("ktest_bug_wq", 0, 0);
	if (!ktest_bug_wq)
		return -ENOMEM;
	queue_work_on(cpu, ktest_bug_wq, &ktest_bug_spin_work);
	queue_work_on(cpu, ktest_bug_wq, &ktest_bug_pending_work);
	return 0;
}

static void __exit ktest_bug_wq_lockup_exit(void)
{
	destroy_workqueue(ktest_bug_wq);
}

module_init(ktest_bug_wq_lockup_init);
module_exit(ktest_bug_wq_lockup_exit);
MODULE_DESCRIPTION("ktest: work item stalling its worker pool");
MODULE_LICENSE("GPL");
