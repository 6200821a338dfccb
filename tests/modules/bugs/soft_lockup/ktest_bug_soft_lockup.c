// SPDX-License-Identifier: GPL-2.0
/*
 * ktest_bug_soft_lockup: a kthread ("ktest_bug_spin") that spins for 10 s with
 * preemption disabled in ktest_bug_lockup_spin(), then says so and idles until
 * the module goes. With kernel.watchdog_thresh at 3 (soft lockups after 6 s),
 * the watchdog reports "watchdog: BUG: soft lockup - CPU#N stuck for Ns!"
 * (golden report test); with the default 10 (20 s) it stays quiet.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/err.h>
#include <linux/init.h>
#include <linux/jiffies.h>
#include <linux/kthread.h>
#include <linux/module.h>
#include <linux/preempt.h>
#include <linux/printk.h>
#include <linux/sched.h>

#define KTEST_BUG_SPIN_SECS 10

static struct task_struct *ktest_bug_task;

static noinline void ktest_bug_lockup_spin(unsigned long until)
{
	while (time_before(jiffies, until))
		cpu_relax();
}

static int ktest_bug_lockup_thread(void *unused)
{
	preempt_disable();
	ktest_bug_lockup_spin(jiffies + KTEST_BUG_SPIN_SECS * HZ);
	preempt_enable();
	pr_info("spun for %d s with preemption disabled\n", KTEST_BUG_SPIN_SECS);

	set_current_state(TASK_INTERRUPTIBLE);
	while (!kthread_should_stop()) {
		schedule();
		set_current_state(TASK_INTERRUPTIBLE);
	}
	__set_current_state(TASK_RUNNING);
	return 0;
}

static int __init ktest_bug_soft_lockup_init(void)
{
	ktest_bug_task = kthread_run(ktest_bug_lockup_thread, NULL, "ktest_bug_spin");
	return PTR_ERR_OR_ZERO(ktest_bug_task);
}

static void __exit ktest_bug_soft_lockup_exit(void)
{
	kthread_stop(ktest_bug_task);
}

module_init(ktest_bug_soft_lockup_init);
module_exit(ktest_bug_soft_lockup_exit);
MODULE_DESCRIPTION("ktest: kthread spinning with preemption disabled");
MODULE_LICENSE("GPL");
