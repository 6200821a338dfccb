// SPDX-License-Identifier: GPL-2.0
/*
 * ktest_hello: the smallest out-of-tree module, used to test `ktest build
 * module` and module loading in the guest before drivers/ktest_nic exists.
 */
#include <linux/init.h>
#include <linux/module.h>
#include <linux/printk.h>

static int __init ktest_hello_init(void)
{
	pr_info("ktest_hello: loaded\n");
	return 0;
}

static void __exit ktest_hello_exit(void)
{
	pr_info("ktest_hello: unloaded\n");
}

module_init(ktest_hello_init);
module_exit(ktest_hello_exit);
MODULE_DESCRIPTION("ktest: minimal test module");
MODULE_LICENSE("GPL");
