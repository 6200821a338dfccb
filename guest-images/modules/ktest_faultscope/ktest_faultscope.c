// SPDX-License-Identifier: GPL-2.0
/*
 * ktest_faultscope: keeps the kernel's own checkers, and the calls whose
 * number depends on history, out of a fail-nth sweep; makes each streaming
 * DMA mapping a point of the sweep; tells which call each failure hit.
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
 * Some calls are made or not depending on what the kernel did before: a
 * kmalloc needs a new slab only when the cache's slabs are full, behind an
 * IOMMU an IOVA comes from a per-CPU cache when one is there, a page-table
 * page is needed only where nothing was mapped before, a vmalloc area is
 * reused from a per-node pool once lazily freed areas were purged, an
 * xarray or maple tree grows a node only at some sizes. Counting them made point n of a
 * sweep a different call from run to run (and a failure found in one run
 * was missed in the next). They are taken back too. Each
 * dma_map_page_attrs() of an armed task counts once instead: at its point
 * the mapping is undone and the caller gets DMA_MAPPING_ERROR, with or
 * without an IOMMU, so a driver's mapping error paths are swept on every
 * machine.
 *
 * debugfs /sys/kernel/debug/ktest_faultscope/
 *   site      the call stack of the last failure injected through fail-nth,
 *             innermost first, from the allocator up ("a < b < c")
 *   exempted  how many calls of armed tasks were taken back
 *   dma_map/  the fault attributes of the mapping points (the stack-trace
 *             filter of failslab: require-start, require-end, ...)
 */
#include <linux/atomic.h>
#include <linux/debugfs.h>
#include <linux/dma-mapping.h>
#include <linux/fault-inject.h>
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

/* Calls whose number depends on what the kernel did before, not on what
 * the driver does: refills of caches and pools, and the nodes and tables
 * of shared structures (matched anywhere in a frame's name).
 */
static const char * const ktfs_history[] = {
	"iova",			/* alloc_iova_fast(), the rcache's magazines */
	"iommu_map",		/* IOMMU page tables: iommu_map(), *_iommu_map_pages() */
	"allocate_slab",	/* a slab cache's new slab */
	"pcpu_",		/* the percpu allocator's chunks and their pages */
	"pte_alloc",		/* kernel page tables (vmalloc, vmap) */
	"pmd_alloc",
	"pud_alloc",
	"p4d_alloc",
	"alloc_vmap_area",	/* a vmalloc area: reused from a pool once purged */
	"preload",		/* vmap_area and radix-tree preloads */
	"xas_alloc",		/* xarray nodes: ifindex, IDs, page_pool's DMA index */
	"xas_nomem",
	"mas_alloc_nodes",	/* maple tree nodes: interrupt descriptors */
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
	"pre_handler_kretprobe",
	"kprobe_",
	"ftrace_",
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
static DECLARE_FAULT_ATTR(ktfs_map_attr);

static bool ktfs_starts(const char *name, const char * const *list, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (!strncmp(name, list[i], strlen(list[i])))
			return true;
	return false;
}

static bool ktfs_contains(const char *name, const char * const *list, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (strstr(name, list[i]))
			return true;
	return false;
}

/* True if a checker or a history-bound call is on the stack; otherwise
 * ktfs_walked gets the frames. Called with ktfs_lock held.
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
				ARRAY_SIZE(ktfs_checkers)) ||
		    ktfs_contains(ktfs_name, ktfs_history,
				  ARRAY_SIZE(ktfs_history)))
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
};

/* A mapping point: the arguments to undo the mapping with, saved on entry. */
struct ktfs_map {
	struct device *dev;
	size_t size;
	enum dma_data_direction dir;
	unsigned long attrs;
};

static int ktfs_map_entry(struct kretprobe_instance *ri, struct pt_regs *regs)
{
	struct ktfs_map *map = (struct ktfs_map *)ri->data;

	/* Only an armed task's calls are points; the others go unprobed. */
	if (!in_task() || !READ_ONCE(current->fail_nth))
		return 1;
	/* should_fail() moves the countdown, within the scope of its filter */
	if (!should_fail(&ktfs_map_attr, regs_get_kernel_argument(regs, 3)))
		return 1;
	map->dev = (struct device *)regs_get_kernel_argument(regs, 0);
	map->size = regs_get_kernel_argument(regs, 3);
	map->dir = regs_get_kernel_argument(regs, 4);
	map->attrs = regs_get_kernel_argument(regs, 5);
	return 0;
}

/* The point's mapping was made: undo it, and fail the call. */
static int ktfs_map_return(struct kretprobe_instance *ri, struct pt_regs *regs)
{
	struct ktfs_map *map = (struct ktfs_map *)ri->data;
	dma_addr_t addr = regs_return_value(regs);
	unsigned long flags;

	/* Walked from here, the stack has the caller: on entry, through an
	 * optimized probe's trampoline, the unwinder skipped it.
	 */
	spin_lock_irqsave(&ktfs_lock, flags);
	ktfs_walk();
	scnprintf(ktfs_site, sizeof(ktfs_site), "dma_map_page_attrs < %s",
		  ktfs_walked);
	spin_unlock_irqrestore(&ktfs_lock, flags);

	/* dma-debug wants every mapping's error checked before its unmap */
	if (!dma_mapping_error(map->dev, addr))
		dma_unmap_page_attrs(map->dev, addr, map->size, map->dir,
				     map->attrs | DMA_ATTR_SKIP_CPU_SYNC);
	regs_set_return_value(regs, DMA_MAPPING_ERROR);
	return 0;
}

static struct kretprobe ktfs_map_probe = {
	.kp.symbol_name	= "dma_map_page_attrs",
	.entry_handler	= ktfs_map_entry,
	.handler	= ktfs_map_return,
	.data_size	= sizeof(struct ktfs_map),
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
	struct dentry *attrs;
	int err;

	ktfs_dir = debugfs_create_dir("ktest_faultscope", NULL);
	debugfs_create_file("site", 0400, ktfs_dir, NULL, &ktfs_site_fops);
	debugfs_create_file("exempted", 0400, ktfs_dir, NULL, &ktfs_exempted_fops);
	/* fail-nth only: probability 0, nothing fails by itself */
	ktfs_map_attr.verbose = 1;
	attrs = fault_create_debugfs_attr("dma_map", ktfs_dir, &ktfs_map_attr);
	if (IS_ERR(attrs)) {
		err = PTR_ERR(attrs);
		goto err_debugfs;
	}
	err = register_kretprobe(&ktfs_probe);
	if (err) {
		pr_err("cannot probe should_fail_ex: %d\n", err);
		goto err_debugfs;
	}
	err = register_kretprobe(&ktfs_map_probe);
	if (err) {
		pr_err("cannot probe dma_map_page_attrs: %d\n", err);
		goto err_probe;
	}
	return 0;

err_probe:
	unregister_kretprobe(&ktfs_probe);
err_debugfs:
	debugfs_remove_recursive(ktfs_dir);
	return err;
}

static void __exit ktfs_exit(void)
{
	unregister_kretprobe(&ktfs_map_probe);
	unregister_kretprobe(&ktfs_probe);
	debugfs_remove_recursive(ktfs_dir);
}

module_init(ktfs_init);
module_exit(ktfs_exit);

MODULE_DESCRIPTION("ktest: fail-nth sweeps of a driver: checkers and history out, DMA mappings in");
MODULE_LICENSE("GPL");
