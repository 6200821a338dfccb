// SPDX-License-Identifier: GPL-2.0
/*
 * ethtool_ops.  All run in process context with rtnl held; the set_*
 * operations that touch rings or vectors take cfg_lock.
 *
 * Statistic names (ethtool -S) are stable: per queue q in 0..1,
 *   tx<q>_{packets,bytes,stop,wake,restart,busy,map_fail,csum_hw,timeouts,
 *         kicks,tso,xdp_xmit,xdp_xmit_err,xdp_done}
 *   rx<q>_{packets,bytes,alloc_fail,csum_err,csum_ok,frame_err,dropped,
 *         xdp_pass,xdp_drop,xdp_tx,xdp_redirect,xdp_aborted}
 * then rx_missed, rx_no_buffer, rx_overrun_irq, link_irq, resets,
 * pci_errors, slot_resets, function_resets, and the page_pool counters of
 * the Rx rings (rx_pp_*, summed; present with CONFIG_PAGE_POOL_STATS).
 * Queues that are not in use report zeros (or their earlier totals).
 */
#include <linux/bitfield.h>
#include <linux/ethtool.h>
#include <linux/netdevice.h>

#include "ktnic.h"

static const char ktnic_txq_names[][ETH_GSTRING_LEN] = {
	"packets", "bytes", "stop", "wake", "restart", "busy", "map_fail",
	"csum_hw", "timeouts", "kicks", "tso", "xdp_xmit", "xdp_xmit_err",
	"xdp_done",
};

static const char ktnic_rxq_names[][ETH_GSTRING_LEN] = {
	"packets", "bytes", "alloc_fail", "csum_err", "csum_ok", "frame_err",
	"dropped", "xdp_pass", "xdp_drop", "xdp_tx", "xdp_redirect",
	"xdp_aborted",
};

static const char ktnic_dev_names[][ETH_GSTRING_LEN] = {
	"rx_missed", "rx_no_buffer", "rx_overrun_irq", "link_irq", "resets",
	"pci_errors", "slot_resets", "function_resets",
};

#define KTNIC_N_TXQ_STATS	ARRAY_SIZE(ktnic_txq_names)
#define KTNIC_N_RXQ_STATS	ARRAY_SIZE(ktnic_rxq_names)
#define KTNIC_N_STATS	(KTNIC_MAX_TXQ * KTNIC_N_TXQ_STATS + \
			 KTNIC_MAX_RXQ * KTNIC_N_RXQ_STATS + \
			 ARRAY_SIZE(ktnic_dev_names) + ktnic_pool_stats_count())

static void ktnic_get_drvinfo(struct net_device *netdev,
			      struct ethtool_drvinfo *info)
{
	struct ktnic_priv *priv = netdev_priv(netdev);

	strscpy(info->driver, KTNIC_DRV_NAME, sizeof(info->driver));
	strscpy(info->bus_info, pci_name(priv->pdev), sizeof(info->bus_info));
}

static int ktnic_get_link_ksettings(struct net_device *netdev,
				    struct ethtool_link_ksettings *ks)
{
	/* bit numbers of enum ethtool_link_mode_bit_indices (uapi, fixed):
	 * 10baseT/Full 1, 100baseT/Full 3, 1000baseT/Full 5, Autoneg 6, TP 7
	 */
	static const u8 modes[] = { 1, 3, 5, 6, 7 };
	struct ktnic_priv *priv = netdev_priv(netdev);
	u32 status = ktnic_rd32(priv, KTNIC_STATUS);
	unsigned int i;

	ethtool_link_ksettings_zero_link_mode(ks, supported);
	ethtool_link_ksettings_zero_link_mode(ks, advertising);
	for (i = 0; i < ARRAY_SIZE(modes); i++) {
		__set_bit(modes[i], ks->link_modes.supported);
		__set_bit(modes[i], ks->link_modes.advertising);
	}
	ks->base.port = PORT_TP;
	ks->base.autoneg = AUTONEG_ENABLE;

	if (status == KTNIC_REG_GONE || !netif_carrier_ok(netdev)) {
		ks->base.speed = SPEED_UNKNOWN;
		ks->base.duplex = DUPLEX_UNKNOWN;
		return 0;
	}
	switch (FIELD_GET(KTNIC_STATUS_SPEED, status)) {
	case KTNIC_STATUS_SPEED_1000:
		ks->base.speed = SPEED_1000;
		break;
	case KTNIC_STATUS_SPEED_100:
		ks->base.speed = SPEED_100;
		break;
	default:
		ks->base.speed = SPEED_10;
		break;
	}
	ks->base.duplex = (status & KTNIC_STATUS_FD) ? DUPLEX_FULL :
						       DUPLEX_HALF;
	return 0;
}

static void ktnic_get_ringparam(struct net_device *netdev,
				struct ethtool_ringparam *ring,
				struct kernel_ethtool_ringparam *kring,
				struct netlink_ext_ack *extack)
{
	struct ktnic_priv *priv = netdev_priv(netdev);

	ring->rx_max_pending = KTNIC_RING_MAX;
	ring->tx_max_pending = KTNIC_RING_MAX;
	ring->rx_pending = priv->cfg.rx_count;
	ring->tx_pending = priv->cfg.tx_count;
}

static int ktnic_check_ring(u32 n, struct netlink_ext_ack *extack)
{
	BUILD_BUG_ON(KTNIC_RING_MIN != 64 || KTNIC_RING_MAX != 4096 ||
		     KTNIC_RING_ALIGN != 8);
	if (n < KTNIC_RING_MIN || n > KTNIC_RING_MAX) {
		NL_SET_ERR_MSG_MOD(extack, "ring size must be 64..4096");
		return -EINVAL;
	}
	/* RDLEN/TDLEN are multiples of 128 bytes */
	if (n % KTNIC_RING_ALIGN) {
		NL_SET_ERR_MSG_MOD(extack, "ring size must be a multiple of 8");
		return -EINVAL;
	}
	return 0;
}

static int ktnic_set_ringparam(struct net_device *netdev,
			       struct ethtool_ringparam *ring,
			       struct kernel_ethtool_ringparam *kring,
			       struct netlink_ext_ack *extack)
{
	struct ktnic_priv *priv = netdev_priv(netdev);
	struct ktnic_ring_cfg cfg = priv->cfg;
	int err;

	if (ring->rx_mini_pending || ring->rx_jumbo_pending) {
		NL_SET_ERR_MSG_MOD(extack, "no mini or jumbo rings");
		return -EINVAL;
	}
	err = ktnic_check_ring(ring->rx_pending, extack);
	if (err)
		return err;
	err = ktnic_check_ring(ring->tx_pending, extack);
	if (err)
		return err;
	/* a worst-case skb must fit (always true above the minimum) */
	BUILD_BUG_ON(KTNIC_RING_MIN < 2 * KTNIC_TX_STOP_THRESH);

	cfg.rx_count = ring->rx_pending;
	cfg.tx_count = ring->tx_pending;
	if (cfg.rx_count == priv->cfg.rx_count &&
	    cfg.tx_count == priv->cfg.tx_count)
		return 0;
	return ktnic_reconfigure(priv, &cfg);
}

static void ktnic_get_channels(struct net_device *netdev,
			       struct ethtool_channels *ch)
{
	struct ktnic_priv *priv = netdev_priv(netdev);
	bool msix = priv->irq_mode == KTNIC_IRQ_MSIX;

	ch->max_rx = priv->max_rxq;
	ch->max_tx = priv->max_txq;
	ch->max_other = msix ? 1 : 0;
	ch->max_combined = 0;
	ch->rx_count = priv->cfg.num_rxq;
	ch->tx_count = priv->cfg.num_txq;
	ch->other_count = msix ? 1 : 0;
	ch->combined_count = 0;
}

static int ktnic_set_channels(struct net_device *netdev,
			      struct ethtool_channels *ch)
{
	struct ktnic_priv *priv = netdev_priv(netdev);
	struct ktnic_ring_cfg cfg = priv->cfg;
	u32 other = priv->irq_mode == KTNIC_IRQ_MSIX ? 1 : 0;

	if (ch->combined_count || ch->other_count != other)
		return -EINVAL;
	if (!ch->rx_count || ch->rx_count > priv->max_rxq ||
	    !ch->tx_count || ch->tx_count > priv->max_txq)
		return -EINVAL;

	cfg.num_rxq = ch->rx_count;
	cfg.num_txq = ch->tx_count;
	if (cfg.num_rxq == priv->cfg.num_rxq &&
	    cfg.num_txq == priv->cfg.num_txq)
		return 0;
	return ktnic_reconfigure(priv, &cfg);
}

static int ktnic_get_coalesce(struct net_device *netdev,
			      struct ethtool_coalesce *ec,
			      struct kernel_ethtool_coalesce *kec,
			      struct netlink_ext_ack *extack)
{
	struct ktnic_priv *priv = netdev_priv(netdev);

	ec->rx_coalesce_usecs = priv->rx_usecs;
	ec->tx_coalesce_usecs = priv->tx_usecs;
	return 0;
}

static int ktnic_set_coalesce(struct net_device *netdev,
			      struct ethtool_coalesce *ec,
			      struct kernel_ethtool_coalesce *kec,
			      struct netlink_ext_ack *extack)
{
	struct ktnic_priv *priv = netdev_priv(netdev);

	if (ec->rx_coalesce_usecs > KTNIC_COAL_MAX_USECS ||
	    ec->tx_coalesce_usecs > KTNIC_COAL_MAX_USECS) {
		BUILD_BUG_ON(KTNIC_COAL_MAX_USECS != 16000);
		NL_SET_ERR_MSG_MOD(extack, "coalescing: at most 16000 usecs");
		return -EINVAL;
	}
	mutex_lock(&priv->cfg_lock);
	priv->rx_usecs = ec->rx_coalesce_usecs;
	priv->tx_usecs = ec->tx_coalesce_usecs;
	ktnic_set_coalesce_hw(priv);
	mutex_unlock(&priv->cfg_lock);
	return 0;
}

static void ktnic_get_strings(struct net_device *netdev, u32 sset, u8 *data)
{
	unsigned int q, i;

	if (sset != ETH_SS_STATS)
		return;
	for (q = 0; q < KTNIC_MAX_TXQ; q++)
		for (i = 0; i < KTNIC_N_TXQ_STATS; i++)
			ethtool_sprintf(&data, "tx%u_%s", q,
					ktnic_txq_names[i]);
	for (q = 0; q < KTNIC_MAX_RXQ; q++)
		for (i = 0; i < KTNIC_N_RXQ_STATS; i++)
			ethtool_sprintf(&data, "rx%u_%s", q,
					ktnic_rxq_names[i]);
	for (i = 0; i < ARRAY_SIZE(ktnic_dev_names); i++)
		ethtool_puts(&data, ktnic_dev_names[i]);
	page_pool_ethtool_stats_get_strings(data);
}

static int ktnic_get_sset_count(struct net_device *netdev, int sset)
{
	return sset == ETH_SS_STATS ? KTNIC_N_STATS : -EOPNOTSUPP;
}

static void ktnic_get_ethtool_stats(struct net_device *netdev,
				    struct ethtool_stats *stats, u64 *data)
{
	struct ktnic_priv *priv = netdev_priv(netdev);
	struct ktnic_dev_stats *ds = &priv->dstats;
	unsigned long flags;
	unsigned int start, q;

	for (q = 0; q < KTNIC_MAX_TXQ; q++) {
		struct ktnic_txq_clean_stats *c = &priv->txq_cstats[q];
		struct ktnic_txq_xmit_stats *x = &priv->txq_xstats[q];
		u64 v[KTNIC_N_TXQ_STATS];

		do {
			start = u64_stats_fetch_begin(&c->syncp);
			v[0] = u64_stats_read(&c->packets);
			v[1] = u64_stats_read(&c->bytes);
			v[3] = u64_stats_read(&c->wake);
			v[13] = u64_stats_read(&c->xdp_done);
		} while (u64_stats_fetch_retry(&c->syncp, start));
		do {
			start = u64_stats_fetch_begin(&x->syncp);
			v[2] = u64_stats_read(&x->stop);
			v[4] = u64_stats_read(&x->restart);
			v[5] = u64_stats_read(&x->busy);
			v[6] = u64_stats_read(&x->map_fail);
			v[7] = u64_stats_read(&x->csum_hw);
			v[8] = u64_stats_read(&x->timeouts);
			v[9] = u64_stats_read(&x->kicks);
			v[10] = u64_stats_read(&x->tso);
			v[11] = u64_stats_read(&x->xdp_xmit);
			v[12] = u64_stats_read(&x->xdp_xmit_err);
		} while (u64_stats_fetch_retry(&x->syncp, start));
		memcpy(data, v, sizeof(v));
		data += KTNIC_N_TXQ_STATS;
	}
	for (q = 0; q < KTNIC_MAX_RXQ; q++) {
		struct ktnic_rxq_stats *r = &priv->rxq_stats[q];
		u64 v[KTNIC_N_RXQ_STATS];

		do {
			start = u64_stats_fetch_begin(&r->syncp);
			v[0] = u64_stats_read(&r->packets);
			v[1] = u64_stats_read(&r->bytes);
			v[2] = u64_stats_read(&r->alloc_fail);
			v[3] = u64_stats_read(&r->csum_err);
			v[4] = u64_stats_read(&r->csum_ok);
			v[5] = u64_stats_read(&r->frame_err);
			v[6] = u64_stats_read(&r->dropped);
			v[7] = u64_stats_read(&r->xdp_pass);
			v[8] = u64_stats_read(&r->xdp_drop);
			v[9] = u64_stats_read(&r->xdp_tx);
			v[10] = u64_stats_read(&r->xdp_redirect);
			v[11] = u64_stats_read(&r->xdp_aborted);
		} while (u64_stats_fetch_retry(&r->syncp, start));
		memcpy(data, v, sizeof(v));
		data += KTNIC_N_RXQ_STATS;
	}

	ktnic_hw_update_stats(priv);
	spin_lock_irqsave(&priv->hw_lock, flags);
	*data++ = ds->rx_missed;
	*data++ = ds->rx_no_buffer;
	spin_unlock_irqrestore(&priv->hw_lock, flags);
	do {
		start = u64_stats_fetch_begin(&ds->irq_syncp);
		data[0] = u64_stats_read(&ds->rx_overrun_irq);
		data[1] = u64_stats_read(&ds->link_irq);
	} while (u64_stats_fetch_retry(&ds->irq_syncp, start));
	do {
		start = u64_stats_fetch_begin(&ds->rtnl_syncp);
		data[2] = u64_stats_read(&ds->resets);
		data[3] = u64_stats_read(&ds->pci_errors);
		data[4] = u64_stats_read(&ds->slot_resets);
		data[5] = u64_stats_read(&ds->function_resets);
	} while (u64_stats_fetch_retry(&ds->rtnl_syncp, start));
	ktnic_pool_stats(priv, data + 6);
}

/*
 * Receive side scaling.  The 82574 hashes TCP over IPv4/IPv6 on addresses
 * and ports and every other IP frame (UDP included) on the addresses only:
 * a Toeplitz hash with a 40-byte key; the low 7 bits of the hash pick one
 * of 128 table entries, which names the queue.
 */
static u64 ktnic_rss_fields(u32 flow_type)
{
	u64 ip = RXH_IP_SRC | RXH_IP_DST;

	switch (flow_type) {
	case TCP_V4_FLOW:
	case TCP_V6_FLOW:
		return ip | RXH_L4_B_0_1 | RXH_L4_B_2_3;
	case UDP_V4_FLOW:
	case UDP_V6_FLOW:
	case SCTP_V4_FLOW:
	case SCTP_V6_FLOW:
	case AH_ESP_V4_FLOW:
	case AH_ESP_V6_FLOW:
	case IPV4_FLOW:
	case IPV6_FLOW:
		return ip;
	default:
		return 0;
	}
}

static int ktnic_get_rxnfc(struct net_device *netdev,
			   struct ethtool_rxnfc *nfc, u32 *rule_locs)
{
	struct ktnic_priv *priv = netdev_priv(netdev);

	switch (nfc->cmd) {
	case ETHTOOL_GRXRINGS:
		nfc->data = priv->cfg.num_rxq;
		return 0;
	case ETHTOOL_GRXFH:
		nfc->data = ktnic_rss_fields(nfc->flow_type);
		return 0;
	default:
		return -EOPNOTSUPP;
	}
}

static u32 ktnic_get_rxfh_key_size(struct net_device *netdev)
{
	return sizeof_field(struct ktnic_priv, rss_key);
}

static u32 ktnic_get_rxfh_indir_size(struct net_device *netdev)
{
	return KTNIC_RETA_ENTRIES;
}

int ktnic_get_rxfh(struct net_device *netdev, struct ethtool_rxfh_param *rxfh)
{
	struct ktnic_priv *priv = netdev_priv(netdev);
	int i;

	rxfh->hfunc = ETH_RSS_HASH_TOP;
	mutex_lock(&priv->cfg_lock);
	if (rxfh->indir)
		for (i = 0; i < KTNIC_RETA_ENTRIES; i++)
			rxfh->indir[i] = priv->rss_indir[i];
	if (rxfh->key)
		memcpy(rxfh->key, priv->rss_key, sizeof(priv->rss_key));
	mutex_unlock(&priv->cfg_lock);
	return 0;
}

/* the core has checked every entry against ETHTOOL_GRXRINGS */
int ktnic_set_rxfh(struct net_device *netdev, struct ethtool_rxfh_param *rxfh,
		   struct netlink_ext_ack *extack)
{
	struct ktnic_priv *priv = netdev_priv(netdev);
	int i;

	if (rxfh->hfunc != ETH_RSS_HASH_NO_CHANGE &&
	    rxfh->hfunc != ETH_RSS_HASH_TOP)
		return -EOPNOTSUPP;
	mutex_lock(&priv->cfg_lock);
	if (rxfh->indir)
		for (i = 0; i < KTNIC_RETA_ENTRIES; i++)
			priv->rss_indir[i] = rxfh->indir[i];
	if (rxfh->key)
		memcpy(priv->rss_key, rxfh->key, sizeof(priv->rss_key));
	ktnic_set_rss_hw(priv);
	mutex_unlock(&priv->cfg_lock);
	return 0;
}

/*
 * ethtool --reset: a full down/up resets the MAC, its DMA engines, the
 * filters, offloads and interrupt set-up; the PHY is QEMU's and is not
 * reset.  rtnl held.
 */
#define KTNIC_RESET_PARTS	(ETH_RESET_MAC | ETH_RESET_DMA | \
				 ETH_RESET_FILTER | ETH_RESET_OFFLOAD | \
				 ETH_RESET_IRQ)

static int ktnic_ethtool_reset(struct net_device *netdev, u32 *flags)
{
	struct ktnic_priv *priv = netdev_priv(netdev);

	if (!(*flags & KTNIC_RESET_PARTS))
		return -EOPNOTSUPP;
	if (!ktnic_live(priv))
		return -ENETDOWN;
	ktnic_reset(priv);
	*flags &= ~KTNIC_RESET_PARTS;
	return 0;
}

const struct ethtool_ops ktnic_ethtool_ops = {
	.supported_coalesce_params = ETHTOOL_COALESCE_USECS,
	.get_drvinfo		= ktnic_get_drvinfo,
	.get_link		= ethtool_op_get_link,
	.get_link_ksettings	= ktnic_get_link_ksettings,
	.get_ringparam		= ktnic_get_ringparam,
	.set_ringparam		= ktnic_set_ringparam,
	.get_channels		= ktnic_get_channels,
	.set_channels		= ktnic_set_channels,
	.get_coalesce		= ktnic_get_coalesce,
	.set_coalesce		= ktnic_set_coalesce,
	.get_strings		= ktnic_get_strings,
	.get_sset_count		= ktnic_get_sset_count,
	.get_ethtool_stats	= ktnic_get_ethtool_stats,
	.get_rxnfc		= ktnic_get_rxnfc,
	.get_rxfh_key_size	= ktnic_get_rxfh_key_size,
	.get_rxfh_indir_size	= ktnic_get_rxfh_indir_size,
	.reset			= ktnic_ethtool_reset,
	.get_rxfh		= ktnic_get_rxfh_op,
	.set_rxfh		= ktnic_set_rxfh_op,
};
