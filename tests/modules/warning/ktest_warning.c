// SPDX-License-Identifier: GPL-2.0
/* A module that builds with a W=1 warning: ktest must reject it. */
#include <linux/module.h>

static int __init ktest_warning_init(void)
{
	int unused_but_set;

	unused_but_set = 1;
	return 0;
}

module_init(ktest_warning_init);
MODULE_LICENSE("GPL");
