// SPDX-License-Identifier: GPL-2.0
/* A module that must fail to build: tests the build error path. */
#include <linux/module.h>

static int __init ktest_broken_init(void)
{
	return undeclared_symbol_for_the_test;
}

module_init(ktest_broken_init);
MODULE_LICENSE("GPL");
