// SPDX-License-Identifier: GPL-2.0
/*
 * ktest_bug_bug_on: a BUG_ON() that fires when loaded. The kernel reports
 * "kernel BUG at .../ktest_bug_bug_on.c:LINE!" with an invalid opcode oops in
 * ktest_bug_bug_on_check() (golden report test). The oops kills insmod; the
 * guest lives on.
 */
#include <linux/bug.h>
#include <linux/compiler.h>
#include <linux/init.h>
#include <linux/module.h>

static int ktest_bug_bug_on_state = 1;

static noinline void ktest_bug_bug_on_check(int state)
{
	BUG_ON(state != 0);
}

static int __init ktest_bug_bug_on_init(void)
{
	ktest_bug_bug_on_check(READ_ONCE(ktest_bug_bug_on_state));
	return 0;
}

static void __exit ktest_bug_bug_on_exit(void)
{
}

module_init(ktest_bug_bug_on_init);
module_exit(ktest_bug_bug_on_exit);
MODULE_DESCRIPTION("ktest: BUG_ON on load");
MODULE_LICENSE("GPL");
