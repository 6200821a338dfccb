// SPDX-License-Identifier: GPL-2.0
/*
 * ktest_bug_divide_error: divides by a zero read at run time when loaded, so
 * that the CPU traps and the kernel reports "divide error: 0000 [#1]" in
 * ktest_bug_divide() (golden report test). The oops kills insmod; the guest
 * lives on.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/compiler.h>
#include <linux/init.h>
#include <linux/module.h>
#include <linux/printk.h>

/* Never set: zero. */
static int ktest_bug_divisor;

static noinline int ktest_bug_divide(int dividend, int divisor)
{
	return dividend / divisor;
}

static int __init ktest_bug_divide_error_init(void)
{
	pr_info("quotient %d\n", ktest_bug_divide(1000, READ_ONCE(ktest_bug_divisor)));
	return 0;
}

static void __exit ktest_bug_divide_error_exit(void)
{
}

module_init(ktest_bug_divide_error_init);
module_exit(ktest_bug_divide_error_exit);
MODULE_DESCRIPTION("ktest: divide error on load");
MODULE_LICENSE("GPL");
