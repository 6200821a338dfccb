// SPDX-License-Identifier: GPL-2.0
/*
 * ktest_bug_kmemleak: allocates a buffer and drops the only pointer to it when
 * loaded; a kmemleak scan (echo scan > /sys/kernel/debug/kmemleak) then reports
 * an "unreferenced object" (golden report test).
 */
#include <linux/compiler.h>
#include <linux/init.h>
#include <linux/module.h>
#include <linux/printk.h>
#include <linux/slab.h>
#include <linux/string.h>

#define KTEST_BUG_LEAKS 4

static void *ktest_bug_ptr;

static noinline void *ktest_bug_leak_alloc(size_t size)
{
	void *p = kmalloc(size, GFP_KERNEL);

	if (p)
		memset(p, 0xa5, size);
	return p;
}

static int __init ktest_bug_leak_init(void)
{
	int i;

	/*
	 * Several objects: a stale copy of the last pointer may stay on a
	 * stack that kmemleak scans, the earlier ones are overwritten.
	 */
	for (i = 0; i < KTEST_BUG_LEAKS; i++) {
		WRITE_ONCE(ktest_bug_ptr, ktest_bug_leak_alloc(128));
		WRITE_ONCE(ktest_bug_ptr, NULL);
	}
	pr_info("ktest_bug_kmemleak: leaked %d objects of 128 bytes\n", KTEST_BUG_LEAKS);
	return 0;
}

static void __exit ktest_bug_leak_exit(void)
{
}

module_init(ktest_bug_leak_init);
module_exit(ktest_bug_leak_exit);
MODULE_DESCRIPTION("ktest: memory leak on load");
MODULE_LICENSE("GPL");
