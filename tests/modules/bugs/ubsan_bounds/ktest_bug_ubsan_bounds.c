// SPDX-License-Identifier: GPL-2.0
/*
 * ktest_bug_ubsan_bounds: indexes an int[4] with an index of 4 read at run
 * time when loaded: "UBSAN: array-index-out-of-bounds in .../
 * ktest_bug_ubsan_bounds.c" with ktest_bug_index_read() on the stack (golden
 * report test). The array is followed by another member of its struct, so the
 * read stays inside the object (no KASAN report); the module loads.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/compiler.h>
#include <linux/init.h>
#include <linux/module.h>
#include <linux/printk.h>

struct ktest_bug_table {
	int slots[4];
	int guard;
};

static struct ktest_bug_table ktest_bug_table = { .guard = 42 };
static unsigned int ktest_bug_index = 4;

static noinline int ktest_bug_index_read(const struct ktest_bug_table *t, unsigned int i)
{
	return t->slots[i];
}

static int __init ktest_bug_ubsan_bounds_init(void)
{
	pr_info("read slot %d\n",
		ktest_bug_index_read(&ktest_bug_table, READ_ONCE(ktest_bug_index)));
	return 0;
}

static void __exit ktest_bug_ubsan_bounds_exit(void)
{
}

module_init(ktest_bug_ubsan_bounds_init);
module_exit(ktest_bug_ubsan_bounds_exit);
MODULE_DESCRIPTION("ktest: UBSAN array index out of bounds on load");
MODULE_LICENSE("GPL");
