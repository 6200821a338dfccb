// SPDX-License-Identifier: GPL-2.0
/*
 * ktest_bug_warn: one WARN_ON() when loaded (the plugin's verdict test:
 * a test that loads it fails with the WARNING's title unless it allows it).
 */
#include <linux/bug.h>
#include <linux/init.h>
#include <linux/module.h>

static int ktest_bug_warn_trigger = 1;

static noinline void ktest_bug_warn_check(int value)
{
	WARN_ON(value != 0);
}

static int __init ktest_bug_warn_init(void)
{
	ktest_bug_warn_check(READ_ONCE(ktest_bug_warn_trigger));
	return 0;
}

static void __exit ktest_bug_warn_exit(void)
{
}

module_init(ktest_bug_warn_init);
module_exit(ktest_bug_warn_exit);
MODULE_DESCRIPTION("ktest: WARN_ON on load");
MODULE_LICENSE("GPL");
