// SPDX-License-Identifier: GPL-2.0
/*
 * ktest_bug_warn: one WARN_ON() when loaded (the plugin's verdict test:
 * a test that loads it fails with the WARNING's title unless it allows it),
 * or, with at_shutdown=1, when the system powers off or reboots (a report
 * in a guest's last words, as a driver's shutdown callback would make).
 * With hang_at_shutdown=1 the power-off blocks for good instead, as a
 * shutdown callback waiting for an event that never comes would.  With
 * hang_in_work=1 a work item blocks for good once loaded, as a driver's
 * reset work waiting for a lost interrupt would; the power-off still ends.
 */
#include <linux/bug.h>
#include <linux/completion.h>
#include <linux/init.h>
#include <linux/module.h>
#include <linux/notifier.h>
#include <linux/reboot.h>
#include <linux/workqueue.h>

static int ktest_bug_warn_trigger = 1;

static bool ktest_bug_warn_at_shutdown;
module_param_named(at_shutdown, ktest_bug_warn_at_shutdown, bool, 0444);
MODULE_PARM_DESC(at_shutdown, "warn when the system goes down, not on load");

static bool ktest_bug_warn_hang_at_shutdown;
module_param_named(hang_at_shutdown, ktest_bug_warn_hang_at_shutdown, bool, 0444);
MODULE_PARM_DESC(hang_at_shutdown, "block the power-off for good, not warn");

static bool ktest_bug_warn_hang_in_work;
module_param_named(hang_in_work, ktest_bug_warn_hang_in_work, bool, 0444);
MODULE_PARM_DESC(hang_in_work, "block a work item for good, not warn");

static DECLARE_COMPLETION(ktest_bug_warn_never);

static noinline void ktest_bug_warn_check(int value)
{
	WARN_ON(value != 0);
}

static noinline void ktest_bug_warn_stall(void)
{
	wait_for_completion(&ktest_bug_warn_never);
}

static void ktest_bug_warn_work_fn(struct work_struct *work)
{
	ktest_bug_warn_stall();
}

static DECLARE_WORK(ktest_bug_warn_work, ktest_bug_warn_work_fn);

static int ktest_bug_warn_reboot(struct notifier_block *nb,
				 unsigned long action, void *data)
{
	if (ktest_bug_warn_hang_at_shutdown)
		ktest_bug_warn_stall();
	else
		ktest_bug_warn_check(READ_ONCE(ktest_bug_warn_trigger));
	return NOTIFY_DONE;
}

static struct notifier_block ktest_bug_warn_nb = {
	.notifier_call = ktest_bug_warn_reboot,
};

static int __init ktest_bug_warn_init(void)
{
	if (ktest_bug_warn_hang_in_work) {
		schedule_work(&ktest_bug_warn_work);
		return 0;
	}
	if (ktest_bug_warn_at_shutdown || ktest_bug_warn_hang_at_shutdown)
		return register_reboot_notifier(&ktest_bug_warn_nb);
	ktest_bug_warn_check(READ_ONCE(ktest_bug_warn_trigger));
	return 0;
}

static void __exit ktest_bug_warn_exit(void)
{
	if (ktest_bug_warn_at_shutdown || ktest_bug_warn_hang_at_shutdown)
		unregister_reboot_notifier(&ktest_bug_warn_nb);
	complete_all(&ktest_bug_warn_never);
	flush_work(&ktest_bug_warn_work);
}

module_init(ktest_bug_warn_init);
module_exit(ktest_bug_warn_exit);
MODULE_DESCRIPTION("ktest: WARN_ON on load or at shutdown");
MODULE_LICENSE("GPL");
