// SPDX-License-Identifier: GPL-2.0
/*
 * net_device_ops, bringing the hardware up and down, reconfiguration and
 * the reset and link work items.
 *
 * Allocation (rings, irqs) happens in ndo_open/ktnic_reconfigure() and may
 * fail; ktnic_up()/ktnic_down() only program or stop the hardware and
 * cannot fail, so open/stop, reset, MTU and ring changes share them.
 */
#include <linux/bitfield.h>
#include <linux/etherdevice.h>
#include <linux/ethtool.h>
#include <linux/rtnetlink.h>
#include <linux/tcp.h>

#include "ktnic.h"

static u32 ktnic_rx_mode_bits(struct net_device *netdev)
{
	u32 bits = 0;

	if (netdev->flags & IFF_PROMISC)
		bits |= KTNIC_RCTL_UPE | KTNIC_RCTL_MPE;
	if (netdev->flags & IFF_ALLMULTI)
		bits |= KTNIC_RCTL_MPE;
	/* only the station address is programmed (RAL/RAH 0): the core falls
	 * back to promiscuous mode for extra unicast addresses
	 */
	if (!netdev_uc_empty(netdev))
		bits |= KTNIC_RCTL_UPE;
	return bits;
}

/*
 * Multicast filter: a 4096-bit hash table in the MTA registers. With
 * RCTL.MO = 0 the device hashes destination address bits 47:36, that is the
 * high nibble of byte 4 and all of byte 5.  Caller holds hw_lock.
 */
static void ktnic_write_mta(struct ktnic_priv *priv, struct net_device *netdev)
{
	u32 on_stack[KTNIC_MTA_NUM] = { };
	struct netdev_hw_addr *ha;
	u32 *mta = on_stack;
	int i;

	/* a sleeping allocation under hw_lock (and the address list lock) */
	if (ktnic_bug(SLEEP_UNDER_SPINLOCK))
		mta = kcalloc(KTNIC_MTA_NUM, sizeof(*mta), GFP_KERNEL) ?: on_stack;

	netdev_for_each_mc_addr(ha, netdev) {
		u32 hash = ((ha->addr[5] << 8 | ha->addr[4]) >> 4) & 0xfff;

		mta[hash >> 5] |= BIT(hash & 0x1f);
	}
	for (i = 0; i < KTNIC_MTA_NUM; i++)
		ktnic_wr32(priv, KTNIC_MTA(i), mta[i]);
	if (mta != on_stack)
		kfree(mta);
}

static void ktnic_set_rx_mode(struct net_device *netdev)
{
	struct ktnic_priv *priv = netdev_priv(netdev);
	unsigned long flags;
	u32 rctl;

	/* during recovery the filters are written again by ktnic_up() */
	if (test_bit(KTNIC_S_DETACHED, &priv->state))
		return;
	spin_lock_irqsave(&priv->hw_lock, flags);
	rctl = ktnic_rd32(priv, KTNIC_RCTL);
	if (rctl != KTNIC_REG_GONE) {
		ktnic_write_mta(priv, netdev);
		rctl &= ~(KTNIC_RCTL_UPE | KTNIC_RCTL_MPE);
		ktnic_wr32(priv, KTNIC_RCTL, rctl | ktnic_rx_mode_bits(netdev));
	}
	spin_unlock_irqrestore(&priv->hw_lock, flags);
}

/*
 * At probe and when the Rx queue count changes: unless the user set a table
 * (ethtool -X), entries spread evenly over the queues in use.  Not from
 * set_rxfh: the core marks the table user-set only after that returns.
 */
void ktnic_rss_default_indir(struct ktnic_priv *priv)
{
	u32 n = priv->cfg.num_rxq;
	int i;

	if (netif_is_rxfh_configured(priv->netdev))
		return;
	for (i = 0; i < KTNIC_RETA_ENTRIES; i++)
		priv->rss_indir[i] = ethtool_rxfh_indir_default(i, n);
}

/*
 * Key and table.  The hardware hashes the same whatever the queue count
 * (the hash feeds skb->hash); with one queue every entry says queue 0.
 */
static void ktnic_hw_setup_rss(struct ktnic_priv *priv)
{
	bool two = priv->cfg.num_rxq > 1;
	u32 reta;
	int i, j;

	for (i = 0; i < KTNIC_RSSRK_REGS; i++)
		ktnic_wr32(priv, KTNIC_RSSRK(i), priv->rss_key[i]);
	for (i = 0; i < KTNIC_RETA_REGS; i++) {
		reta = 0;
		for (j = 0; j < 4; j++)
			if (two && priv->rss_indir[4 * i + j])
				reta |= KTNIC_RETA_Q1 << (8 * j);
		ktnic_wr32(priv, KTNIC_RETA(i), reta);
	}
	ktnic_wr32(priv, KTNIC_MRQC, KTNIC_MRQC_RSS_2Q | KTNIC_MRQC_IPV4 |
		   KTNIC_MRQC_IPV4_TCP | KTNIC_MRQC_IPV6 |
		   KTNIC_MRQC_IPV6_TCP | KTNIC_MRQC_IPV6_TCP_EX);
}

/*
 * New key or table on a running device: the next frame is hashed and
 * steered with it.  cfg_lock held.
 */
void ktnic_set_rss_hw(struct ktnic_priv *priv)
{
	lockdep_assert_held(&priv->cfg_lock);
	if (test_bit(KTNIC_S_UP, &priv->state))
		ktnic_hw_setup_rss(priv);
}

static void ktnic_hw_configure(struct ktnic_priv *priv)
{
	struct ktnic_ring_set *set = &priv->rings;
	struct net_device *netdev = priv->netdev;
	unsigned long flags;
	u32 rctl;
	int i;

	ktnic_wr32(priv, KTNIC_CTRL, ktnic_rd32(priv, KTNIC_CTRL) |
		   KTNIC_CTRL_SLU | KTNIC_CTRL_ASDE);
	ktnic_hw_write_mac(priv, netdev->dev_addr);
	for (i = 0; i < KTNIC_MTA_NUM; i++)
		ktnic_wr32(priv, KTNIC_MTA(i), 0);

	/* transmit */
	for (i = 0; i < set->cfg.num_txq; i++)
		ktnic_ring_hw_init_tx(priv, set->tx[i]);
	ktnic_wr32(priv, KTNIC_TIPG, KTNIC_TIPG_DEFAULT);
	ktnic_wr32(priv, KTNIC_TCTL, KTNIC_TCTL_EN | KTNIC_TCTL_PSP |
		   KTNIC_TCTL_RTLC | 15 << KTNIC_TCTL_CT_SHIFT |
		   63 << KTNIC_TCTL_COLD_SHIFT);

	/* receive: extended descriptors, checksum status, RSS hash */
	ktnic_wr32(priv, KTNIC_RFCTL, KTNIC_RFCTL_EXTEN);
	ktnic_wr32(priv, KTNIC_RXCSUM, KTNIC_RXCSUM_IPOFL |
		   KTNIC_RXCSUM_TUOFL | KTNIC_RXCSUM_PCSD);
	ktnic_hw_setup_rss(priv);
	for (i = 0; i < set->cfg.num_rxq; i++)
		ktnic_ring_hw_init_rx(priv, set->rx[i]);

	/* Rx stays off until interrupts are on: see ktnic_up().  Buffers
	 * of KTNIC_RX_BUF_LEN; a longer frame takes several.
	 */
	rctl = KTNIC_RCTL_BAM | KTNIC_RCTL_SECRC | KTNIC_RCTL_SZ_2048;
	if (netdev->mtu > ETH_DATA_LEN)
		rctl |= KTNIC_RCTL_LPE;
	spin_lock_irqsave(&priv->hw_lock, flags);
	ktnic_write_mta(priv, netdev);
	ktnic_wr32(priv, KTNIC_RCTL, rctl | ktnic_rx_mode_bits(netdev));
	spin_unlock_irqrestore(&priv->hw_lock, flags);

	for (i = 0; i < set->cfg.num_rxq; i++)
		ktnic_rx_refill(set->rx[i], ktnic_ring_unused(set->rx[i]));
}

static void ktnic_rx_enable(struct ktnic_priv *priv)
{
	unsigned long flags;

	spin_lock_irqsave(&priv->hw_lock, flags);
	ktnic_wr32(priv, KTNIC_RCTL,
		   ktnic_rd32(priv, KTNIC_RCTL) | KTNIC_RCTL_EN);
	spin_unlock_irqrestore(&priv->hw_lock, flags);
}

/*
 * cfg_lock held, rings allocated, irqs requested.  Cannot fail.
 *
 * Order matters: the device holds frames back while Rx is off and hands
 * over the whole backlog the moment Rx is enabled, enough to fill the
 * ring.  If that happened before the stale causes are cleared and IMS is
 * written, its interrupt would be lost, no poll would refill the ring, and
 * a full ring never raises another one.  So: rings filled, NAPI on,
 * interrupts on, and only then RCTL.EN.
 */
void ktnic_up(struct ktnic_priv *priv)
{
	int i;

	lockdep_assert_held(&priv->cfg_lock);

	ktnic_irq_map_rings(priv);
	ktnic_hw_configure(priv);

	for (i = 0; i < priv->num_vectors; i++) {
		struct ktnic_vector *v = &priv->vectors[i];

		if (v->napi_added && (v->num_rxr || v->num_txr)) {
			napi_enable(&v->napi);
			v->napi_on = true;
		}
	}
	ktnic_irq_hw_enable(priv);
	ktnic_rx_enable(priv);
	set_bit(KTNIC_S_UP, &priv->state);
	if (!(ktnic_bug(NO_WAKE_AFTER_RESET) &&
	      test_bit(KTNIC_S_RESETTING, &priv->state)))
		netif_tx_start_all_queues(priv->netdev);
	schedule_work(&priv->link_work);
	schedule_delayed_work(&priv->service_task, KTNIC_SERVICE_INTERVAL);
}

/*
 * cfg_lock held.  Stops DMA and interrupts, drops all buffers.  Does
 * nothing when the hardware is not up (a detach already took it down).
 */
void ktnic_down(struct ktnic_priv *priv)
{
	unsigned long flags;
	int i;

	lockdep_assert_held(&priv->cfg_lock);

	if (!test_and_clear_bit(KTNIC_S_UP, &priv->state))
		return;
	/* ndo_xdp_xmit callers that saw UP set are done after this */
	synchronize_net();
	netif_carrier_off(priv->netdev);
	/* a run already started sees UP clear and does not come back */
	cancel_delayed_work(&priv->service_task);

	/* no poll runs after this, so nothing wakes a Tx queue again */
	for (i = 0; i < priv->num_vectors; i++) {
		struct ktnic_vector *v = &priv->vectors[i];

		if (v->napi_on) {
			napi_disable(&v->napi);
			v->napi_on = false;
		}
	}
	/* waits for ndo_start_xmit callers through the queue locks */
	netif_tx_disable(priv->netdev);

	if (!ktnic_gone(priv)) {
		/* hw_lock: ndo_set_rx_mode must not re-enable Rx */
		spin_lock_irqsave(&priv->hw_lock, flags);
		if (!ktnic_bug(RX_DMA_AFTER_FREE))
			ktnic_wr32(priv, KTNIC_RCTL, 0);
		spin_unlock_irqrestore(&priv->hw_lock, flags);
		ktnic_wr32(priv, KTNIC_TCTL, 0);
		ktnic_irq_hw_disable(priv);
		/* let DMA the device had started finish before unmapping */
		usleep_range(10000, 12000);
	}
	ktnic_irq_synchronize(priv);

	for (i = 0; i < priv->rings.cfg.num_txq; i++)
		ktnic_ring_clean_tx(priv->rings.tx[i]);
	for (i = 0; i < priv->rings.cfg.num_rxq; i++) {
		struct ktnic_ring *rx = priv->rings.rx[i];

		/* bug detach_rx_leak: a reset starts the ring over without
		 * giving its pages back to the pool
		 */
		if (ktnic_bug(DETACH_RX_LEAK) &&
		    test_bit(KTNIC_S_DETACHED, &priv->state))
			memset(rx->rx_buf, 0, rx->count * sizeof(*rx->rx_buf));
		ktnic_ring_clean_rx(rx);
	}
}

static int ktnic_open(struct net_device *netdev)
{
	struct ktnic_priv *priv = netdev_priv(netdev);
	int err;

	mutex_lock(&priv->cfg_lock);
	err = ktnic_alloc_ring_set(priv, &priv->cfg, &priv->rings);
	if (err)
		goto err_unlock;

	err = netif_set_real_num_tx_queues(netdev, priv->cfg.num_txq);
	if (err)
		goto err_free_rings;
	err = netif_set_real_num_rx_queues(netdev, priv->cfg.num_rxq);
	if (err)
		goto err_free_rings;

	err = ktnic_irq_request(priv);
	if (err)
		goto err_free_rings;

	ktnic_up(priv);
	mutex_unlock(&priv->cfg_lock);
	return 0;

err_free_rings:
	ktnic_free_ring_set(&priv->rings);
err_unlock:
	mutex_unlock(&priv->cfg_lock);
	return err;
}

static int ktnic_stop(struct net_device *netdev)
{
	struct ktnic_priv *priv = netdev_priv(netdev);

	mutex_lock(&priv->cfg_lock);
	ktnic_down(priv);
	ktnic_irq_release(priv);
	ktnic_free_ring_set(&priv->rings);
	mutex_unlock(&priv->cfg_lock);
	return 0;
}

/*
 * Replace the running rings with a new configuration.  rtnl held.  The new
 * rings are allocated before the old ones are touched: on failure the old
 * configuration keeps running and the error is returned.
 */
int ktnic_reconfigure(struct ktnic_priv *priv,
		      const struct ktnic_ring_cfg *cfg)
{
	struct net_device *netdev = priv->netdev;
	struct ktnic_ring_set old, new;
	int err;

	ASSERT_RTNL();
	mutex_lock(&priv->cfg_lock);
	if (!ktnic_live(priv)) {
		err = netif_set_real_num_tx_queues(netdev, cfg->num_txq);
		if (!err)
			err = netif_set_real_num_rx_queues(netdev,
							   cfg->num_rxq);
		if (!err) {
			priv->cfg = *cfg;
			ktnic_rss_default_indir(priv);
		}
		goto out_unlock;
	}

	err = ktnic_alloc_ring_set(priv, cfg, &new);
	if (err)
		goto out_unlock;

	ktnic_down(priv);
	err = netif_set_real_num_tx_queues(netdev, cfg->num_txq);
	if (!err)
		err = netif_set_real_num_rx_queues(netdev, cfg->num_rxq);
	if (err) {
		/* back to the old counts; shrinking or equal cannot fail */
		netif_set_real_num_tx_queues(netdev, priv->cfg.num_txq);
		netif_set_real_num_rx_queues(netdev, priv->cfg.num_rxq);
		ktnic_up(priv);
		ktnic_free_ring_set(&new);
		goto out_unlock;
	}

	old = priv->rings;
	priv->rings = new;
	priv->cfg = *cfg;
	ktnic_rss_default_indir(priv);
	ktnic_up(priv);
	ktnic_free_ring_set(&old);

out_unlock:
	mutex_unlock(&priv->cfg_lock);
	return err;
}

/* Apply priv->rx_usecs/tx_usecs to a running device.  cfg_lock held. */
void ktnic_set_coalesce_hw(struct ktnic_priv *priv)
{
	lockdep_assert_held(&priv->cfg_lock);
	/* only the throttle registers: the ring mapping stays as it is,
	 * NAPI polls may be running
	 */
	ktnic_irq_set_throttle(priv, test_bit(KTNIC_S_UP, &priv->state));
}

/* Can the program see whole frames of this MTU?  Without multi-buffer
 * support (xdp.frags) a frame must fit one Rx buffer.
 */
static bool ktnic_xdp_mtu_ok(const struct bpf_prog *prog, int mtu)
{
	if (ktnic_bug(XDP_FRAGS_UNCHECKED))
		return true;
	return !prog || prog->aux->xdp_has_frags || mtu <= KTNIC_XDP_MAX_MTU;
}

static int ktnic_change_mtu(struct net_device *netdev, int new_mtu)
{
	struct ktnic_priv *priv = netdev_priv(netdev);
	bool live;

	if (!ktnic_xdp_mtu_ok(priv->xdp_prog, new_mtu)) {
		netdev_warn(netdev, "MTU %d needs an XDP program that handles multi-buffer frames (xdp.frags); the attached one does not\n",
			    new_mtu);
		return -EINVAL;
	}
	/* Rx buffers have a fixed size and long frames chain them, so no
	 * reallocation; only RCTL.LPE changes.
	 */
	mutex_lock(&priv->cfg_lock);
	live = ktnic_live(priv);
	if (live)
		ktnic_down(priv);
	WRITE_ONCE(netdev->mtu, new_mtu);
	if (live)
		ktnic_up(priv);
	mutex_unlock(&priv->cfg_lock);
	return 0;
}

static int ktnic_set_mac(struct net_device *netdev, void *p)
{
	struct ktnic_priv *priv = netdev_priv(netdev);
	struct sockaddr *addr = p;

	if (!is_valid_ether_addr(addr->sa_data))
		return -EADDRNOTAVAIL;
	eth_hw_addr_set(netdev, addr->sa_data);
	if (!ktnic_gone(priv))
		ktnic_hw_write_mac(priv, netdev->dev_addr);
	return 0;
}

/*
 * A Tx queue made no progress for watchdog_timeo.  Timer softirq, every
 * xmit lock held.  Proportionate: a device that is gone is detached; the
 * first timeout only rings the doorbell again and raises the queue's
 * interrupt (a lost interrupt or doorbell is the cheap explanation); a
 * second one soon after gets a full reset, at most one per
 * KTNIC_RESET_INTERVAL.
 */
static void ktnic_tx_timeout(struct net_device *netdev, unsigned int txqueue)
{
	struct ktnic_priv *priv = netdev_priv(netdev);
	struct ktnic_txq_xmit_stats *st;
	struct ktnic_ring *ring;
	bool kick;

	if (txqueue >= KTNIC_MAX_TXQ || !priv->rings.tx[txqueue])
		return;
	ring = priv->rings.tx[txqueue];
	st = &priv->txq_xstats[txqueue];
	if (ktnic_check_gone(priv))
		return;

	kick = time_after(jiffies, priv->tx_kicked[txqueue] +
			  2 * netdev->watchdog_timeo);
	/* every xmit lock is held: no other writer of st */
	u64_stats_update_begin(&st->syncp);
	u64_stats_inc(&st->timeouts);
	if (kick)
		u64_stats_inc(&st->kicks);
	u64_stats_update_end(&st->syncp);

	if (kick) {
		priv->tx_kicked[txqueue] = jiffies;
		netdev_warn(netdev, "Tx queue %u timed out (head %u, tail %u, next to clean %u): kicking it\n",
			    txqueue, ktnic_rd32(priv, KTNIC_TDH(txqueue)),
			    ktnic_rd32(priv, KTNIC_TDT(txqueue)),
			    READ_ONCE(ring->next_to_clean));
		writel(READ_ONCE(ring->next_to_use), ring->tail);
		if (ring->vector)
			ktnic_irq_kick(ring->vector);
		return;
	}
	netdev_warn(netdev, "Tx queue %u timed out again after a kick: resetting\n",
		    txqueue);
	ktnic_schedule_reset(priv);
}

/* True while the hardware may be programmed: open and not handed off. */
bool ktnic_live(struct ktnic_priv *priv)
{
	return netif_running(priv->netdev) &&
	       !test_bit(KTNIC_S_DETACHED, &priv->state);
}

/* rtnl held: count one event of the rtnl_syncp group. */
void ktnic_count_rtnl_event(struct ktnic_priv *priv, u64_stats_t *counter)
{
	struct ktnic_dev_stats *ds = &priv->dstats;

	ASSERT_RTNL();
	u64_stats_update_begin(&ds->rtnl_syncp);
	u64_stats_inc(counter);
	u64_stats_update_end(&ds->rtnl_syncp);
}

/* Full reset of a running device: everything down and up again.  rtnl. */
void ktnic_reset(struct ktnic_priv *priv)
{
	ASSERT_RTNL();
	WRITE_ONCE(priv->last_reset, jiffies);
	if (!ktnic_live(priv) || ktnic_check_gone(priv))
		return;
	mutex_lock(&priv->cfg_lock);
	set_bit(KTNIC_S_RESETTING, &priv->state);
	ktnic_down(priv);
	ktnic_up(priv);
	clear_bit(KTNIC_S_RESETTING, &priv->state);
	mutex_unlock(&priv->cfg_lock);
	ktnic_count_rtnl_event(priv, &priv->dstats.resets);
	netdev_info(priv->netdev, "reset done\n");
}

/* Any context.  The reset runs in reset_task, no sooner than
 * KTNIC_RESET_INTERVAL after the previous one.
 */
void ktnic_schedule_reset(struct ktnic_priv *priv)
{
	unsigned long next = READ_ONCE(priv->last_reset) + KTNIC_RESET_INTERVAL;
	unsigned long delay = 0;

	if (test_bit(KTNIC_S_REMOVING, &priv->state))
		return;
	if (priv->last_reset && time_before(jiffies, next))
		delay = next - jiffies;
	schedule_delayed_work(&priv->reset_task, delay);
}

/* The reset owner: driver resets, and detaching a device found gone. */
void ktnic_reset_task(struct work_struct *work)
{
	struct ktnic_priv *priv = container_of(to_delayed_work(work),
					       struct ktnic_priv, reset_task);

	rtnl_lock();
	if (test_bit(KTNIC_S_REMOVING, &priv->state))
		goto out_unlock;
	if (test_bit(KTNIC_S_DEAD, &priv->state)) {
		if (!test_bit(KTNIC_S_DETACHED, &priv->state)) {
			ktnic_detach(priv);
			netdev_err(priv->netdev, "device does not respond (reads return all ones): detached; only removing it is left\n");
		}
		goto out_unlock;
	}
	ktnic_reset(priv);
out_unlock:
	rtnl_unlock();
}

/*
 * Any context.  If the device reads all ones, latch it dead (no MMIO from
 * now on) and let reset_task detach the interface.  During a detach
 * (recovery, function reset) reads may legitimately fail: not latched.
 */
bool ktnic_check_gone(struct ktnic_priv *priv)
{
	if (test_bit(KTNIC_S_DEAD, &priv->state))
		return true;
	if (test_bit(KTNIC_S_DETACHED, &priv->state) || !ktnic_gone(priv))
		return false;
	if (!test_and_set_bit(KTNIC_S_DEAD, &priv->state))
		schedule_delayed_work(&priv->reset_task, 0);
	return true;
}

/*
 * rtnl held.  Hand the device off (PCI error recovery or a function reset
 * follows): no more MMIO from the stack or from us until ktnic_attach().
 * Rings, vectors and irqs stay allocated; the buffers are dropped.
 */
void ktnic_detach(struct ktnic_priv *priv)
{
	ASSERT_RTNL();
	if (test_and_set_bit(KTNIC_S_DETACHED, &priv->state))
		return;
	netif_device_detach(priv->netdev);
	mutex_lock(&priv->cfg_lock);
	ktnic_down(priv);
	mutex_unlock(&priv->cfg_lock);
}

/*
 * rtnl held, the device usable again (and quiesced by the caller).  Brings
 * the interface back as it was; a dead device stays detached.
 */
void ktnic_attach(struct ktnic_priv *priv)
{
	ASSERT_RTNL();
	if (!test_bit(KTNIC_S_DETACHED, &priv->state) ||
	    test_bit(KTNIC_S_DEAD, &priv->state))
		return;
	clear_bit(KTNIC_S_DETACHED, &priv->state);
	mutex_lock(&priv->cfg_lock);
	if (netif_running(priv->netdev))
		ktnic_up(priv);
	mutex_unlock(&priv->cfg_lock);
	netif_device_attach(priv->netdev);
}

void ktnic_link_work(struct work_struct *work)
{
	struct ktnic_priv *priv = container_of(work, struct ktnic_priv,
					       link_work);
	struct net_device *netdev = priv->netdev;
	u32 status, speed;

	/* cfg_lock: carrier only changes while the device is up */
	mutex_lock(&priv->cfg_lock);
	/* carrier changes "under rtnl": rtnl taken inside cfg_lock */
	if (ktnic_bug(RTNL_INVERSION)) {
		rtnl_lock();
		rtnl_unlock();
	}
	if (!test_bit(KTNIC_S_UP, &priv->state))
		goto out_unlock;

	status = ktnic_rd32(priv, KTNIC_STATUS);
	if (status == KTNIC_REG_GONE)
		ktnic_check_gone(priv);
	if (status == KTNIC_REG_GONE || !(status & KTNIC_STATUS_LU)) {
		if (netif_carrier_ok(netdev)) {
			netif_carrier_off(netdev);
			netdev_info(netdev, "link down\n");
		}
		goto out_unlock;
	}

	if (!netif_carrier_ok(netdev)) {
		speed = FIELD_GET(KTNIC_STATUS_SPEED, status);
		netdev_info(netdev, "link up, %u Mb/s, %s duplex\n",
			    speed == KTNIC_STATUS_SPEED_1000 ? 1000 :
			    speed == KTNIC_STATUS_SPEED_100 ? 100 : 10,
			    status & KTNIC_STATUS_FD ? "full" : "half");
		netif_carrier_on(netdev);
	}
out_unlock:
	mutex_unlock(&priv->cfg_lock);
}

/*
 * Periodic while up.  Nothing else reads the device when no interrupt
 * comes: this notices a device that stopped answering (reads of all ones),
 * a link change whose interrupt was lost (or a device whose registers read
 * as zeros: no link), folds the clear-on-read counters, and polls Rx rings
 * that allocation failures left short.
 */
void ktnic_service_task(struct work_struct *work)
{
	struct ktnic_priv *priv = container_of(to_delayed_work(work),
					       struct ktnic_priv, service_task);
	u32 status;

	if (!test_bit(KTNIC_S_UP, &priv->state) || ktnic_check_gone(priv))
		return;
	status = ktnic_rd32(priv, KTNIC_STATUS);
	if (!!(status & KTNIC_STATUS_LU) != netif_carrier_ok(priv->netdev))
		schedule_work(&priv->link_work);
	ktnic_hw_update_stats(priv);
	ktnic_rx_kick_short(priv);
	schedule_delayed_work(&priv->service_task, KTNIC_SERVICE_INTERVAL);
}

static void ktnic_get_stats64(struct net_device *netdev,
			      struct rtnl_link_stats64 *s)
{
	struct ktnic_priv *priv = netdev_priv(netdev);
	unsigned long flags;
	unsigned int start;
	int i;

	for (i = 0; i < KTNIC_MAX_TXQ; i++) {
		struct ktnic_txq_clean_stats *c = &priv->txq_cstats[i];
		struct ktnic_txq_xmit_stats *x = &priv->txq_xstats[i];
		u64 pkts, bytes, drops;

		/* through the ring, which does not exist while down */
		if (ktnic_bug(STATS_NO_RINGS))
			c = priv->rings.tx[i]->cstats;

		do {
			start = u64_stats_fetch_begin(&c->syncp);
			pkts = u64_stats_read(&c->packets);
			bytes = u64_stats_read(&c->bytes);
		} while (u64_stats_fetch_retry(&c->syncp, start));
		do {
			start = u64_stats_fetch_begin(&x->syncp);
			drops = u64_stats_read(&x->map_fail);
		} while (u64_stats_fetch_retry(&x->syncp, start));
		s->tx_packets += pkts;
		s->tx_bytes += bytes;
		s->tx_dropped += drops;
	}
	for (i = 0; i < KTNIC_MAX_RXQ; i++) {
		struct ktnic_rxq_stats *r = &priv->rxq_stats[i];
		u64 pkts, bytes, drops, errs;

		do {
			start = u64_stats_fetch_begin(&r->syncp);
			pkts = u64_stats_read(&r->packets);
			bytes = u64_stats_read(&r->bytes);
			drops = u64_stats_read(&r->dropped);
			errs = u64_stats_read(&r->frame_err);
		} while (u64_stats_fetch_retry(&r->syncp, start));
		s->rx_packets += pkts;
		s->rx_bytes += bytes;
		s->rx_dropped += drops;
		s->rx_frame_errors += errs;
		s->rx_errors += errs;
	}

	ktnic_hw_update_stats(priv);
	spin_lock_irqsave(&priv->hw_lock, flags);
	s->rx_missed_errors = priv->dstats.rx_missed;
	s->rx_fifo_errors = priv->dstats.rx_no_buffer;
	spin_unlock_irqrestore(&priv->hw_lock, flags);
}

#ifdef KTNIC_HAVE_QSTATS
/* Per-queue statistics (netdev netlink qstats).  The counters belong to the
 * queue index, not to the rings, so they live across ring re-creation and
 * while the interface is down; a queue beyond the current channel count
 * keeps its history, which the base statistics report.
 */
static void ktnic_read_rxq(const struct ktnic_rxq_stats *r,
			   struct netdev_queue_stats_rx *rx)
{
	unsigned int start;

	do {
		start = u64_stats_fetch_begin(&r->syncp);
		rx->packets = u64_stats_read(&r->packets);
		rx->bytes = u64_stats_read(&r->bytes);
		rx->alloc_fail = u64_stats_read(&r->alloc_fail);
		rx->csum_unnecessary = u64_stats_read(&r->csum_ok);
		rx->csum_bad = u64_stats_read(&r->csum_err);
	} while (u64_stats_fetch_retry(&r->syncp, start));
}

static void ktnic_read_txq(const struct ktnic_priv *priv, int idx,
			   struct netdev_queue_stats_tx *tx)
{
	const struct ktnic_txq_clean_stats *c = &priv->txq_cstats[idx];
	const struct ktnic_txq_xmit_stats *x = &priv->txq_xstats[idx];
	unsigned int start;

	do {
		start = u64_stats_fetch_begin(&c->syncp);
		tx->packets = u64_stats_read(&c->packets);
		tx->bytes = u64_stats_read(&c->bytes);
		tx->wake = u64_stats_read(&c->wake);
	} while (u64_stats_fetch_retry(&c->syncp, start));
	do {
		start = u64_stats_fetch_begin(&x->syncp);
		tx->stop = u64_stats_read(&x->stop);
		tx->needs_csum = u64_stats_read(&x->csum_hw);
		tx->hw_gso_packets = u64_stats_read(&x->tso);
	} while (u64_stats_fetch_retry(&x->syncp, start));
}

static void ktnic_get_queue_stats_rx(struct net_device *netdev, int idx,
				     struct netdev_queue_stats_rx *rx)
{
	struct ktnic_priv *priv = netdev_priv(netdev);

	ktnic_read_rxq(&priv->rxq_stats[idx], rx);
}

static void ktnic_get_queue_stats_tx(struct net_device *netdev, int idx,
				     struct netdev_queue_stats_tx *tx)
{
	ktnic_read_txq(netdev_priv(netdev), idx, tx);
}

static void ktnic_get_base_stats(struct net_device *netdev,
				 struct netdev_queue_stats_rx *rx,
				 struct netdev_queue_stats_tx *tx)
{
	struct ktnic_priv *priv = netdev_priv(netdev);
	struct netdev_queue_stats_rx qrx;
	struct netdev_queue_stats_tx qtx;
	int i;

	*rx = (struct netdev_queue_stats_rx){ 0 };
	*tx = (struct netdev_queue_stats_tx){ 0 };
	for (i = netdev->real_num_rx_queues; i < KTNIC_MAX_RXQ; i++) {
		ktnic_read_rxq(&priv->rxq_stats[i], &qrx);
		rx->packets += qrx.packets;
		rx->bytes += qrx.bytes;
		rx->alloc_fail += qrx.alloc_fail;
		rx->csum_unnecessary += qrx.csum_unnecessary;
		rx->csum_bad += qrx.csum_bad;
	}
	for (i = netdev->real_num_tx_queues; i < KTNIC_MAX_TXQ; i++) {
		ktnic_read_txq(priv, i, &qtx);
		tx->packets += qtx.packets;
		tx->bytes += qtx.bytes;
		tx->wake += qtx.wake;
		tx->stop += qtx.stop;
		tx->needs_csum += qtx.needs_csum;
		tx->hw_gso_packets += qtx.hw_gso_packets;
	}
}

const struct netdev_stat_ops ktnic_stat_ops = {
	.get_queue_stats_rx	= ktnic_get_queue_stats_rx,
	.get_queue_stats_tx	= ktnic_get_queue_stats_tx,
	.get_base_stats		= ktnic_get_base_stats,
};
#endif

/* rtnl held.  No ring changes: every Rx buffer already has XDP's headroom
 * and XDP_TX shares the stack's Tx rings, so the program is only swapped.
 */
static int ktnic_xdp_setup(struct net_device *netdev, struct bpf_prog *prog,
			   struct netlink_ext_ack *extack)
{
	struct ktnic_priv *priv = netdev_priv(netdev);
	struct bpf_prog *old;

	if (!ktnic_xdp_mtu_ok(prog, netdev->mtu)) {
		NL_SET_ERR_MSG_MOD(extack,
				   "MTU too large for one Rx buffer: the program must handle multi-buffer frames (xdp.frags)");
		return -EOPNOTSUPP;
	}
	/* NAPI reads the pointer once per poll; the old program is freed
	 * after an RCU grace period, when no poll can be using it
	 */
	old = xchg(&priv->xdp_prog, prog);
	if (old)
		bpf_prog_put(old);
	return 0;
}

static int ktnic_bpf(struct net_device *netdev, struct netdev_bpf *bpf)
{
	switch (bpf->command) {
	case XDP_SETUP_PROG:
		return ktnic_xdp_setup(netdev, bpf->prog, bpf->extack);
	default:
		return -EOPNOTSUPP;
	}
}

/* What the context descriptor cannot describe goes to software GSO. */
static netdev_features_t ktnic_features_check(struct sk_buff *skb,
					      struct net_device *netdev,
					      netdev_features_t features)
{
	if (skb_is_gso(skb) && skb_tcp_all_headers(skb) > KTNIC_TSO_MAX_HDR)
		features &= ~NETIF_F_GSO_MASK;
	return features;
}

const struct net_device_ops ktnic_netdev_ops = {
	.ndo_open		= ktnic_open,
	.ndo_stop		= ktnic_stop,
	.ndo_start_xmit		= ktnic_start_xmit,
	.ndo_set_rx_mode	= ktnic_set_rx_mode,
	.ndo_set_mac_address	= ktnic_set_mac,
	.ndo_validate_addr	= eth_validate_addr,
	.ndo_change_mtu		= ktnic_change_mtu,
	.ndo_tx_timeout		= ktnic_tx_timeout,
	.ndo_get_stats64	= ktnic_get_stats64,
	.ndo_features_check	= ktnic_features_check,
	.ndo_bpf		= ktnic_bpf,
	.ndo_xdp_xmit		= ktnic_xdp_xmit,
};
