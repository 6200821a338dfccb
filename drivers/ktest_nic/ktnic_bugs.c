// SPDX-License-Identifier: GPL-2.0
/*
 * Named bug injections, off by default: bugs=NAME[,NAME...] at load time.
 *
 * Each one re-creates a class of production NIC driver bug with the
 * smallest change to the driver's real code path (the sites test
 * ktnic_bug()).  They exist so that ktest can show, every night, that it
 * turns each class into a failing test with the right title (ktest zoo),
 * and that the driver without them produces no report at all.
 */
#include <linux/module.h>
#include <linux/string.h>

#include "ktnic.h"

unsigned long ktnic_bugs;

static const char * const ktnic_bug_names[KTNIC_BUG_COUNT] = {
	[KTNIC_BUG_TX_UNMAP_MISSING]	= "tx_unmap_missing",
	[KTNIC_BUG_TX_UNMAP_SIZE]	= "tx_unmap_wrong_size",
	[KTNIC_BUG_TX_UNMAP_DIR]	= "tx_unmap_wrong_direction",
	[KTNIC_BUG_TX_DOUBLE_UNMAP]	= "tx_double_unmap",
	[KTNIC_BUG_MAP_ERROR_UNCHECKED]	= "map_error_unchecked",
	[KTNIC_BUG_RX_DMA_AFTER_FREE]	= "rx_dma_after_free",
	[KTNIC_BUG_TX_SKB_UAF]		= "tx_skb_use_after_free",
	[KTNIC_BUG_FREE_NETDEV_EARLY]	= "free_netdev_early",
	[KTNIC_BUG_STATS_NO_RINGS]	= "stats_without_rings",
	[KTNIC_BUG_WORK_AFTER_REMOVE]	= "work_outlives_remove",
	[KTNIC_BUG_PROBE_LEAK]		= "probe_error_leak",
	[KTNIC_BUG_OPEN_RACES_PROBE]	= "open_races_probe",
	[KTNIC_BUG_BUDGET_AFTER_COMPLETE] = "budget_after_complete",
	[KTNIC_BUG_SLEEP_IN_POLL]	= "sleep_in_poll",
	[KTNIC_BUG_RTNL_INVERSION]	= "rtnl_inversion",
	[KTNIC_BUG_SLEEP_UNDER_SPINLOCK] = "sleep_under_spinlock",
	[KTNIC_BUG_TX_NO_WAKE]		= "tx_no_wake",
	[KTNIC_BUG_NO_WAKE_AFTER_RESET]	= "no_wake_after_reset",
	[KTNIC_BUG_BQL_NOT_RESET]	= "bql_not_reset",
	[KTNIC_BUG_NO_RESET_PREPARE]	= "no_reset_prepare",
	[KTNIC_BUG_NO_STATE_RESTORE]	= "no_state_restore",
	[KTNIC_BUG_RX_PAGE_REUSE]	= "rx_page_reuse",
	[KTNIC_BUG_JUMBO_FRAG_DROPPED]	= "jumbo_frag_dropped",
	[KTNIC_BUG_TSO_BQL_MISMATCH]	= "tso_bql_mismatch",
	[KTNIC_BUG_TSO_MSS_FROM_MTU]	= "tso_mss_from_mtu",
	[KTNIC_BUG_XDP_NO_FLUSH]	= "xdp_no_flush",
	[KTNIC_BUG_XDP_FRAGS_UNCHECKED]	= "xdp_frags_unchecked",
	[KTNIC_BUG_RX_NO_REFILL_RETRY]	= "rx_no_refill_retry",
	[KTNIC_BUG_RING_UNWIND_LEAK]	= "ring_unwind_leak",
	[KTNIC_BUG_DETACH_RX_LEAK]	= "detach_rx_leak",
	[KTNIC_BUG_SHUTDOWN_NAPI_TWICE]	= "shutdown_napi_twice",
};

static char *bugs;
module_param(bugs, charp, 0444);
MODULE_PARM_DESC(bugs, "comma-separated bug injections (names in README.md); none by default");

/* Module init: an unknown name fails the load, so a typo never passes as a
 * clean run.
 */
int ktnic_bugs_parse(void)
{
	char *list, *cur, *name;
	int i, err = 0;

	if (!bugs || !*bugs)
		return 0;
	list = kstrdup(bugs, GFP_KERNEL);
	if (!list)
		return -ENOMEM;
	cur = list;
	while ((name = strsep(&cur, ","))) {
		if (!*name)
			continue;
		i = match_string(ktnic_bug_names, KTNIC_BUG_COUNT, name);
		if (i < 0) {
			pr_err(KTNIC_DRV_NAME ": unknown bug injection '%s'\n", name);
			err = -EINVAL;
			break;
		}
		set_bit(i, &ktnic_bugs);
		pr_warn(KTNIC_DRV_NAME ": bug injection '%s' is on\n", name);
	}
	kfree(list);
	return err;
}

const char *ktnic_bug_name(unsigned int bug)
{
	return bug < KTNIC_BUG_COUNT ? ktnic_bug_names[bug] : "?";
}
