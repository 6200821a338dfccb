// SPDX-License-Identifier: GPL-2.0
/*
 * ktest_bug_gpf: reads through a non-canonical pointer when loaded (x86-64),
 * so that the kernel reports "general protection fault, probably for
 * non-canonical address 0xdead000000000000" in ktest_bug_gpf_read() (golden
 * report test). The oops kills insmod; the guest lives on.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/compiler.h>
#include <linux/init.h>
#include <linux/module.h>
#include <linux/printk.h>

/* Bits 63..47 differ: not a canonical x86-64 address, any access raises #GP. */
#define KTEST_BUG_NONCANONICAL 0xdead000000000000UL

static unsigned long ktest_bug_gpf_addr = KTEST_BUG_NONCANONICAL;

static noinline unsigned long ktest_bug_gpf_read(const unsigned long *p)
{
	return READ_ONCE(*p);
}

static int __init ktest_bug_gpf_init(void)
{
	const unsigned long *p = (const unsigned long *)READ_ONCE(ktest_bug_gpf_addr);

	pr_info("read %lx\n", ktest_bug_gpf_read(p));
	return 0;
}

static void __exit ktest_bug_gpf_exit(void)
{
}

module_init(ktest_bug_gpf_init);
module_exit(ktest_bug_gpf_exit);
MODULE_DESCRIPTION("ktest: general protection fault on load");
MODULE_LICENSE("GPL");
