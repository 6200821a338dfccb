// SPDX-License-Identifier: GPL-2.0
/*
 * ktest_bug_failslab: when loaded, marks its own task (insmod) as a fault
 * injection target, as writing 1 to /proc/<pid>/make-it-fail does, for one
 * kmalloc() in ktest_bug_injected_alloc(), and says whether it failed. With
 * failslab set up to fail the next allocation of marked tasks only
 * (/sys/kernel/debug/failslab: task-filter Y, ignore-gfp-wait N, probability
 * 100, times 1, verbose 2), that kmalloc() fails with "FAULT_INJECTION:
 * forcing a failure." and a stack trace (golden report test). The marking
 * is what makes the failure land on this allocation and no other: insmod
 * itself allocates before the module runs. The module loads either way.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/init.h>
#include <linux/module.h>
#include <linux/printk.h>
#include <linux/sched.h>
#include <linux/slab.h>

static noinline void *ktest_bug_injected_alloc(size_t size)
{
	return kmalloc(size, GFP_KERNEL);
}

static int __init ktest_bug_failslab_init(void)
{
	void *buf;

	current->make_it_fail = 1;
	buf = ktest_bug_injected_alloc(64);
	current->make_it_fail = 0;
	pr_info("kmalloc %s\n", buf ? "succeeded (nothing injected)" : "failed as injected");
	kfree(buf);
	return 0;
}

static void __exit ktest_bug_failslab_exit(void)
{
}

module_init(ktest_bug_failslab_init);
module_exit(ktest_bug_failslab_exit);
MODULE_DESCRIPTION("ktest: one kmalloc failed by failslab on load");
MODULE_LICENSE("GPL");
