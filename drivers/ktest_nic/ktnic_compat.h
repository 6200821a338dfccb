/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The kernel APIs ktest_nic uses that differ between the guest kernels
 * ktest ships (6.12, the default, and 6.1).  The driver is written against
 * 6.12; on older kernels this header supplies the newer spelling.  Kbuild
 * detects what the kernel has (KTNIC_HAVE_*) from its headers.
 */
#ifndef _KTNIC_COMPAT_H_
#define _KTNIC_COMPAT_H_

#include <linux/ethtool.h>
#include <linux/netdevice.h>
#include <linux/pci.h>

/* 6.6 split <net/page_pool.h> into types and helpers. */
#ifdef KTNIC_HAVE_PAGE_POOL_HELPERS
#include <net/page_pool/helpers.h>
#else
#include <net/page_pool.h>
#endif

/* 6.8 lets a page_pool name its netdev: netlink then lists the pool (and
 * keeps listing it, with the pages still out, after the netdev is gone).
 */
static inline void ktnic_pp_set_netdev(struct page_pool_params *pp,
				       struct net_device *netdev)
{
#ifdef KTNIC_HAVE_PP_NETDEV
	pp->netdev = netdev;
#endif
}

/* 6.8 renamed PCI_IRQ_LEGACY. */
#ifndef PCI_IRQ_INTX
#define PCI_IRQ_INTX	PCI_IRQ_LEGACY
#endif

/* 6.3 added the XDP feature flags that netlink reports. */
static inline void ktnic_set_xdp_features(struct net_device *netdev)
{
#ifdef KTNIC_HAVE_XDP_FEATURES
	netdev->xdp_features = NETDEV_XDP_ACT_BASIC | NETDEV_XDP_ACT_REDIRECT |
			       NETDEV_XDP_ACT_NDO_XMIT | NETDEV_XDP_ACT_RX_SG |
			       NETDEV_XDP_ACT_NDO_XMIT_SG;
#endif
}

/* 6.10 added the per-queue statistics of the netdev netlink family. */
#ifdef KTNIC_HAVE_QSTATS
#include <net/netdev_queues.h>

extern const struct netdev_stat_ops ktnic_stat_ops;
#endif

static inline void ktnic_set_stat_ops(struct net_device *netdev)
{
#ifdef KTNIC_HAVE_QSTATS
	netdev->stat_ops = &ktnic_stat_ops;
#endif
}

#ifndef KTNIC_HAVE_ETHTOOL_PUTS
static inline void ethtool_puts(u8 **data, const char *str)
{
	strscpy((char *)*data, str, ETH_GSTRING_LEN);
	*data += ETH_GSTRING_LEN;
}
#endif

#ifndef KTNIC_HAVE_RXFH_PARAM
/* Before 6.8 the key, table and hash function came as separate arguments. */
struct ethtool_rxfh_param {
	u8 hfunc;
	u32 *indir;
	u8 *key;
};
#endif

/* ktnic_ethtool.c: RSS key and table, in the 6.8 form. */
int ktnic_get_rxfh(struct net_device *netdev,
		   struct ethtool_rxfh_param *rxfh);
int ktnic_set_rxfh(struct net_device *netdev, struct ethtool_rxfh_param *rxfh,
		   struct netlink_ext_ack *extack);

#ifdef KTNIC_HAVE_RXFH_PARAM
#define ktnic_get_rxfh_op	ktnic_get_rxfh
#define ktnic_set_rxfh_op	ktnic_set_rxfh
#else
static inline int ktnic_get_rxfh_op(struct net_device *netdev, u32 *indir,
				    u8 *key, u8 *hfunc)
{
	struct ethtool_rxfh_param p = { .indir = indir, .key = key };
	int err = ktnic_get_rxfh(netdev, &p);

	if (hfunc)
		*hfunc = p.hfunc;
	return err;
}

static inline int ktnic_set_rxfh_op(struct net_device *netdev,
				    const u32 *indir, const u8 *key,
				    const u8 hfunc)
{
	struct ethtool_rxfh_param p = {
		.hfunc = hfunc,
		.indir = (u32 *)indir,
		.key = (u8 *)key,
	};

	return ktnic_set_rxfh(netdev, &p, NULL);
}
#endif

#endif /* _KTNIC_COMPAT_H_ */
