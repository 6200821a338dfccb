// SPDX-License-Identifier: GPL-2.0
/*
 * Descriptor rings, transmit, receive and the NAPI poll.
 *
 * Ownership: a Tx ring's producer (next_to_use, descriptor contents,
 * tx_buf of unpublished slots) belongs to ndo_start_xmit under the queue's
 * xmit lock; the consumer (next_to_clean, unmapping, freeing) belongs to
 * the NAPI poll of the ring's vector.  An Rx ring belongs entirely to its
 * NAPI poll, and to up/down while NAPI is disabled.
 */
#include <linux/dma-mapping.h>
#include <linux/etherdevice.h>
#include <linux/if_vlan.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/tcp.h>
#include <linux/udp.h>

#include "ktnic.h"

#define KTNIC_TX_DESC(r, i)	(&((struct ktnic_tx_desc *)(r)->desc)[i])
#define KTNIC_RX_DESC(r, i)	(&((union ktnic_rx_desc *)(r)->desc)[i])

static u16 ktnic_next(const struct ktnic_ring *ring, u16 i)
{
	return ++i == ring->count ? 0 : i;
}

u16 ktnic_tx_in_flight(const struct ktnic_ring *ring)
{
	return ring->count - 1 - ktnic_ring_unused(ring);
}

u16 ktnic_rx_posted(const struct ktnic_ring *ring)
{
	return ring->count - 1 - ktnic_ring_unused(ring);
}

/* ---- allocation (may fail, touches no register) ---- */

static void ktnic_free_ring(struct ktnic_ring *ring)
{
	if (!ring)
		return;
	if (ring->pool)
		page_pool_destroy(ring->pool);
	dma_free_coherent(ring->dev, ring->desc_bytes, ring->desc,
			  ring->desc_dma);
	if (ring->is_tx)
		kvfree(ring->tx_buf);
	else
		kvfree(ring->rx_buf);
	kfree(ring);
}

static struct ktnic_ring *ktnic_alloc_ring(struct ktnic_priv *priv,
					   bool is_tx, u16 qid, u16 count)
{
	struct device *dev = &priv->pdev->dev;
	struct page_pool_params pp = {};
	struct ktnic_ring *ring;

	ring = kzalloc(sizeof(*ring), GFP_KERNEL);
	if (!ring)
		return NULL;

	ring->netdev = priv->netdev;
	ring->dev = dev;
	ring->is_tx = is_tx;
	ring->qid = qid;
	ring->count = count;

	if (is_tx) {
		ring->tx_buf = kvcalloc(count, sizeof(*ring->tx_buf),
					GFP_KERNEL);
		if (!ring->tx_buf)
			goto err_free_ring;
		ring->xstats = &priv->txq_xstats[qid];
		ring->cstats = &priv->txq_cstats[qid];
	} else {
		ring->rx_buf = kvcalloc(count, sizeof(*ring->rx_buf),
					GFP_KERNEL);
		if (!ring->rx_buf)
			goto err_free_ring;
		ring->rstats = &priv->rxq_stats[qid];
	}

	ring->desc_bytes = (size_t)count * KTNIC_DESC_SIZE;
	ring->desc = dma_alloc_coherent(dev, ring->desc_bytes, &ring->desc_dma,
					GFP_KERNEL);
	if (!ring->desc)
		goto err_free_bufs;

	if (!is_tx) {
		/* pages mapped once by the pool and recycled through it */
		pp.flags = PP_FLAG_DMA_MAP | PP_FLAG_DMA_SYNC_DEV;
		pp.order = 0;
		pp.pool_size = count;
		pp.nid = dev_to_node(dev);
		pp.dev = dev;
		pp.dma_dir = DMA_FROM_DEVICE;
		pp.offset = 0;
		pp.max_len = PAGE_SIZE;
		ring->pool = page_pool_create(&pp);
		if (IS_ERR(ring->pool)) {
			ring->pool = NULL;
			goto err_free_desc;
		}
	}
	return ring;

err_free_desc:
	dma_free_coherent(dev, ring->desc_bytes, ring->desc, ring->desc_dma);
err_free_bufs:
	if (is_tx)
		kvfree(ring->tx_buf);
	else
		kvfree(ring->rx_buf);
err_free_ring:
	kfree(ring);
	return NULL;
}

int ktnic_alloc_ring_set(struct ktnic_priv *priv,
			 const struct ktnic_ring_cfg *cfg,
			 struct ktnic_ring_set *set)
{
	u8 i;

	memset(set, 0, sizeof(*set));
	set->cfg = *cfg;
	/* one-shot test hook: xchg so a failure is injected exactly once */
	if (xchg(&priv->inject_alloc_fail, false))
		return -ENOMEM;
	for (i = 0; i < cfg->num_txq; i++) {
		set->tx[i] = ktnic_alloc_ring(priv, true, i, cfg->tx_count);
		if (!set->tx[i])
			goto err_free_set;
	}
	for (i = 0; i < cfg->num_rxq; i++) {
		set->rx[i] = ktnic_alloc_ring(priv, false, i, cfg->rx_count);
		if (!set->rx[i])
			goto err_free_set;
	}
	return 0;

err_free_set:
	/* frees exactly the rings allocated so far (the others are NULL) */
	ktnic_free_ring_set(set);
	return -ENOMEM;
}

void ktnic_free_ring_set(struct ktnic_ring_set *set)
{
	u8 i;

	for (i = 0; i < KTNIC_MAX_RXQ; i++) {
		ktnic_free_ring(set->rx[i]);
		set->rx[i] = NULL;
	}
	for (i = 0; i < KTNIC_MAX_TXQ; i++) {
		ktnic_free_ring(set->tx[i]);
		set->tx[i] = NULL;
	}
}

/* Release one Tx buffer's DMA mapping (the four unmap bugs live here). */
static void ktnic_tx_unmap(struct ktnic_ring *ring, struct ktnic_tx_buf *buf)
{
	enum dma_data_direction dir = DMA_TO_DEVICE;
	u32 len = buf->len;

	if (!buf->dma)
		return;
	if (ktnic_bug(TX_UNMAP_MISSING) && !buf->is_page)
		return;
	if (ktnic_bug(TX_UNMAP_SIZE))
		len--;
	if (ktnic_bug(TX_UNMAP_DIR))
		dir = DMA_FROM_DEVICE;
	if (buf->is_page)
		dma_unmap_page(ring->dev, buf->dma, len, dir);
	else
		dma_unmap_single(ring->dev, buf->dma, len, dir);
	if (ktnic_bug(TX_DOUBLE_UNMAP))
		dma_unmap_single(ring->dev, buf->dma, len, dir);
}

/* BQL's view of the queue starts over with an empty ring. */
static void ktnic_tx_reset_bql(struct ktnic_ring *ring)
{
	if (!ktnic_bug(BQL_NOT_RESET))
		netdev_tx_reset_queue(netdev_get_tx_queue(ring->netdev,
							  ring->qid));
}

/* ---- hardware ring set-up (cannot fail) ---- */

void ktnic_ring_hw_init_tx(struct ktnic_priv *priv, struct ktnic_ring *ring)
{
	u16 q = ring->qid;

	memset(ring->desc, 0, ring->desc_bytes);
	ring->next_to_use = 0;
	ring->next_to_clean = 0;
	ring->tail = priv->hw + KTNIC_TDT(q);

	ktnic_wr32(priv, KTNIC_TDBAL(q), lower_32_bits(ring->desc_dma));
	ktnic_wr32(priv, KTNIC_TDBAH(q), upper_32_bits(ring->desc_dma));
	ktnic_wr32(priv, KTNIC_TDLEN(q), ring->desc_bytes);
	ktnic_wr32(priv, KTNIC_TDH(q), 0);
	ktnic_wr32(priv, KTNIC_TDT(q), 0);
	ktnic_wr32(priv, KTNIC_TARC(q),
		   ktnic_rd32(priv, KTNIC_TARC(q)) | KTNIC_TARC_ENABLE);
	ktnic_tx_reset_bql(ring);
}

void ktnic_ring_hw_init_rx(struct ktnic_priv *priv, struct ktnic_ring *ring)
{
	u16 q = ring->qid;

	memset(ring->desc, 0, ring->desc_bytes);
	ring->next_to_use = 0;
	ring->next_to_clean = 0;
	ring->tail = priv->hw + KTNIC_RDT(q);

	ktnic_wr32(priv, KTNIC_RDBAL(q), lower_32_bits(ring->desc_dma));
	ktnic_wr32(priv, KTNIC_RDBAH(q), upper_32_bits(ring->desc_dma));
	ktnic_wr32(priv, KTNIC_RDLEN(q), ring->desc_bytes);
	ktnic_wr32(priv, KTNIC_RDH(q), 0);
	ktnic_wr32(priv, KTNIC_RDT(q), 0);
}

/* Device stopped and NAPI disabled: drop everything still in the ring. */
void ktnic_ring_clean_tx(struct ktnic_ring *ring)
{
	u16 i;

	for (i = 0; i < ring->count; i++) {
		struct ktnic_tx_buf *buf = &ring->tx_buf[i];

		ktnic_tx_unmap(ring, buf);
		if (buf->skb)
			dev_kfree_skb_any(buf->skb);
		memset(buf, 0, sizeof(*buf));
	}
	ring->next_to_use = 0;
	ring->next_to_clean = 0;
	ktnic_tx_reset_bql(ring);
}

void ktnic_ring_clean_rx(struct ktnic_ring *ring)
{
	u16 i;

	for (i = 0; i < ring->count; i++) {
		struct ktnic_rx_buf *buf = &ring->rx_buf[i];

		if (buf->page)
			page_pool_put_full_page(ring->pool, buf->page, false);
		buf->page = NULL;
	}
	if (ring->rx_skb) {
		dev_kfree_skb_any(ring->rx_skb);
		ring->rx_skb = NULL;
	}
	ring->next_to_use = 0;
	ring->next_to_clean = 0;
}

/* ---- receive ---- */

void ktnic_rx_refill(struct ktnic_ring *ring, u16 count)
{
	struct ktnic_rxq_stats *st = ring->rstats;
	u16 ntu = ring->next_to_use;

	for (; count; count--) {
		struct ktnic_rx_buf *buf = &ring->rx_buf[ntu];
		union ktnic_rx_desc *desc = KTNIC_RX_DESC(ring, ntu);

		if (!buf->page) {
			buf->page = page_pool_dev_alloc_pages(ring->pool);
			if (!buf->page) {
				/* single writer: NAPI, or up() with NAPI off */
				u64_stats_update_begin(&st->syncp);
				u64_stats_inc(&st->alloc_fail);
				u64_stats_update_end(&st->syncp);
				break;
			}
		}
		/* the address is what the DMA API (via the pool) returned */
		desc->read.addr = cpu_to_le64(page_pool_get_dma_addr(buf->page));
		desc->read.zero = 0;
		ntu = ktnic_next(ring, ntu);
	}
	if (ntu == ring->next_to_use)
		return;

	/* Descriptor contents must reach memory before the tail write hands
	 * them to the device.
	 */
	dma_wmb();
	ring->next_to_use = ntu;
	/* doorbell; writel() is ordered after the stores above */
	writel(ntu, ring->tail);
}

static void ktnic_rx_offloads(struct ktnic_ring *ring, struct sk_buff *skb,
			      union ktnic_rx_desc *desc, u32 staterr)
{
	struct ktnic_rxq_stats *st = ring->rstats;
	struct net_device *netdev = ring->netdev;
	u32 type;

	if (netdev->features & NETIF_F_RXHASH) {
		type = le32_to_cpu(desc->wb.mrq) & KTNIC_RXD_RSS_TYPE;
		/* 1: IPv4+TCP, 3: IPv6+TCP; other non-zero types are L3 */
		if (type)
			skb_set_hash(skb, le32_to_cpu(desc->wb.rss),
				     (type == 1 || type == 3) ?
				     PKT_HASH_TYPE_L4 : PKT_HASH_TYPE_L3);
	}

	if (!(netdev->features & NETIF_F_RXCSUM))
		return;
	if (staterr & (KTNIC_RXD_ERR_TCPE | KTNIC_RXD_ERR_IPE)) {
		u64_stats_update_begin(&st->syncp);
		u64_stats_inc(&st->csum_err);
		u64_stats_update_end(&st->syncp);
		return;
	}
	if (staterr & (KTNIC_RXD_TCPCS | KTNIC_RXD_UDPCS)) {
		skb->ip_summed = CHECKSUM_UNNECESSARY;
		u64_stats_update_begin(&st->syncp);
		u64_stats_inc(&st->csum_ok);
		u64_stats_update_end(&st->syncp);
	}
}

/* First buffer of a frame: copy the headers (all of a short frame) into a
 * fresh skb, attach the rest of the page as a fragment.
 */
static struct sk_buff *ktnic_rx_first(struct ktnic_ring *ring,
				      struct napi_struct *napi,
				      struct page *page, u32 len, bool eop)
{
	void *va = page_address(page);
	struct sk_buff *skb;
	u32 hlen;

	skb = napi_alloc_skb(napi, KTNIC_RX_COPYBREAK);
	if (unlikely(!skb))
		return NULL;

	if (eop && len <= KTNIC_RX_COPYBREAK)
		hlen = len;
	else
		hlen = min_t(u32, len, eth_get_headlen(ring->netdev, va,
						       KTNIC_RX_COPYBREAK));
	skb_put_data(skb, va, hlen);
	skb_mark_for_recycle(skb);
	if (len > hlen)
		skb_add_rx_frag(skb, 0, page, hlen, len - hlen, PAGE_SIZE);
	else
		page_pool_recycle_direct(ring->pool, page);
	return skb;
}

static int ktnic_clean_rx(struct ktnic_ring *ring, struct napi_struct *napi,
			  int budget)
{
	struct ktnic_rxq_stats *st = ring->rstats;
	struct sk_buff *skb = ring->rx_skb;
	u16 ntc = ring->next_to_clean;
	u64 pkts = 0, bytes = 0, drops = 0;
	u16 cleaned = 0;
	int done = 0;

	/* a "throttle" that sleeps, in softirq context */
	if (ktnic_bug(SLEEP_IN_POLL))
		usleep_range(10, 20);

	while (done < budget) {
		union ktnic_rx_desc *desc = KTNIC_RX_DESC(ring, ntc);
		struct ktnic_rx_buf *buf = &ring->rx_buf[ntc];
		struct page *page;
		u32 staterr, len;

		staterr = le32_to_cpu(READ_ONCE(desc->wb.staterr));
		if (!(staterr & KTNIC_RXD_DD))
			break;
		/* The device writes DD last; read length, hash and the
		 * buffer only after seeing it.
		 */
		dma_rmb();

		len = le16_to_cpu(desc->wb.length);
		page = buf->page;
		/* the slot gives up its page: it now belongs to the frame */
		if (!ktnic_bug(RX_PAGE_REUSE))
			buf->page = NULL;
		ntc = ktnic_next(ring, ntc);
		cleaned++;
		if (unlikely(!page))
			continue;	/* cannot happen: only posted slots */

		dma_sync_single_range_for_cpu(ring->dev,
					      page_pool_get_dma_addr(page), 0,
					      len, DMA_FROM_DEVICE);

		if (!skb) {
			skb = ktnic_rx_first(ring, napi, page, len,
					     staterr & KTNIC_RXD_EOP);
			if (!skb) {
				page_pool_recycle_direct(ring->pool, page);
				u64_stats_update_begin(&st->syncp);
				u64_stats_inc(&st->alloc_fail);
				u64_stats_update_end(&st->syncp);
				/* the frame's other buffers are dropped too */
				skb = ERR_PTR(-ENOMEM);
			}
		} else if (IS_ERR(skb) ||
			   skb_shinfo(skb)->nr_frags >= MAX_SKB_FRAGS) {
			page_pool_recycle_direct(ring->pool, page);
			if (!IS_ERR(skb)) {
				dev_kfree_skb_any(skb);
				skb = ERR_PTR(-E2BIG);
			}
		} else if (ktnic_bug(JUMBO_FRAG_DROPPED) &&
			   skb_shinfo(skb)->nr_frags == 1) {
			/* the second buffer of a long frame is lost */
			page_pool_recycle_direct(ring->pool, page);
		} else {
			skb_add_rx_frag(skb, skb_shinfo(skb)->nr_frags, page, 0,
					len, PAGE_SIZE);
		}

		if (!(staterr & KTNIC_RXD_EOP))
			continue;

		if (IS_ERR(skb)) {
			drops++;
			skb = NULL;
			done++;
			continue;
		}
		if (unlikely(staterr & KTNIC_RXD_ERR_FRAME)) {
			u64_stats_update_begin(&st->syncp);
			u64_stats_inc(&st->frame_err);
			u64_stats_update_end(&st->syncp);
			dev_kfree_skb_any(skb);
			skb = NULL;
			done++;
			continue;
		}

		ktnic_rx_offloads(ring, skb, desc, staterr);
		bytes += skb->len;
		pkts++;
		skb_record_rx_queue(skb, ring->qid);
		skb->protocol = eth_type_trans(skb, ring->netdev);
		napi_gro_receive(napi, skb);
		skb = NULL;
		done++;
	}

	ring->rx_skb = skb;
	ring->next_to_clean = ntc;

	u64_stats_update_begin(&st->syncp);
	u64_stats_add(&st->packets, pkts);
	u64_stats_add(&st->bytes, bytes);
	u64_stats_add(&st->dropped, drops);
	u64_stats_update_end(&st->syncp);

	if (cleaned)
		ktnic_rx_refill(ring, ktnic_ring_unused(ring));
	return done;
}

/* ---- transmit ---- */

static void ktnic_tx_maybe_stop(struct ktnic_ring *ring,
				struct netdev_queue *txq)
{
	struct ktnic_txq_xmit_stats *st = ring->xstats;

	if (likely(ktnic_ring_unused(ring) >= KTNIC_TX_STOP_THRESH))
		return;

	netif_tx_stop_queue(txq);
	u64_stats_update_begin(&st->syncp);
	u64_stats_inc(&st->stop);
	u64_stats_update_end(&st->syncp);

	/* Make the stopped state visible before re-reading next_to_clean.
	 * Pairs with the smp_mb() in ktnic_clean_tx() between its
	 * next_to_clean update and its stopped test: either the cleaner sees
	 * the queue stopped and wakes it, or we see the freed space here.
	 */
	smp_mb();
	if (ktnic_ring_unused(ring) < KTNIC_TX_STOP_THRESH)
		return;

	netif_tx_start_queue(txq);
	u64_stats_update_begin(&st->syncp);
	u64_stats_inc(&st->restart);
	u64_stats_update_end(&st->syncp);
}

/* Checksum offload: one context descriptor, then TXSM in the data ones.
 * Returns the POPTS bits, 0 when no offload is used, or -errno.
 */
static int ktnic_tx_csum(struct ktnic_ring *ring, struct sk_buff *skb,
			 u16 *ntu)
{
	struct ktnic_tx_ctx_desc *ctx;
	u32 start, cmd = KTNIC_TXD_CMD_DEXT;

	if (skb->ip_summed != CHECKSUM_PARTIAL)
		return 0;

	start = skb_checksum_start_offset(skb);
	if (start + skb->csum_offset > 255 ||
	    (skb->csum_offset != offsetof(struct tcphdr, check) &&
	     skb->csum_offset != offsetof(struct udphdr, check)))
		return skb_checksum_help(skb) ? -EINVAL : 0;

	if (skb->csum_offset == offsetof(struct tcphdr, check))
		cmd |= KTNIC_TXD_CMD_TCP;
	if (vlan_get_protocol(skb) == htons(ETH_P_IP))
		cmd |= KTNIC_TXD_CMD_IP;

	ctx = (struct ktnic_tx_ctx_desc *)KTNIC_TX_DESC(ring, *ntu);
	memset(ctx, 0, sizeof(*ctx));
	ctx->tucss = start;
	ctx->tucso = start + skb->csum_offset;
	ctx->tucse = 0;
	ctx->cmd = cpu_to_le32(cmd);
	*ntu = ktnic_next(ring, *ntu);

	u64_stats_update_begin(&ring->xstats->syncp);
	u64_stats_inc(&ring->xstats->csum_hw);
	u64_stats_update_end(&ring->xstats->syncp);
	return KTNIC_TXD_POPTS_TXSM;
}

static void ktnic_tx_fill(struct ktnic_ring *ring, u16 i, dma_addr_t dma,
			  u32 len, u32 popts)
{
	struct ktnic_tx_desc *desc = KTNIC_TX_DESC(ring, i);

	desc->addr = cpu_to_le64(dma);
	desc->cmd = cpu_to_le32(KTNIC_TXD_CMD_DEXT | KTNIC_TXD_DTYP_D |
				KTNIC_TXD_CMD_IFCS | len);
	desc->status = cpu_to_le32(popts);	/* also clears an old DD */
}

/* Undo the mappings of an unpublished packet, from first up to stop. */
static void ktnic_tx_unwind(struct ktnic_ring *ring, u16 first, u16 stop)
{
	u16 i;

	for (i = first; i != stop; i = ktnic_next(ring, i)) {
		struct ktnic_tx_buf *buf = &ring->tx_buf[i];

		ktnic_tx_unmap(ring, buf);
		memset(buf, 0, sizeof(*buf));
	}
}

netdev_tx_t ktnic_start_xmit(struct sk_buff *skb, struct net_device *netdev)
{
	struct ktnic_priv *priv = netdev_priv(netdev);
	u16 q = skb_get_queue_mapping(skb);
	struct ktnic_ring *ring = priv->rings.tx[q];
	struct netdev_queue *txq = netdev_get_tx_queue(netdev, q);
	unsigned int nr_frags = skb_shinfo(skb)->nr_frags;
	struct ktnic_txq_xmit_stats *st = ring->xstats;
	struct ktnic_tx_buf *first;
	u16 ntu, first_idx, last;
	unsigned int f;
	dma_addr_t dma;
	bool kick;
	int popts;
	u32 len;

	if (unlikely(ktnic_ring_unused(ring) < nr_frags + 2)) {
		/* the stop threshold makes this unreachable; count it */
		netif_tx_stop_queue(txq);
		u64_stats_update_begin(&st->syncp);
		u64_stats_inc(&st->busy);
		u64_stats_update_end(&st->syncp);
		return NETDEV_TX_BUSY;
	}

	first_idx = ring->next_to_use;
	ntu = first_idx;
	popts = ktnic_tx_csum(ring, skb, &ntu);
	if (popts < 0)
		goto drop;

	len = skb_headlen(skb);
	last = ntu;
	if (len) {
		dma = dma_map_single(ring->dev, skb->data, len, DMA_TO_DEVICE);
		if (!ktnic_bug(MAP_ERROR_UNCHECKED) &&
		    dma_mapping_error(ring->dev, dma))
			goto err_unwind;
		ring->tx_buf[ntu].dma = dma;
		ring->tx_buf[ntu].len = len;
		ring->tx_buf[ntu].is_page = false;
		ktnic_tx_fill(ring, ntu, dma, len, popts);
		last = ntu;
		ntu = ktnic_next(ring, ntu);
	}

	for (f = 0; f < nr_frags; f++) {
		const skb_frag_t *frag = &skb_shinfo(skb)->frags[f];

		len = skb_frag_size(frag);
		if (!len)
			continue;
		dma = skb_frag_dma_map(ring->dev, frag, 0, len, DMA_TO_DEVICE);
		if (dma_mapping_error(ring->dev, dma))
			goto err_unwind;
		ring->tx_buf[ntu].dma = dma;
		ring->tx_buf[ntu].len = len;
		ring->tx_buf[ntu].is_page = true;
		ktnic_tx_fill(ring, ntu, dma, len, popts);
		last = ntu;
		ntu = ktnic_next(ring, ntu);
	}
	if (unlikely(!ring->tx_buf[last].dma))
		goto err_unwind;	/* no data at all */

	/* end of packet, and ask for the DD write-back on it */
	KTNIC_TX_DESC(ring, last)->cmd |= cpu_to_le32(KTNIC_TXD_CMD_EOP |
						      KTNIC_TXD_CMD_RS);

	first = &ring->tx_buf[first_idx];
	first->skb = skb;
	first->bytes = max_t(unsigned int, skb->len, ETH_ZLEN);
	first->eop = last;
	skb_tx_timestamp(skb);

	/* Descriptor contents are complete before ownership moves to the
	 * device with the tail write below.
	 */
	dma_wmb();
	/* Publish the packet to the cleaner: release orders the tx_buf and
	 * descriptor stores above before eop_desc; pairs with the acquire
	 * in ktnic_clean_tx().
	 */
	smp_store_release(&first->eop_desc, KTNIC_TX_DESC(ring, last));
	WRITE_ONCE(ring->next_to_use, ntu);

	kick = __netdev_tx_sent_queue(txq, first->bytes, netdev_xmit_more());
	ktnic_tx_maybe_stop(ring, txq);
	if (kick || netif_xmit_stopped(txq))
		/* doorbell; writel() is ordered after the stores above */
		writel(ntu, ring->tail);
	return NETDEV_TX_OK;

err_unwind:
	ktnic_tx_unwind(ring, first_idx, ntu);
	u64_stats_update_begin(&st->syncp);
	u64_stats_inc(&st->map_fail);
	u64_stats_update_end(&st->syncp);
drop:
	dev_kfree_skb_any(skb);
	/* an earlier xmit_more packet may still wait for its doorbell */
	if (!netdev_xmit_more() && ring->next_to_use != ring->next_to_clean)
		writel(ring->next_to_use, ring->tail);
	return NETDEV_TX_OK;
}

static void ktnic_clean_tx(struct ktnic_ring *ring, int napi_budget)
{
	struct netdev_queue *txq = netdev_get_tx_queue(ring->netdev, ring->qid);
	struct ktnic_priv *priv = netdev_priv(ring->netdev);
	struct ktnic_txq_clean_stats *st = ring->cstats;
	u16 ntc = ring->next_to_clean;
	unsigned int pkts = 0, bytes = 0;

	for (;;) {
		struct ktnic_tx_buf *first = &ring->tx_buf[ntc];
		struct ktnic_tx_desc *eop;
		u16 i, end;

		/* acquire pairs with the release in ktnic_start_xmit() */
		eop = smp_load_acquire(&first->eop_desc);
		if (!eop)
			break;
		if (!(READ_ONCE(eop->status) & cpu_to_le32(KTNIC_TXD_STAT_DD)))
			break;
		/* DD seen: the device is done with every buffer up to eop;
		 * order that check before the unmaps below.
		 */
		dma_rmb();

		end = ktnic_next(ring, first->eop);
		pkts++;
		bytes += first->bytes;
		napi_consume_skb(first->skb, napi_budget);
		if (ktnic_bug(TX_SKB_UAF))	/* the skb is gone by now */
			bytes += first->skb->len - first->bytes;
		for (i = ntc; i != end; i = ktnic_next(ring, i)) {
			struct ktnic_tx_buf *buf = &ring->tx_buf[i];

			ktnic_tx_unmap(ring, buf);
			memset(buf, 0, sizeof(*buf));
		}
		ntc = end;
	}

	if (!pkts)
		return;

	WRITE_ONCE(ring->next_to_clean, ntc);
	netdev_tx_completed_queue(txq, pkts, bytes);

	u64_stats_update_begin(&st->syncp);
	u64_stats_add(&st->packets, pkts);
	u64_stats_add(&st->bytes, bytes);
	u64_stats_update_end(&st->syncp);

	/* Make next_to_clean visible before testing the stopped state;
	 * pairs with the smp_mb() in ktnic_tx_maybe_stop().
	 */
	smp_mb();
	if (netif_tx_queue_stopped(txq) &&
	    ktnic_ring_unused(ring) >= KTNIC_TX_STOP_THRESH &&
	    test_bit(KTNIC_S_UP, &priv->state) && !ktnic_bug(TX_NO_WAKE)) {
		netif_tx_wake_queue(txq);
		u64_stats_update_begin(&st->syncp);
		u64_stats_inc(&st->wake);
		u64_stats_update_end(&st->syncp);
	}
}

int ktnic_poll(struct napi_struct *napi, int budget)
{
	struct ktnic_vector *v = container_of(napi, struct ktnic_vector, napi);
	int work = 0, per_ring;
	bool complete = true;
	u8 i;

	/* Tx completion is not limited by the budget */
	for (i = 0; i < v->num_txr; i++)
		ktnic_clean_tx(v->txr[i], budget);

	/* budget 0 (netpoll): no Rx work at all */
	if (budget <= 0)
		return 0;

	if (v->num_rxr) {
		per_ring = max(budget / v->num_rxr, 1);
		for (i = 0; i < v->num_rxr; i++) {
			int done = ktnic_clean_rx(v->rxr[i], napi, per_ring);

			work += done;
			if (done >= per_ring)
				complete = false;
		}
	}

	/* used up: stay scheduled, interrupt stays masked */
	if (!complete)
		return budget;

	work = min(work, budget - 1);
	if (napi_complete_done(napi, work))
		ktnic_irq_vector_rearm(v);
	/* completed, yet claims the whole budget: the core polls it again */
	return ktnic_bug(BUDGET_AFTER_COMPLETE) ? budget : work;
}
