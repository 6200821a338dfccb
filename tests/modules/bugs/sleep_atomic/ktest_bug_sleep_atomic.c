// SPDX-License-Identifier: GPL-2.0
/*
 * ktest_bug_sleep_atomic: takes a mutex (which may sleep) while holding a
 * spinlock when loaded: "BUG: sleeping function called from invalid context"
 * (golden report test). The mutex is free, so nothing actually sleeps.
 */
#include <linux/init.h>
#include <linux/module.h>
#include <linux/mutex.h>
#include <linux/printk.h>
#include <linux/spinlock.h>

static DEFINE_SPINLOCK(ktest_bug_lock);
static DEFINE_MUTEX(ktest_bug_mutex);

static noinline void ktest_bug_sleep_atomic_locked(void)
{
	spin_lock(&ktest_bug_lock);
	mutex_lock(&ktest_bug_mutex);
	mutex_unlock(&ktest_bug_mutex);
	spin_unlock(&ktest_bug_lock);
}

static int __init ktest_bug_sleep_atomic_init(void)
{
	ktest_bug_sleep_atomic_locked();
	pr_info("ktest_bug_sleep_atomic: took a mutex under a spinlock\n");
	return 0;
}

static void __exit ktest_bug_sleep_atomic_exit(void)
{
}

module_init(ktest_bug_sleep_atomic_init);
module_exit(ktest_bug_sleep_atomic_exit);
MODULE_DESCRIPTION("ktest: sleep in atomic context on load");
MODULE_LICENSE("GPL");
