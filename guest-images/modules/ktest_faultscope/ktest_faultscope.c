// SPDX-License-Identifier: GPL-2.0
/*
 * ktest_faultscope: keeps the kernel's own checkers out of a fail-nth sweep,
 * and tells which call each injected failure hit.
 *
 * A sweep fails the n-th injectable call of a task whose stack holds the
 * driver under test (fail-nth with the stack-trace filter). Under a debug
 * kernel most of those calls are not the driver's: kmemleak allocates an
 * object for every allocation, dma-debug a radix tree node for every
 * mapping, KASAN and kmemleak save stacks in the stack depot. Failing them
 * tests the checkers, not the driver, and can turn a checker off for the
 * rest of the boot (dma-debug disables itself when its cacheline tracking
 * gets -ENOMEM). So, for a task armed with fail-nth, a call made on behalf
 * of a checker is taken back: it neither fails nor counts towards n.
 *
 * debugfs /sys/kernel/debug/ktest_faultscope/
 *   site      the call stack of the last failure injected through fail-nth,
 *             innermost first, from the allocator up ("a < b < c")
 *   exempted  how many calls of armed tasks were taken back
 */
#include <linux/atomic.h>
#include <linux/debugfs.h>
#include <linux/kallsyms.h>
#include <linux/kprobes.h>
#include <linux/module.h>
#include <linux/sched.h>
#include <linux/seq_file.h>
#include <linux/spinlock.h>
#include <linux/stacktrace.h>
#include <linux/string.h>

#define KTFS_DEPTH	24	/* frames searched for a checker, and kept */
#define KTFS_SITE_LEN	1024

/* Functions whose callees allocate for a checker, not for the driver. */
static const char * const ktfs_checkers[] = {
	"kmemleak_",		/* kmemleak_alloc*(): object metadata */
	"debug_dma_",		/* dma-debug: entries, cacheline tracking */
	"dma_debug_",
	"add_dma_entry",
	"stack_depot_",		/* stacks saved by KASAN and kmemleak */
	"kasan_",
};

/* Frames of the fault injection itself, left out of the site. */
static const char * const ktfs_plumbing[] = {
	"should_fail",
	"__should_fail",
	"should_failslab",
	"fail_",
	"prepare_alloc_pages",
	"slab_pre_alloc_hook",
	"arch_rethook",
	"rethook",
	"kretprobe",
	"ktfs_",
};

/* ktfs_lock guards the scratch space of a walk and the last site: the
 * handler runs deep inside allocations, where stack is scarce.
 */
static DEFINE_SPINLOCK(ktfs_lock);
static unsigned long ktfs_entries[KTFS_DEPTH];
static char ktfs_name[KSYM_SYMBOL_LEN];
static char ktfs_walked[KTFS_SITE_LEN];
static char ktfs_site[KTFS_SITE_LEN];
static atomic_long_t ktfs_exempted = ATOMIC_LONG_INIT(0);
static struct dentry *ktfs_dir;

static bool ktfs_starts(const char *name, const char * const *list, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (!strncmp(name, list[i], strlen(list[i])))
			return true;
	return false;
}

/* True if a checker is on the stack; otherwise ktfs_walked gets the
 * frames. Called with ktfs_lock held.
 */
static bool ktfs_walk(void)
{
	unsigned int n, i;
	size_t used = 0;

	lockdep_assert_held(&ktfs_lock);
	n = stack_trace_save(ktfs_entries, ARRAY_SIZE(ktfs_entries), 0);
	ktfs_walked[0] = '\0';
	for (i = 0; i < n; i++) {
		sprint_symbol_no_offset(ktfs_name, ktfs_entries[i]);
		if (ktfs_starts(ktfs_name, ktfs_checkers,
				ARRAY_SIZE(ktfs_checkers)))
			return true;
		if (used >= sizeof(ktfs_walked) ||
		    ktfs_starts(ktfs_name, ktfs_plumbing,
				ARRAY_SIZE(ktfs_plumbing)))
			continue;
		used += scnprintf(ktfs_walked + used,
				  sizeof(ktfs_walked) - used, "%s%s",
				  used ? " < " : "", ktfs_name);
	}
	return false;
}

struct ktfs_call {
	unsigned int fail_nth;	/* the task's countdown when the call began */
};

static int ktfs_entry(struct kretprobe_instance *ri, struct pt_regs *regs)
{
	struct ktfs_call *call = (struct ktfs_call *)ri->data;

	call->fail_nth = in_task() ? READ_ONCE(current->fail_nth) : 0;
	return 0;
}

static int ktfs_return(struct kretprobe_instance *ri, struct pt_regs *regs)
{
	struct ktfs_call *call = (struct ktfs_call *)ri->data;
	unsigned long flags;
	bool checker;

	/* Only calls that fail-nth counted: the countdown moved. */
	if (!call->fail_nth || READ_ONCE(current->fail_nth) == call->fail_nth)
		return 0;
	spin_lock_irqsave(&ktfs_lock, flags);
	checker = ktfs_walk();
	if (!checker && regs_return_value(regs))
		strscpy(ktfs_site, ktfs_walked, sizeof(ktfs_site));
	spin_unlock_irqrestore(&ktfs_lock, flags);
	if (checker) {
		WRITE_ONCE(current->fail_nth, call->fail_nth);
		regs_set_return_value(regs, 0);
		atomic_long_inc(&ktfs_exempted);
	}
	return 0;
}

static struct kretprobe ktfs_probe = {
	.kp.symbol_name	= "should_fail_ex",
	.entry_handler	= ktfs_entry,
	.handler	= ktfs_return,
	.data_size	= sizeof(struct ktfs_call),
	.maxactive	= 16,
};

static int ktfs_site_show(struct seq_file *m, void *unused)
{
	unsigned long flags;

	spin_lock_irqsave(&ktfs_lock, flags);
	seq_printf(m, "%s\n", ktfs_site);
	spin_unlock_irqrestore(&ktfs_lock, flags);
	return 0;
}
DEFINE_SHOW_ATTRIBUTE(ktfs_site);

static int ktfs_exempted_show(struct seq_file *m, void *unused)
{
	seq_printf(m, "%ld\n", atomic_long_read(&ktfs_exempted));
	return 0;
}
DEFINE_SHOW_ATTRIBUTE(ktfs_exempted);

static int __init ktfs_init(void)
{
	int err;

	err = register_kretprobe(&ktfs_probe);
	if (err) {
		pr_err("cannot probe should_fail_ex: %d\n", err);
		return err;
	}
	ktfs_dir = debugfs_create_dir("ktest_faultscope", NULL);
	debugfs_create_file("site", 0400, ktfs_dir, NULL, &ktfs_site_fops);
	debugfs_create_file("exempted", 0400, ktfs_dir, NULL, &ktfs_exempted_fops);
	return 0;
}

static void __exit ktfs_exit(void)
{
	debugfs_remove_recursive(ktfs_dir);
	unregister_kretprobe(&ktfs_probe);
}

module_init(ktfs_init);
module_exit(ktfs_exit);

MODULE_DESCRIPTION("ktest: keeps the kernel's checkers out of fail-nth sweeps");
MODULE_LICENSE("GPL");
