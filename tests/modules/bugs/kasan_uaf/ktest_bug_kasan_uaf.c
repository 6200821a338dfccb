// SPDX-License-Identifier: GPL-2.0
/*
 * ktest_bug_kasan_uaf: reads a kmalloc'ed buffer after kfree() when loaded, so
 * that a KASAN kernel reports "BUG: KASAN: use-after-free" (golden report test).
 */
#include <linux/compiler.h>
#include <linux/init.h>
#include <linux/module.h>
#include <linux/printk.h>
#include <linux/slab.h>

static noinline char ktest_bug_uaf_read(const char *buf, size_t i)
{
	return READ_ONCE(buf[i]);
}

static int __init ktest_bug_uaf_init(void)
{
	char *buf = kmalloc(64, GFP_KERNEL);

	if (!buf)
		return -ENOMEM;
	memset(buf, 0x5a, 64);
	kfree(buf);
	OPTIMIZER_HIDE_VAR(buf);
	pr_info("ktest_bug_uaf: read after free: %d\n",
		ktest_bug_uaf_read(buf, 8));
	return 0;
}

static void __exit ktest_bug_uaf_exit(void)
{
}

module_init(ktest_bug_uaf_init);
module_exit(ktest_bug_uaf_exit);
MODULE_DESCRIPTION("ktest: KASAN use-after-free on load");
MODULE_LICENSE("GPL");
