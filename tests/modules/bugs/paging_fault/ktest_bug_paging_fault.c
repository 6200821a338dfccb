// SPDX-License-Identifier: GPL-2.0
/*
 * ktest_bug_paging_fault: reads the first byte past a one-page vmalloc() buffer
 * when loaded. That byte is in the unmapped guard page that follows every
 * vmalloc area, so the kernel reports "BUG: unable to handle page fault for
 * address: ..." (not-present page) in ktest_bug_paging_read() (golden report
 * test). The oops kills insmod; the guest lives on.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/compiler.h>
#include <linux/init.h>
#include <linux/mm.h>
#include <linux/module.h>
#include <linux/printk.h>
#include <linux/string.h>
#include <linux/vmalloc.h>

static noinline char ktest_bug_paging_read(const char *buf, size_t off)
{
	return READ_ONCE(buf[off]);
}

static int __init ktest_bug_paging_fault_init(void)
{
	char *buf = vmalloc(PAGE_SIZE);

	if (!buf)
		return -ENOMEM;
	memset(buf, 0x5a, PAGE_SIZE);
	pr_info("read past the end: %d\n", ktest_bug_paging_read(buf, PAGE_SIZE));
	vfree(buf);
	return 0;
}

static void __exit ktest_bug_paging_fault_exit(void)
{
}

module_init(ktest_bug_paging_fault_init);
module_exit(ktest_bug_paging_fault_exit);
MODULE_DESCRIPTION("ktest: kernel paging fault on load");
MODULE_LICENSE("GPL");
