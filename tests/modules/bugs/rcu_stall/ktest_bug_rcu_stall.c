// SPDX-License-Identifier: GPL-2.0
/*
 * ktest_bug_rcu_stall: a kthread ("ktest_bug_rcu") that spins for 12 s inside
 * an RCU read-side critical section (preemption disabled) in
 * ktest_bug_stall_reader(), then says so and idles until the module goes.
 * With rcupdate.rcu_cpu_stall_timeout at 5 the kernel reports "rcu: INFO:
 * rcu_sched self-detected stall on CPU" (or "detected stalls on CPUs/tasks")
 * (golden report test); with the default 60 s it stays quiet, and the soft
 * lockup watchdog (20 s by default) does too.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/err.h>
#include <linux/init.h>
#include <linux/jiffies.h>
#include <linux/kthread.h>
#include <linux/module.h>
#include <linux/printk.h>
#include <linux/rcupdate.h>
#include <linux/sched.h>

#define KTEST_BUG_SPIN_SECS 12

static struct task_struct *ktest_bug_task;

static noinline void ktest_bug_stall_reader(unsigned long until)
{
	rcu_read_lock();
	while (time_before(jiffies, until))
		cpu_relax();
	rcu_read_unlock();
}

static int ktest_bug_rcu_thread(void *unused)
{
	ktest_bug_stall_reader(jiffies + KTEST_BUG_SPIN_SECS * HZ);
	pr_info("left a %d s RCU read-side critical section\n", KTEST_BUG_SPIN_SECS);

	set_current_state(TASK_INTERRUPTIBLE);
	while (!kthread_should_stop()) {
		schedule();
		set_current_state(TASK_INTERRUPTIBLE);
	}
	__set_current_state(TASK_RUNNING);
	return 0;
}

static int __init ktest_bug_rcu_stall_init(void)
{
	ktest_bug_task = kthread_run(ktest_bug_rcu_thread, NULL, "ktest_bug_rcu");
	return PTR_ERR_OR_ZERO(ktest_bug_task);
}

static void __exit ktest_bug_rcu_stall_exit(void)
{
	kthread_stop(ktest_bug_task);
}

module_init(ktest_bug_rcu_stall_init);
module_exit(ktest_bug_rcu_stall_exit);
MODULE_DESCRIPTION("ktest: kthread stalling RCU");
MODULE_LICENSE("GPL");
