// SPDX-License-Identifier: GPL-2.0
/*
 * ktest_bug_lockdep: takes two mutexes in both orders (one after the other, so
 * nothing deadlocks) when loaded; lockdep reports "possible circular locking
 * dependency detected" (golden report test).
 */
#include <linux/init.h>
#include <linux/module.h>
#include <linux/mutex.h>
#include <linux/printk.h>

static DEFINE_MUTEX(ktest_bug_lock_a);
static DEFINE_MUTEX(ktest_bug_lock_b);

static noinline void ktest_bug_lock_a_then_b(void)
{
	mutex_lock(&ktest_bug_lock_a);
	mutex_lock(&ktest_bug_lock_b);
	mutex_unlock(&ktest_bug_lock_b);
	mutex_unlock(&ktest_bug_lock_a);
}

static noinline void ktest_bug_lock_b_then_a(void)
{
	mutex_lock(&ktest_bug_lock_b);
	mutex_lock(&ktest_bug_lock_a);
	mutex_unlock(&ktest_bug_lock_a);
	mutex_unlock(&ktest_bug_lock_b);
}

static int __init ktest_bug_locks_init(void)
{
	ktest_bug_lock_a_then_b();
	ktest_bug_lock_b_then_a();
	pr_info("ktest_bug_lockdep: took the locks in both orders\n");
	return 0;
}

static void __exit ktest_bug_locks_exit(void)
{
}

module_init(ktest_bug_locks_init);
module_exit(ktest_bug_locks_exit);
MODULE_DESCRIPTION("ktest: lock order inversion on load");
MODULE_LICENSE("GPL");
