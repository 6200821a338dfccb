// SPDX-License-Identifier: GPL-2.0
/*
 * Descriptor rings, transmit, receive, XDP and the NAPI poll.
 *
 * Ownership: a Tx ring's producer (next_to_use, descriptor contents,
 * tx_buf of unpublished slots) belongs to whoever holds the queue's xmit
 * lock: ndo_start_xmit, and the XDP senders (XDP_TX from an Rx poll,
 * ndo_xdp_xmit for frames redirected in), which share the stack's rings
 * and take that lock.  The consumer (next_to_clean, unmapping, freeing)
 * belongs to the NAPI poll of the ring's vector.  An Rx ring belongs
 * entirely to its NAPI poll, and to up/down while NAPI is disabled.
 *
 * Receive buffers are pages of the ring's page_pool, mapped both ways; the
 * device writes KTNIC_RX_BUF_LEN bytes after KTNIC_RX_HEADROOM.  A frame is
 * assembled in ring->xdp: its first page, then the pages of the following
 * buffers as fragments in that page's shared info.  At the frame's last
 * buffer the XDP program (if any) sees all of it, and an skb built around
 * the first page takes over the fragments as they are.
 */
#include <linux/bitfield.h>
#include <linux/bpf_trace.h>
#include <linux/dma-mapping.h>
#include <linux/etherdevice.h>
#include <linux/if_vlan.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/tcp.h>
#include <linux/udp.h>
#include <net/ip6_checksum.h>

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
	if (xdp_rxq_info_is_reg(&ring->xdp_rxq))
		xdp_rxq_info_unreg(&ring->xdp_rxq);
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

/* Rx: the page_pool, and the XDP queue info that names it as the memory
 * model of the frames this ring produces.
 */
static int ktnic_alloc_rx_pool(struct ktnic_priv *priv,
			       struct ktnic_ring *ring)
{
	struct page_pool_params pp = {
		/* pages mapped once by the pool and recycled through it;
		 * synced for the device over the area it writes
		 */
		.flags = PP_FLAG_DMA_MAP | PP_FLAG_DMA_SYNC_DEV,
		.order = 0,
		.pool_size = ring->count,
		.nid = dev_to_node(ring->dev),
		.dev = ring->dev,
		.dma_dir = KTNIC_RX_DMA_DIR,
		.offset = KTNIC_RX_HEADROOM,
		.max_len = KTNIC_RX_BUF_LEN,
	};
	struct ktnic_vector *v = ktnic_irq_rx_vector(priv, ring->qid);
	int err;

	ktnic_pp_set_netdev(&pp, priv->netdev);
	ring->pool = page_pool_create(&pp);
	if (IS_ERR(ring->pool)) {
		err = PTR_ERR(ring->pool);
		ring->pool = NULL;
		return err;
	}
	err = xdp_rxq_info_reg(&ring->xdp_rxq, priv->netdev, ring->qid,
			       v->napi.napi_id);
	if (err)
		return err;
	return xdp_rxq_info_reg_mem_model(&ring->xdp_rxq, MEM_TYPE_PAGE_POOL,
					  ring->pool);
}

static struct ktnic_ring *ktnic_alloc_ring(struct ktnic_priv *priv,
					   bool is_tx, u16 qid, u16 count)
{
	struct device *dev = &priv->pdev->dev;
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
	if (!ring->desc) {
		/* the unwind that skips a step: the buffer array leaks */
		if (ktnic_bug(RING_UNWIND_LEAK))
			goto err_free_ring;
		goto err_free_bufs;
	}

	if (!is_tx && ktnic_alloc_rx_pool(priv, ring)) {
		/* undoes whatever part of the pool set-up succeeded */
		ktnic_free_ring(ring);
		return NULL;
	}
	return ring;

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

/* Release one Tx buffer's DMA mapping (the four unmap bugs live here).
 * XDP_TX buffers have none: the page_pool owns the mapping.
 */
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

/* Give back what a completed or dropped packet holds; after the unmaps. */
static void ktnic_tx_free_packet(struct ktnic_tx_buf *first, int napi_budget)
{
	if (first->type == KTNIC_TX_SKB)
		napi_consume_skb(first->skb, napi_budget);
	else if (first->xdpf)
		/* not _rx_napi: this poll is not the Rx pool's owner */
		xdp_return_frame(first->xdpf);
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
		/* only a packet's first buffer has its skb or frame */
		if (buf->eop_desc)
			ktnic_tx_free_packet(buf, 0);
		memset(buf, 0, sizeof(*buf));
	}
	ring->next_to_use = 0;
	ring->next_to_clean = 0;
	ktnic_tx_reset_bql(ring);
}

/* Return a frame's pages (first and fragments) to the ring's pool.  From
 * the ring's own NAPI poll they may go straight to its cache.
 */
static void ktnic_rx_frame_free(struct ktnic_ring *ring, struct xdp_buff *xdp,
				bool in_napi)
{
	struct skb_shared_info *sinfo;
	int i;

	if (xdp_buff_has_frags(xdp)) {
		sinfo = xdp_get_shared_info_from_buff(xdp);
		for (i = 0; i < sinfo->nr_frags; i++)
			page_pool_put_full_page(ring->pool,
						skb_frag_page(&sinfo->frags[i]),
						in_napi);
	}
	page_pool_put_full_page(ring->pool, virt_to_page(xdp->data_hard_start),
				in_napi);
}

void ktnic_ring_clean_rx(struct ktnic_ring *ring)
{
	u16 i;

	/* a frame whose last buffer never came */
	if (ring->xdp_open)
		ktnic_rx_frame_free(ring, &ring->xdp, false);
	ring->xdp_open = false;
	ring->rx_discard = false;

	for (i = 0; i < ring->count; i++) {
		struct ktnic_rx_buf *buf = &ring->rx_buf[i];

		if (buf->page)
			page_pool_put_full_page(ring->pool, buf->page, false);
		buf->page = NULL;
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
		/* the address is what the DMA API (via the pool) returned;
		 * the device writes after the headroom XDP may grow into
		 */
		desc->read.addr = cpu_to_le64(page_pool_get_dma_addr(buf->page) +
					      KTNIC_RX_HEADROOM);
		desc->read.zero = 0;
		ntu = ktnic_next(ring, ntu);
	}
	/* What a ring lacks raises no interrupt: a ring left short, dry in
	 * the end, is refilled only by a poll that the service task starts.
	 */
	if (unlikely(!!count != ring->rx_short))
		WRITE_ONCE(ring->rx_short, !!count);
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

/* A later buffer of the open frame: its page becomes the next fragment.
 * False when the frame cannot take another one.
 */
static bool ktnic_rx_add_frag(struct xdp_buff *xdp, struct page *page,
			      u32 len)
{
	struct skb_shared_info *sinfo = xdp_get_shared_info_from_buff(xdp);

	if (!xdp_buff_has_frags(xdp)) {
		sinfo->nr_frags = 0;
		sinfo->xdp_frags_size = 0;
		xdp_buff_set_frags_flag(xdp);
	}
	if (sinfo->nr_frags >= MAX_SKB_FRAGS)
		return false;
	__skb_fill_page_desc_noacc(sinfo, sinfo->nr_frags++, page,
				   KTNIC_RX_HEADROOM, len);
	sinfo->xdp_frags_size += len;
	if (page_is_pfmemalloc(page))
		xdp_buff_set_frag_pfmemalloc(xdp);
	return true;
}

/* The frame becomes an skb around its first page; the fragments move over
 * as they are (the skb's shared info is the frame's).
 */
static struct sk_buff *ktnic_rx_build_skb(struct xdp_buff *xdp)
{
	struct skb_shared_info *sinfo = xdp_get_shared_info_from_buff(xdp);
	u32 metasize = xdp->data - xdp->data_meta;
	u8 nr_frags = 0;
	struct sk_buff *skb;

	/* building the skb clears nr_frags: read it first */
	if (xdp_buff_has_frags(xdp))
		nr_frags = sinfo->nr_frags;

	skb = napi_build_skb(xdp->data_hard_start, xdp->frame_sz);
	if (unlikely(!skb))
		return NULL;
	skb_reserve(skb, xdp->data - xdp->data_hard_start);
	__skb_put(skb, xdp->data_end - xdp->data);
	if (metasize)
		skb_metadata_set(skb, metasize);
	skb_mark_for_recycle(skb);
	if (nr_frags)
		xdp_update_skb_shared_info(skb, nr_frags,
					   sinfo->xdp_frags_size,
					   nr_frags * PAGE_SIZE,
					   xdp_buff_is_frag_pfmemalloc(xdp));
	return skb;
}

/* What one Rx poll of one ring did, folded into the counters at its end. */
struct ktnic_rx_totals {
	u64 packets;
	u64 bytes;
	u64 dropped;
	u64 alloc_fail;
	u64 frame_err;
	u64 xdp_pass;
	u64 xdp_drop;
	u64 xdp_tx;
	u64 xdp_redirect;
	u64 xdp_aborted;
};

static int ktnic_xdp_queue(struct ktnic_ring *ring, struct xdp_frame *xdpf,
			   enum ktnic_tx_type type);

/* The Tx ring XDP_TX frames of Rx queue qid go to. */
static struct ktnic_ring *ktnic_xdp_tx_ring(struct ktnic_priv *priv, u16 qid)
{
	return priv->rings.tx[qid % priv->rings.cfg.num_txq];
}

/* XDP_TX: the frame goes out of the Tx ring of the same index, sharing it
 * with the stack under the queue's xmit lock.  The doorbell waits for the
 * end of the poll.
 */
static bool ktnic_xdp_tx(struct ktnic_ring *rxr, struct xdp_buff *xdp)
{
	struct ktnic_priv *priv = netdev_priv(rxr->netdev);
	struct ktnic_ring *txr = ktnic_xdp_tx_ring(priv, rxr->qid);
	struct ktnic_txq_xmit_stats *st = txr->xstats;
	struct netdev_queue *txq;
	struct xdp_frame *xdpf;
	int err;

	xdpf = xdp_convert_buff_to_frame(xdp);
	if (unlikely(!xdpf))
		return false;

	txq = netdev_get_tx_queue(txr->netdev, txr->qid);
	__netif_tx_lock(txq, smp_processor_id());
	err = ktnic_xdp_queue(txr, xdpf, KTNIC_TX_XDP_TX);
	u64_stats_update_begin(&st->syncp);
	u64_stats_inc(err ? &st->xdp_xmit_err : &st->xdp_xmit);
	u64_stats_update_end(&st->syncp);
	__netif_tx_unlock(txq);
	return !err;
}

static void ktnic_xdp_tx_doorbell(struct ktnic_ring *rxr)
{
	struct ktnic_priv *priv = netdev_priv(rxr->netdev);
	struct ktnic_ring *txr = ktnic_xdp_tx_ring(priv, rxr->qid);
	struct netdev_queue *txq;

	/* under the lock: a tail write never goes backwards */
	txq = netdev_get_tx_queue(txr->netdev, txr->qid);
	__netif_tx_lock(txq, smp_processor_id());
	writel(txr->next_to_use, txr->tail);
	txq_trans_cond_update(txq);
	__netif_tx_unlock(txq);
}

/* Run the program on a complete frame.  True when the frame was consumed
 * (dropped, sent or redirected); false: it goes up the stack.
 */
static bool ktnic_rx_run_xdp(struct ktnic_ring *ring, struct bpf_prog *prog,
			     struct xdp_buff *xdp, struct ktnic_rx_totals *t)
{
	u32 act = bpf_prog_run_xdp(prog, xdp);

	switch (act) {
	case XDP_PASS:
		t->xdp_pass++;
		return false;
	case XDP_TX:
		if (likely(ktnic_xdp_tx(ring, xdp))) {
			t->xdp_tx++;
			return true;
		}
		break;
	case XDP_REDIRECT:
		if (likely(!xdp_do_redirect(ring->netdev, xdp, prog))) {
			t->xdp_redirect++;
			ring->vector->xdp_redirected = true;
			return true;
		}
		break;
	case XDP_DROP:
		t->xdp_drop++;
		ktnic_rx_frame_free(ring, xdp, true);
		return true;
	case XDP_ABORTED:
		break;
	default:
		bpf_warn_invalid_xdp_action(ring->netdev, prog, act);
		break;
	}
	/* aborted, unknown, or a Tx or redirect that failed */
	trace_xdp_exception(ring->netdev, prog, act);
	t->xdp_aborted++;
	ktnic_rx_frame_free(ring, xdp, true);
	return true;
}

/* The open frame ended (EOP seen): program, skb, stack. */
static void ktnic_rx_frame_done(struct ktnic_ring *ring,
				struct napi_struct *napi, struct bpf_prog *prog,
				union ktnic_rx_desc *desc, u32 staterr,
				struct ktnic_rx_totals *t)
{
	struct xdp_buff *xdp = &ring->xdp;
	struct sk_buff *skb;

	ring->xdp_open = false;
	if (unlikely(ring->rx_discard)) {
		ring->rx_discard = false;
		t->dropped++;
		ktnic_rx_frame_free(ring, xdp, true);
		return;
	}
	if (unlikely(staterr & KTNIC_RXD_ERR_FRAME)) {
		t->frame_err++;
		ktnic_rx_frame_free(ring, xdp, true);
		return;
	}

	/* every good frame the device delivered, whatever XDP makes of it */
	t->packets++;
	t->bytes += xdp_get_buff_len(xdp);
	if (prog && ktnic_rx_run_xdp(ring, prog, xdp, t))
		return;

	skb = ktnic_rx_build_skb(xdp);
	if (unlikely(!skb)) {
		t->alloc_fail++;
		t->dropped++;
		ktnic_rx_frame_free(ring, xdp, true);
		return;
	}
	ktnic_rx_offloads(ring, skb, desc, staterr);
	skb_record_rx_queue(skb, ring->qid);
	skb->protocol = eth_type_trans(skb, ring->netdev);
	napi_gro_receive(napi, skb);
}

static int ktnic_clean_rx(struct ktnic_ring *ring, struct napi_struct *napi,
			  int budget)
{
	struct ktnic_priv *priv = netdev_priv(ring->netdev);
	struct ktnic_rxq_stats *st = ring->rstats;
	struct xdp_buff *xdp = &ring->xdp;
	u16 ntc = ring->next_to_clean;
	struct ktnic_rx_totals t = {};
	struct bpf_prog *prog;
	u16 cleaned = 0;
	int done = 0;

	/* a "throttle" that sleeps, in softirq context */
	if (ktnic_bug(SLEEP_IN_POLL))
		usleep_range(10, 20);

	/* one program for the whole poll; an old one is freed only after
	 * an RCU grace period, which this softirq holds off
	 */
	prog = READ_ONCE(priv->xdp_prog);

	while (done < budget) {
		union ktnic_rx_desc *desc = KTNIC_RX_DESC(ring, ntc);
		struct ktnic_rx_buf *buf = &ring->rx_buf[ntc];
		struct page *page;
		u32 staterr, len;

		staterr = le32_to_cpu(READ_ONCE(desc->wb.staterr));
		if (!(staterr & KTNIC_RXD_DD))
			break;
		/* A slot without a page was consumed earlier in this poll and
		 * not refilled yet: its DD is an old write-back.  Long frames
		 * can go round the whole ring within one budget.
		 */
		page = buf->page;
		if (unlikely(!page))
			break;
		/* The device writes DD last; read length, hash and the
		 * buffer only after seeing it.
		 */
		dma_rmb();

		len = le16_to_cpu(desc->wb.length);
		/* the slot gives up its page: it now belongs to the frame */
		if (!ktnic_bug(RX_PAGE_REUSE))
			buf->page = NULL;
		ntc = ktnic_next(ring, ntc);
		if (++cleaned == KTNIC_RX_REFILL_BATCH) {
			/* keep the device supplied during a long poll */
			ring->next_to_clean = ntc;
			ktnic_rx_refill(ring, ktnic_ring_unused(ring));
			cleaned = 0;
		}

		/* exactly what the device wrote, in the mapping's direction */
		dma_sync_single_range_for_cpu(ring->dev,
					      page_pool_get_dma_addr(page),
					      KTNIC_RX_HEADROOM, len,
					      KTNIC_RX_DMA_DIR);

		if (!ring->xdp_open) {
			xdp_init_buff(xdp, PAGE_SIZE, &ring->xdp_rxq);
			xdp_prepare_buff(xdp, page_address(page),
					 KTNIC_RX_HEADROOM, len, true);
			ring->xdp_open = true;
		} else if (ring->rx_discard) {
			page_pool_recycle_direct(ring->pool, page);
		} else if (ktnic_bug(JUMBO_FRAG_DROPPED) &&
			   !xdp_buff_has_frags(xdp)) {
			/* the second buffer of a long frame is lost */
			page_pool_recycle_direct(ring->pool, page);
		} else if (!ktnic_rx_add_frag(xdp, page, len)) {
			page_pool_recycle_direct(ring->pool, page);
			ring->rx_discard = true;
		}

		if (!(staterr & KTNIC_RXD_EOP))
			continue;
		ktnic_rx_frame_done(ring, napi, prog, desc, staterr, &t);
		done++;
	}

	ring->next_to_clean = ntc;
	if (t.xdp_tx)
		ktnic_xdp_tx_doorbell(ring);

	u64_stats_update_begin(&st->syncp);
	u64_stats_add(&st->packets, t.packets);
	u64_stats_add(&st->bytes, t.bytes);
	u64_stats_add(&st->dropped, t.dropped);
	u64_stats_add(&st->alloc_fail, t.alloc_fail);
	u64_stats_add(&st->frame_err, t.frame_err);
	u64_stats_add(&st->xdp_pass, t.xdp_pass);
	u64_stats_add(&st->xdp_drop, t.xdp_drop);
	u64_stats_add(&st->xdp_tx, t.xdp_tx);
	u64_stats_add(&st->xdp_redirect, t.xdp_redirect);
	u64_stats_add(&st->xdp_aborted, t.xdp_aborted);
	u64_stats_update_end(&st->syncp);

	/* every poll, even one that found no frame: it may be the retry
	 * of a refill that came up short
	 */
	ktnic_rx_refill(ring, ktnic_ring_unused(ring));
	return done;
}

/*
 * Service task (process context): poll the vectors of Rx rings that a
 * refill left short.  A ring that ran dry delivers no frame, so no
 * interrupt and no poll would ever refill it.  cfg_lock only if free: a
 * reconfiguration in progress refills every ring in ktnic_up().
 */
void ktnic_rx_kick_short(struct ktnic_priv *priv)
{
	int i, r;

	if (ktnic_bug(RX_NO_REFILL_RETRY) || !mutex_trylock(&priv->cfg_lock))
		return;
	for (i = 0; i < priv->num_vectors &&
	     test_bit(KTNIC_S_UP, &priv->state); i++) {
		struct ktnic_vector *v = &priv->vectors[i];

		if (!v->napi_on)
			continue;
		for (r = 0; r < v->num_rxr; r++) {
			if (!READ_ONCE(v->rxr[r]->rx_short))
				continue;
			/* BHs off: the poll runs at local_bh_enable() */
			local_bh_disable();
			napi_schedule(&v->napi);
			local_bh_enable();
			break;
		}
	}
	mutex_unlock(&priv->cfg_lock);
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

static void ktnic_tx_write_ctx(struct ktnic_ring *ring, u16 *ntu,
			       const struct ktnic_tx_ctx_desc *src)
{
	struct ktnic_tx_ctx_desc *ctx;

	ctx = (struct ktnic_tx_ctx_desc *)KTNIC_TX_DESC(ring, *ntu);
	*ctx = *src;
	*ntu = ktnic_next(ring, *ntu);
}

/* TSO: one context descriptor with the layout of the headers, the MSS and
 * the payload length; the device cuts the payload into segments and writes
 * each one's lengths, sequence number and checksums.  Returns the POPTS
 * bits for the data descriptors, 0 for an skb without GSO, or -errno.
 */
static int ktnic_tx_tso(struct ktnic_ring *ring, struct sk_buff *skb,
			u16 *ntu, u32 *hdr_len)
{
	u32 cmd = KTNIC_TXD_CMD_DEXT | KTNIC_TXD_CMD_TSE | KTNIC_TXD_CMD_TCP;
	struct ktnic_tx_ctx_desc ctx = {};
	int popts = KTNIC_TXD_POPTS_TXSM;
	u32 hlen, mss;
	int err;

	if (!skb_is_gso(skb))
		return 0;
	/* the headers are rewritten below: they must be ours alone */
	err = skb_cow_head(skb, 0);
	if (err < 0)
		return err;

	hlen = skb_tcp_all_headers(skb);
	if (vlan_get_protocol(skb) == htons(ETH_P_IP)) {
		struct iphdr *iph = ip_hdr(skb);

		/* per segment the device fills in the length and both
		 * checksums; the TCP one starts from the pseudo header
		 * without a length
		 */
		iph->tot_len = 0;
		iph->check = 0;
		tcp_hdr(skb)->check = ~csum_tcpudp_magic(iph->saddr,
							 iph->daddr, 0,
							 IPPROTO_TCP, 0);
		cmd |= KTNIC_TXD_CMD_IP;
		popts |= KTNIC_TXD_POPTS_IXSM;
		ctx.ipcss = skb_network_offset(skb);
		ctx.ipcso = skb_network_offset(skb) +
			    offsetof(struct iphdr, check);
		ctx.ipcse = cpu_to_le16(skb_transport_offset(skb) - 1);
	} else {
		tcp_v6_gso_csum_prep(skb);
		ctx.ipcss = skb_network_offset(skb);
	}
	ctx.tucss = skb_transport_offset(skb);
	ctx.tucso = skb_transport_offset(skb) + offsetof(struct tcphdr, check);
	ctx.cmd = cpu_to_le32(cmd | FIELD_PREP(KTNIC_TXD_PAYLEN_MASK,
					       skb->len - hlen));
	mss = skb_shinfo(skb)->gso_size;
	/* the MSS "from the MTU": wrong as soon as TCP carries options */
	if (ktnic_bug(TSO_MSS_FROM_MTU))
		mss = skb->dev->mtu - (skb_transport_offset(skb) -
				       skb_network_offset(skb)) -
		      sizeof(struct tcphdr);
	ctx.seg = cpu_to_le32(FIELD_PREP(KTNIC_TXD_SEG_MSS, mss) |
			      FIELD_PREP(KTNIC_TXD_SEG_HDRLEN, hlen));
	ktnic_tx_write_ctx(ring, ntu, &ctx);
	*hdr_len = hlen;

	u64_stats_update_begin(&ring->xstats->syncp);
	u64_stats_inc(&ring->xstats->tso);
	u64_stats_update_end(&ring->xstats->syncp);
	return popts;
}

/* Checksum offload: one context descriptor, then TXSM in the data ones.
 * Returns the POPTS bits, 0 when no offload is used, or -errno.
 */
static int ktnic_tx_csum(struct ktnic_ring *ring, struct sk_buff *skb,
			 u16 *ntu)
{
	struct ktnic_tx_ctx_desc ctx = {};
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

	ctx.tucss = start;
	ctx.tucso = start + skb->csum_offset;
	ctx.cmd = cpu_to_le32(cmd);
	ktnic_tx_write_ctx(ring, ntu, &ctx);

	u64_stats_update_begin(&ring->xstats->syncp);
	u64_stats_inc(&ring->xstats->csum_hw);
	u64_stats_update_end(&ring->xstats->syncp);
	return KTNIC_TXD_POPTS_TXSM;
}

/* Data descriptors for one mapped buffer: as many as its length needs.
 * Returns the index of the last one written; *ntu moves past it.
 */
static u16 ktnic_tx_fill(struct ktnic_ring *ring, u16 *ntu, dma_addr_t dma,
			 u32 len, u32 popts, u32 cmd)
{
	u16 last;

	do {
		struct ktnic_tx_desc *desc = KTNIC_TX_DESC(ring, *ntu);
		u32 chunk = min_t(u32, len, KTNIC_TXD_MAX_LEN);

		desc->addr = cpu_to_le64(dma);
		desc->cmd = cpu_to_le32(KTNIC_TXD_CMD_DEXT | KTNIC_TXD_DTYP_D |
					KTNIC_TXD_CMD_IFCS | cmd | chunk);
		desc->status = cpu_to_le32(popts);	/* also clears DD */
		last = *ntu;
		*ntu = ktnic_next(ring, *ntu);
		dma += chunk;
		len -= chunk;
	} while (len);
	return last;
}

/* Descriptors an skb takes: a context one, and its buffers' pieces. */
static unsigned int ktnic_tx_desc_count(const struct sk_buff *skb)
{
	unsigned int f, n = 1 + DIV_ROUND_UP(skb_headlen(skb),
					     KTNIC_TXD_MAX_LEN);

	for (f = 0; f < skb_shinfo(skb)->nr_frags; f++)
		n += DIV_ROUND_UP(skb_frag_size(&skb_shinfo(skb)->frags[f]),
				  KTNIC_TXD_MAX_LEN);
	return n;
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

/* Hand a packet whose descriptors first..last are written to the cleaner.
 * The caller rings the doorbell.
 */
static void ktnic_tx_publish(struct ktnic_ring *ring, u16 first_idx, u16 last,
			     u16 ntu)
{
	/* end of packet, and ask for the DD write-back on it */
	KTNIC_TX_DESC(ring, last)->cmd |= cpu_to_le32(KTNIC_TXD_CMD_EOP |
						      KTNIC_TXD_CMD_RS);
	ring->tx_buf[first_idx].eop = last;

	/* Descriptor contents are complete before ownership moves to the
	 * device with the tail write.
	 */
	dma_wmb();
	/* Publish the packet to the cleaner: release orders the tx_buf and
	 * descriptor stores above before eop_desc; pairs with the acquire
	 * in ktnic_clean_tx().
	 */
	smp_store_release(&ring->tx_buf[first_idx].eop_desc,
			  KTNIC_TX_DESC(ring, last));
	WRITE_ONCE(ring->next_to_use, ntu);
}

netdev_tx_t ktnic_start_xmit(struct sk_buff *skb, struct net_device *netdev)
{
	struct ktnic_priv *priv = netdev_priv(netdev);
	u16 q = skb_get_queue_mapping(skb);
	struct ktnic_ring *ring = priv->rings.tx[q];
	struct netdev_queue *txq = netdev_get_tx_queue(netdev, q);
	unsigned int nr_frags = skb_shinfo(skb)->nr_frags;
	struct ktnic_txq_xmit_stats *st = ring->xstats;
	u32 len, hdr_len = 0, cmd = 0;
	struct ktnic_tx_buf *first;
	u16 ntu, first_idx, last;
	unsigned int f;
	dma_addr_t dma;
	bool kick;
	int popts;

	if (unlikely(ktnic_ring_unused(ring) < ktnic_tx_desc_count(skb))) {
		/* the stop threshold makes this unreachable; count it */
		netif_tx_stop_queue(txq);
		u64_stats_update_begin(&st->syncp);
		u64_stats_inc(&st->busy);
		u64_stats_update_end(&st->syncp);
		return NETDEV_TX_BUSY;
	}

	first_idx = ring->next_to_use;
	ntu = first_idx;
	popts = ktnic_tx_tso(ring, skb, &ntu, &hdr_len);
	if (popts > 0)
		cmd = KTNIC_TXD_CMD_TSE;
	else if (!popts)
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
		last = ktnic_tx_fill(ring, &ntu, dma, len, popts, cmd);
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
		last = ktnic_tx_fill(ring, &ntu, dma, len, popts, cmd);
	}
	if (unlikely(last == ntu))
		goto err_unwind;	/* no data at all */

	first = &ring->tx_buf[first_idx];
	first->skb = skb;
	first->type = KTNIC_TX_SKB;
	if (skb_is_gso(skb)) {
		/* on the wire every segment repeats the headers */
		first->segs = skb_shinfo(skb)->gso_segs;
		first->bytes = skb->len + (first->segs - 1) * hdr_len;
	} else {
		first->segs = 1;
		first->bytes = max_t(unsigned int, skb->len, ETH_ZLEN);
	}
	skb_tx_timestamp(skb);
	ktnic_tx_publish(ring, first_idx, last, ntu);

	/* BQL told of the skb's length, completed with the wire bytes */
	kick = __netdev_tx_sent_queue(txq, ktnic_bug(TSO_BQL_MISMATCH) ?
				      skb->len : first->bytes,
				      netdev_xmit_more());
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

/*
 * Queue one XDP frame (and its fragments) on a Tx ring; xmit lock held.
 * XDP_TX frames are pages of our own Rx pool, already mapped; frames
 * redirected in from elsewhere are mapped here.  The last
 * KTNIC_TX_STOP_THRESH descriptors stay for the stack, so a running queue
 * always has room for a worst-case skb.  No doorbell.
 */
static int ktnic_xdp_queue(struct ktnic_ring *ring, struct xdp_frame *xdpf,
			   enum ktnic_tx_type type)
{
	struct skb_shared_info *sinfo = xdp_get_shared_info_from_frame(xdpf);
	u32 i, nr_frags = xdp_frame_has_frags(xdpf) ? sinfo->nr_frags : 0;
	u16 first_idx = ring->next_to_use, ntu = first_idx, last = ntu;
	struct ktnic_tx_buf *first = &ring->tx_buf[first_idx];

	if (ktnic_ring_unused(ring) < KTNIC_TX_STOP_THRESH + nr_frags + 1)
		return -ENOSPC;

	for (i = 0; i <= nr_frags; i++) {
		struct ktnic_tx_buf *buf = &ring->tx_buf[ntu];
		void *data = xdpf->data;
		u32 len = xdpf->len;
		dma_addr_t dma;

		if (i) {
			data = skb_frag_address(&sinfo->frags[i - 1]);
			len = skb_frag_size(&sinfo->frags[i - 1]);
		}
		if (type == KTNIC_TX_XDP_TX) {
			dma = page_pool_get_dma_addr(virt_to_page(data)) +
			      offset_in_page(data);
			/* the program may have written to it */
			dma_sync_single_for_device(ring->dev, dma, len,
						   KTNIC_RX_DMA_DIR);
		} else {
			dma = dma_map_single(ring->dev, data, len,
					     DMA_TO_DEVICE);
			if (dma_mapping_error(ring->dev, dma)) {
				ktnic_tx_unwind(ring, first_idx, ntu);
				return -ENOMEM;
			}
			buf->dma = dma;
			buf->len = len;
			buf->is_page = false;
		}
		last = ktnic_tx_fill(ring, &ntu, dma, len, 0, 0);
	}

	first->xdpf = xdpf;
	first->type = type;
	first->segs = 1;
	first->bytes = xdp_get_frame_len(xdpf);
	ktnic_tx_publish(ring, first_idx, last, ntu);
	return 0;
}

/* ndo_xdp_xmit: frames redirected to this device.  Softirq, any CPU.
 * Returns how many were queued; the core frees the rest.
 */
int ktnic_xdp_xmit(struct net_device *netdev, int n, struct xdp_frame **frames,
		   u32 flags)
{
	struct ktnic_priv *priv = netdev_priv(netdev);
	struct ktnic_txq_xmit_stats *st;
	struct netdev_queue *txq;
	struct ktnic_ring *ring;
	int sent = 0;

	if (unlikely(flags & ~XDP_XMIT_FLAGS_MASK))
		return -EINVAL;
	/* ktnic_down() clears UP, then waits (synchronize_net()) for every
	 * caller that saw it set before the rings go away
	 */
	if (unlikely(!test_bit(KTNIC_S_UP, &priv->state)))
		return -ENETDOWN;

	ring = priv->rings.tx[smp_processor_id() % priv->rings.cfg.num_txq];
	st = ring->xstats;
	txq = netdev_get_tx_queue(netdev, ring->qid);
	__netif_tx_lock(txq, smp_processor_id());
	while (sent < n &&
	       !ktnic_xdp_queue(ring, frames[sent], KTNIC_TX_XDP_XMIT))
		sent++;
	if (sent && (flags & XDP_XMIT_FLUSH)) {
		writel(ring->next_to_use, ring->tail);
		txq_trans_cond_update(txq);
	}
	u64_stats_update_begin(&st->syncp);
	u64_stats_add(&st->xdp_xmit, sent);
	u64_stats_add(&st->xdp_xmit_err, n - sent);
	u64_stats_update_end(&st->syncp);
	__netif_tx_unlock(txq);
	return sent;
}

static void ktnic_clean_tx(struct ktnic_ring *ring, int napi_budget)
{
	struct netdev_queue *txq = netdev_get_tx_queue(ring->netdev, ring->qid);
	struct ktnic_priv *priv = netdev_priv(ring->netdev);
	struct ktnic_txq_clean_stats *st = ring->cstats;
	unsigned int bql_pkts = 0, bql_bytes = 0;
	u16 ntc = ring->next_to_clean;
	u64 pkts = 0, bytes = 0, xdp = 0;

	for (;;) {
		struct ktnic_tx_buf *first = &ring->tx_buf[ntc];
		struct ktnic_tx_buf done;
		struct ktnic_tx_desc *eop;
		u16 i, end;

		/* acquire pairs with the release in ktnic_tx_publish() */
		eop = smp_load_acquire(&first->eop_desc);
		if (!eop)
			break;
		if (!(READ_ONCE(eop->status) & cpu_to_le32(KTNIC_TXD_STAT_DD)))
			break;
		/* DD seen: the device is done with every buffer up to eop;
		 * order that check before the unmaps below.
		 */
		dma_rmb();

		done = *first;
		end = ktnic_next(ring, first->eop);
		for (i = ntc; i != end; i = ktnic_next(ring, i)) {
			struct ktnic_tx_buf *buf = &ring->tx_buf[i];

			ktnic_tx_unmap(ring, buf);
			memset(buf, 0, sizeof(*buf));
		}
		ntc = end;

		pkts += done.segs;
		bytes += done.bytes;
		if (done.type == KTNIC_TX_SKB) {
			bql_pkts++;
			bql_bytes += done.bytes;
		} else {
			xdp++;
		}
		ktnic_tx_free_packet(&done, napi_budget);
		if (ktnic_bug(TX_SKB_UAF) && done.type == KTNIC_TX_SKB)
			/* the skb is gone by now */
			bql_bytes += done.skb->len - done.bytes;
	}

	if (!pkts)
		return;

	WRITE_ONCE(ring->next_to_clean, ntc);
	/* BQL counts what the stack queued: skbs, not XDP frames */
	netdev_tx_completed_queue(txq, bql_pkts, bql_bytes);

	u64_stats_update_begin(&st->syncp);
	u64_stats_add(&st->packets, pkts);
	u64_stats_add(&st->bytes, bytes);
	u64_stats_add(&st->xdp_done, xdp);
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
	/* frames redirected by this poll leave before it ends */
	if (v->xdp_redirected && !ktnic_bug(XDP_NO_FLUSH)) {
		v->xdp_redirected = false;
		xdp_do_flush();
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

/* ethtool -S: the Rx rings' page_pool counters, summed (zeros while the
 * interface is down: the pools go with the rings).  rtnl held.
 */
int ktnic_pool_stats_count(void)
{
	return page_pool_ethtool_stats_get_count();
}

void ktnic_pool_stats(struct ktnic_priv *priv, u64 *data)
{
#ifdef CONFIG_PAGE_POOL_STATS
	struct page_pool_stats stats = {};
	int i;

	for (i = 0; i < KTNIC_MAX_RXQ; i++)
		if (priv->rings.rx[i])
			page_pool_get_stats(priv->rings.rx[i]->pool, &stats);
	page_pool_ethtool_stats_get(data, &stats);
#endif
}
