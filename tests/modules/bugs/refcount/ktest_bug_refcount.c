// SPDX-License-Identifier: GPL-2.0
/*
 * ktest_bug_refcount: drops the only reference of a refcount_t twice when
 * loaded. The second drop underflows, and the kernel warns "refcount_t:
 * underflow; use-after-free." (a WARNING in refcount_warn_saturate() called
 * from ktest_bug_ref_put(); golden report test). The module loads.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/init.h>
#include <linux/module.h>
#include <linux/printk.h>
#include <linux/refcount.h>

static refcount_t ktest_bug_ref = REFCOUNT_INIT(1);

static noinline void ktest_bug_ref_put(refcount_t *ref)
{
	if (refcount_dec_and_test(ref))
		pr_info("last reference dropped\n");
}

static int __init ktest_bug_ref_init(void)
{
	ktest_bug_ref_put(&ktest_bug_ref);
	ktest_bug_ref_put(&ktest_bug_ref);
	pr_info("dropped the last reference twice\n");
	return 0;
}

static void __exit ktest_bug_ref_exit(void)
{
}

module_init(ktest_bug_ref_init);
module_exit(ktest_bug_ref_exit);
MODULE_DESCRIPTION("ktest: refcount_t underflow on load");
MODULE_LICENSE("GPL");
