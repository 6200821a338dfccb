// SPDX-License-Identifier: GPL-2.0
/*
 * ktest_bug_kfence_oob: allocates (and frees) 32-byte buffers when loaded until
 * KFENCE samples one and places it at the end of its page, then reads the byte
 * past its end, which lies in the KFENCE guard page: "BUG: KFENCE:
 * out-of-bounds read in ktest_bug_kfence_read" (golden report test). KFENCE
 * lets the read complete; the module loads. Needs CONFIG_KFENCE (a sample
 * every kfence.sample_interval ms: 30 s of tries is plenty at 100 ms).
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/compiler.h>
#include <linux/init.h>
#include <linux/jiffies.h>
#include <linux/kfence.h>
#include <linux/mm.h>
#include <linux/module.h>
#include <linux/printk.h>
#include <linux/sched.h>
#include <linux/slab.h>

#define KTEST_BUG_SIZE 32
#define KTEST_BUG_TRY_SECS 30

static noinline char ktest_bug_kfence_read(const char *buf, size_t i)
{
	return READ_ONCE(buf[i]);
}

/* A KFENCE object whose end is its page's end (KFENCE picks the side at random). */
static char *ktest_bug_kfence_object(void)
{
	unsigned long until = jiffies + KTEST_BUG_TRY_SECS * HZ;
	char *buf;

	while (time_before(jiffies, until)) {
		buf = kmalloc(KTEST_BUG_SIZE, GFP_KERNEL);
		if (!buf)
			return NULL;
		if (is_kfence_address(buf) && PAGE_ALIGNED(buf + KTEST_BUG_SIZE))
			return buf;
		kfree(buf);
		cond_resched();
	}
	return NULL;
}

static int __init ktest_bug_kfence_oob_init(void)
{
	char *buf = ktest_bug_kfence_object();

	if (!buf) {
		pr_err("no KFENCE object within %d s\n", KTEST_BUG_TRY_SECS);
		return -EAGAIN;
	}
	memset(buf, 0x5a, KTEST_BUG_SIZE);
	pr_info("read past the end of a KFENCE object: %d\n",
		ktest_bug_kfence_read(buf, KTEST_BUG_SIZE));
	kfree(buf);
	return 0;
}

static void __exit ktest_bug_kfence_oob_exit(void)
{
}

module_init(ktest_bug_kfence_oob_init);
module_exit(ktest_bug_kfence_oob_exit);
MODULE_DESCRIPTION("ktest: KFENCE out-of-bounds read on load");
MODULE_LICENSE("GPL");
