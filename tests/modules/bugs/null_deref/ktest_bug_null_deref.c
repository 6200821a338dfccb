// SPDX-License-Identifier: GPL-2.0
/*
 * ktest_bug_null_deref: reads a field through a NULL pointer when loaded, so
 * that the kernel reports "BUG: kernel NULL pointer dereference, address:
 * 0000000000000008" in ktest_bug_null_deref_read() (golden report test). The
 * oops kills insmod; the guest lives on.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/compiler.h>
#include <linux/init.h>
#include <linux/module.h>
#include <linux/printk.h>

struct ktest_bug_obj {
	long id;
	long len;
};

/* Never set: NULL. */
static struct ktest_bug_obj *ktest_bug_obj;

static noinline long ktest_bug_null_deref_read(const struct ktest_bug_obj *obj)
{
	return READ_ONCE(obj->len);
}

static int __init ktest_bug_null_deref_init(void)
{
	pr_info("len %ld\n", ktest_bug_null_deref_read(READ_ONCE(ktest_bug_obj)));
	return 0;
}

static void __exit ktest_bug_null_deref_exit(void)
{
}

module_init(ktest_bug_null_deref_init);
module_exit(ktest_bug_null_deref_exit);
MODULE_DESCRIPTION("ktest: NULL pointer dereference on load");
MODULE_LICENSE("GPL");
