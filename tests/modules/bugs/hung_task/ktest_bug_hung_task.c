// SPDX-License-Identifier: GPL-2.0
/*
 * ktest_bug_hung_task: a kthread ("ktest_bug_hung") that waits uninterruptibly
 * in ktest_bug_hung_stuck() for a completion that only module removal
 * completes. With kernel.hung_task_timeout_secs at 5 the hung task detector
 * reports "INFO: task ktest_bug_hung:PID blocked for more than N seconds."
 * (golden report test) within about 15 s.
 */
#include <linux/completion.h>
#include <linux/err.h>
#include <linux/init.h>
#include <linux/kthread.h>
#include <linux/module.h>
#include <linux/sched.h>

static DECLARE_COMPLETION(ktest_bug_release);
static struct task_struct *ktest_bug_task;

static noinline void ktest_bug_hung_stuck(void)
{
	wait_for_completion(&ktest_bug_release);
}

static int ktest_bug_hung_thread(void *unused)
{
	ktest_bug_hung_stuck();

	set_current_state(TASK_INTERRUPTIBLE);
	while (!kthread_should_stop()) {
		schedule();
		set_current_state(TASK_INTERRUPTIBLE);
	}
	__set_current_state(TASK_RUNNING);
	return 0;
}

static int __init ktest_bug_hung_task_init(void)
{
	ktest_bug_task = kthread_run(ktest_bug_hung_thread, NULL, "ktest_bug_hung");
	return PTR_ERR_OR_ZERO(ktest_bug_task);
}

static void __exit ktest_bug_hung_task_exit(void)
{
	complete(&ktest_bug_release);
	kthread_stop(ktest_bug_task);
}

module_init(ktest_bug_hung_task_init);
module_exit(ktest_bug_hung_task_exit);
MODULE_DESCRIPTION("ktest: kthread blocked uninterruptibly");
MODULE_LICENSE("GPL");
