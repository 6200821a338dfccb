/* SPDX-License-Identifier: GPL-2.0 */
/*
 * ktest_nic: a driver for the Intel 82574L as QEMU emulates it.
 *
 * Files, all with the ktnic_ prefix:
 *   ktnic_pci.c      module init, probe/remove, hardware identity and reset
 *   ktnic_netdev.c   net_device_ops, up/down, reconfiguration, reset work
 *   ktnic_txrx.c     ring allocation, transmit, receive, NAPI poll
 *   ktnic_irq.c      MSI-X / MSI / INTx set-up and interrupt handlers
 *   ktnic_ethtool.c  ethtool_ops
 *   ktnic_debugfs.c  /sys/kernel/debug/ktest_nic/<pci-bdf>/
 *
 * Binding: the device has the in-tree e1000e's PCI ID.  Load only one of
 * the two at a time ("modprobe -r e1000e; insmod ktest_nic.ko"), or move the
 * function by hand through /sys/bus/pci/drivers/{e1000e,ktest_nic}/unbind
 * and bind.
 *
 * Lock order, outermost first:
 *   1. rtnl_lock
 *   2. ktnic_priv.cfg_lock (mutex): ring and vector configuration, up/down
 *   3. per Tx queue: the netdev_queue xmit lock (taken by the core around
 *      ndo_start_xmit, by netif_tx_disable() and by the Tx watchdog)
 *   4. ktnic_priv.hw_lock (spinlock, BH-safe): RCTL read-modify-write and
 *      the clear-on-read hardware counters
 * Nothing sleeps in NAPI, in the interrupt handlers or with 3 or 4 held.
 *
 * Entry points and their context:
 *   probe/remove               process, device lock; remove takes rtnl
 *                              through unregister_netdev()
 *   ndo_open/stop/change_mtu,  process, rtnl held; take cfg_lock
 *   ethtool set_* ops
 *   ethtool get_* ops          process, rtnl held
 *   ndo_start_xmit             BH disabled, queue xmit lock held
 *   ndo_tx_timeout             timer softirq, all xmit locks held
 *   ndo_get_stats64            any context (may be atomic)
 *   ndo_set_rx_mode            process, addr list lock (BH) held
 *   interrupt handlers         hard irq
 *   NAPI poll                  softirq; owns its rings' consumer state
 *   reset_task, link_work      process (system workqueue); reset takes rtnl
 *                              then cfg_lock
 *   service_task               process (system workqueue); no lock, only
 *                              register reads while KTNIC_S_UP
 *   PCI error handlers,        process, device lock held; take rtnl, then
 *   reset_prepare/reset_done   cfg_lock
 *   debugfs show               process; takes cfg_lock only
 */
#ifndef _KTNIC_H_
#define _KTNIC_H_

#include <linux/bpf.h>
#include <linux/filter.h>
#include <linux/mutex.h>
#include <linux/netdevice.h>
#include <linux/pci.h>
#include <linux/spinlock.h>
#include <linux/u64_stats_sync.h>
#include <linux/workqueue.h>
#include <net/xdp.h>

#include "ktnic_compat.h"
#include "ktnic_regs.h"

#define KTNIC_DRV_NAME		"ktest_nic"

#define KTNIC_MAX_TXQ		2
#define KTNIC_MAX_RXQ		2
/* MSI-X: Rx0, Rx1, Tx0, Tx1, other (link and errors) */
#define KTNIC_MAX_VECTORS	(KTNIC_MAX_RXQ + KTNIC_MAX_TXQ + 1)

#define KTNIC_DESC_SIZE		16
#define KTNIC_RING_ALIGN	8	/* descriptors: RDLEN/TDLEN step of 128 B */
#define KTNIC_RING_MIN		64
#define KTNIC_RING_MAX		4096
#define KTNIC_TX_DEFAULT	256
#define KTNIC_RX_DEFAULT	256

/* A data descriptor carries at most this much (as the in-tree e1000e has
 * it for this part); longer buffers are split over several.
 */
#define KTNIC_TXD_MAX_LEN	8192
#define KTNIC_TSO_MAX		65536	/* the largest skb the stack sends */
#define KTNIC_TSO_MAX_HDR	255	/* context descriptor: HDRLEN is 8 bits */
/* Worst-case descriptors for one skb: the context descriptor, the linear
 * part and every fragment, plus the splits a 64 KiB TSO skb can need.
 */
#define KTNIC_TX_WORST		(1 + 1 + MAX_SKB_FRAGS + \
				 DIV_ROUND_UP(KTNIC_TSO_MAX, KTNIC_TXD_MAX_LEN))
/* Stop a queue when fewer than this many are free; leaves one slot unused. */
#define KTNIC_TX_STOP_THRESH	(KTNIC_TX_WORST + 1)

/* Rx buffers: one page each from the ring's page_pool, the device writing
 * KTNIC_RX_BUF_LEN bytes after XDP's headroom; the tail of the page holds
 * skb_shared_info when the page becomes an skb head.  Longer frames chain
 * buffers (multi-buffer XDP, skb fragments).
 */
#define KTNIC_RX_HEADROOM	XDP_PACKET_HEADROOM
#define KTNIC_RX_BUF_LEN	2048	/* RCTL SZ_2048 */
/* XDP_TX sends from the Rx page itself: mapped both ways */
#define KTNIC_RX_DMA_DIR	DMA_BIDIRECTIONAL
/* Rx buffers given back to the device every this many during a poll */
#define KTNIC_RX_REFILL_BATCH	32
/* the largest MTU whose frames fit one buffer (XDP without frags) */
#define KTNIC_XDP_MAX_MTU	(KTNIC_RX_BUF_LEN - ETH_HLEN - VLAN_HLEN)

#define KTNIC_MAX_MTU		9000
#define KTNIC_COAL_MAX_USECS	16000
#define KTNIC_COAL_DEFAULT	50

/* At most one full reset per interval; a Tx timeout first only kicks. */
#define KTNIC_RESET_INTERVAL	(5 * HZ)
#define KTNIC_SERVICE_INTERVAL	(2 * HZ)

/* Named bug injections (ktnic_bugs.c); none is on unless asked for. */
enum ktnic_bug {
	KTNIC_BUG_TX_UNMAP_MISSING,
	KTNIC_BUG_TX_UNMAP_SIZE,
	KTNIC_BUG_TX_UNMAP_DIR,
	KTNIC_BUG_TX_DOUBLE_UNMAP,
	KTNIC_BUG_MAP_ERROR_UNCHECKED,
	KTNIC_BUG_RX_DMA_AFTER_FREE,
	KTNIC_BUG_TX_SKB_UAF,
	KTNIC_BUG_FREE_NETDEV_EARLY,
	KTNIC_BUG_STATS_NO_RINGS,
	KTNIC_BUG_WORK_AFTER_REMOVE,
	KTNIC_BUG_PROBE_LEAK,
	KTNIC_BUG_OPEN_RACES_PROBE,
	KTNIC_BUG_BUDGET_AFTER_COMPLETE,
	KTNIC_BUG_SLEEP_IN_POLL,
	KTNIC_BUG_RTNL_INVERSION,
	KTNIC_BUG_SLEEP_UNDER_SPINLOCK,
	KTNIC_BUG_TX_NO_WAKE,
	KTNIC_BUG_NO_WAKE_AFTER_RESET,
	KTNIC_BUG_BQL_NOT_RESET,
	KTNIC_BUG_NO_RESET_PREPARE,
	KTNIC_BUG_NO_STATE_RESTORE,
	KTNIC_BUG_RX_PAGE_REUSE,
	KTNIC_BUG_JUMBO_FRAG_DROPPED,
	KTNIC_BUG_TSO_BQL_MISMATCH,
	KTNIC_BUG_TSO_MSS_FROM_MTU,
	KTNIC_BUG_XDP_NO_FLUSH,
	KTNIC_BUG_XDP_FRAGS_UNCHECKED,
	KTNIC_BUG_RX_NO_REFILL_RETRY,
	KTNIC_BUG_RING_UNWIND_LEAK,
	KTNIC_BUG_DETACH_RX_LEAK,
	KTNIC_BUG_SHUTDOWN_NAPI_TWICE,
	KTNIC_BUG_COUNT
};

extern unsigned long ktnic_bugs;
#define ktnic_bug(b)	unlikely(test_bit(KTNIC_BUG_##b, &ktnic_bugs))

enum ktnic_irq_mode {
	KTNIC_IRQ_MSIX,
	KTNIC_IRQ_MSI,
	KTNIC_IRQ_INTX,
};

/* Transmit counters written in ndo_start_xmit (under the queue xmit lock)
 * and in ndo_tx_timeout (which holds every xmit lock).
 */
struct ktnic_txq_xmit_stats {
	struct u64_stats_sync syncp;
	u64_stats_t stop;	/* queue stopped for lack of descriptors */
	u64_stats_t restart;	/* stop undone by the re-check at once */
	u64_stats_t busy;	/* NETDEV_TX_BUSY returned (a bug if > 0) */
	u64_stats_t map_fail;	/* dma_map_*() failed, skb dropped */
	u64_stats_t csum_hw;	/* packets with Tx checksum offload */
	u64_stats_t timeouts;	/* ndo_tx_timeout on this queue */
	u64_stats_t kicks;	/* timeouts answered by a doorbell and an irq */
	u64_stats_t tso;	/* TSO skbs (the device cuts them in segments) */
	u64_stats_t xdp_xmit;	/* XDP frames queued (XDP_TX and redirects in) */
	u64_stats_t xdp_xmit_err; /* XDP frames dropped: no room, multi-buffer */
};

/* Transmit counters written only by the owning NAPI context. */
struct ktnic_txq_clean_stats {
	struct u64_stats_sync syncp;
	u64_stats_t packets;	/* on the wire: TSO segments count one each */
	u64_stats_t bytes;
	u64_stats_t wake;	/* queue woken after reclaim */
	u64_stats_t xdp_done;	/* XDP frames sent and returned */
};

/* Receive counters written only by the owning NAPI context. */
struct ktnic_rxq_stats {
	struct u64_stats_sync syncp;
	u64_stats_t packets;
	u64_stats_t bytes;
	u64_stats_t alloc_fail;	/* page or skb allocation failed */
	u64_stats_t csum_err;	/* device saw a bad L3/L4 checksum */
	u64_stats_t csum_ok;	/* CHECKSUM_UNNECESSARY given */
	u64_stats_t frame_err;	/* CRC/symbol/sequence errors, dropped */
	u64_stats_t dropped;	/* other drops (no skb, too many frags) */
	u64_stats_t xdp_pass;
	u64_stats_t xdp_drop;
	u64_stats_t xdp_tx;
	u64_stats_t xdp_redirect;
	u64_stats_t xdp_aborted; /* XDP_ABORTED, unknown verdicts, failures */
};

/* Counters outside the queues.  Each group has a single writer context. */
struct ktnic_dev_stats {
	/* written by the "other" interrupt handler only */
	struct u64_stats_sync irq_syncp;
	u64_stats_t rx_overrun_irq;	/* ICR.RXO seen */
	u64_stats_t link_irq;		/* ICR.LSC seen */
	/* written with rtnl held (reset task, PCI error and reset handlers) */
	struct u64_stats_sync rtnl_syncp;
	u64_stats_t resets;		/* full resets by the driver */
	u64_stats_t pci_errors;		/* error_detected calls */
	u64_stats_t slot_resets;	/* recoveries after a slot reset */
	u64_stats_t function_resets;	/* FLR or bus reset (reset_done) */
	/* hardware counters accumulated under hw_lock */
	u64 rx_missed;			/* MPC */
	u64 rx_no_buffer;		/* RNBC */
};

enum ktnic_tx_type {
	KTNIC_TX_SKB,			/* from the stack: BQL counts it */
	KTNIC_TX_XDP_TX,		/* XDP_TX: our page_pool's page, no unmap */
	KTNIC_TX_XDP_XMIT,		/* redirected in: mapped here */
};

struct ktnic_tx_buf {
	union {				/* set on the first buffer of a packet */
		struct sk_buff *skb;
		struct xdp_frame *xdpf;
	};
	struct ktnic_tx_desc *eop_desc;	/* first buffer: NULL until published */
	dma_addr_t dma;			/* 0: nothing mapped here */
	u32 len;
	bool is_page;			/* dma_map_page (fragment) vs single */
	u8 type;			/* first buffer: enum ktnic_tx_type */
	u16 eop;			/* first buffer: index of the last one */
	u16 segs;			/* first buffer: packets on the wire */
	unsigned int bytes;		/* first buffer: bytes on the wire (BQL) */
};

struct ktnic_rx_buf {
	struct page *page;		/* from the ring's page_pool, or NULL */
};

struct ktnic_vector;

/* One descriptor ring.  Producer fields belong to the producer context,
 * consumer fields to the NAPI poll of the owning vector.
 */
struct ktnic_ring {
	/* hot, shared */
	void *desc;			/* coherent descriptor memory */
	u8 __iomem *tail;		/* RDT/TDT doorbell */
	struct net_device *netdev;
	struct device *dev;		/* for the DMA API */
	struct ktnic_vector *vector;
	u16 count;			/* descriptors, multiple of 8 */
	u16 qid;
	bool is_tx;

	/* Tx: next_to_use written under the queue xmit lock, read by NAPI;
	 * next_to_clean written by NAPI, read by xmit.  Both via READ_ONCE/
	 * WRITE_ONCE with the barriers commented at their use.
	 * Rx: both owned by NAPI (and by up/down while NAPI is disabled).
	 */
	u16 next_to_use;
	u16 next_to_clean;

	union {
		struct ktnic_tx_buf *tx_buf;
		struct ktnic_rx_buf *rx_buf;
	};
	struct page_pool *pool;		/* Rx only */
	/* Rx: the frame being assembled (head buffer seen, EOP not yet):
	 * its pages are in xdp (and its shared info), owned by NAPI
	 */
	struct xdp_buff xdp;
	bool xdp_open;
	bool rx_discard;		/* drop the open frame at its EOP */
	/* the last refill came up short (allocation failures): written by
	 * NAPI (or up() with NAPI off), read by the service task
	 */
	bool rx_short;
	struct xdp_rxq_info xdp_rxq;	/* Rx: registered with the pool */

	/* statistics live in ktnic_priv so they survive reconfiguration */
	struct ktnic_txq_xmit_stats *xstats;
	struct ktnic_txq_clean_stats *cstats;
	struct ktnic_rxq_stats *rstats;

	/* cold */
	dma_addr_t desc_dma;
	size_t desc_bytes;
};

/* One interrupt vector.  Queue vectors own a NAPI instance; the rings they
 * serve are set while the interface is down (cfg_lock held).
 */
struct ktnic_vector {
	struct napi_struct napi;
	struct ktnic_priv *priv;
	struct ktnic_ring *txr[KTNIC_MAX_TXQ];
	struct ktnic_ring *rxr[KTNIC_MAX_RXQ];
	u8 num_txr;
	u8 num_rxr;
	u8 idx;				/* MSI-X entry */
	bool napi_added;
	bool napi_on;			/* napi_enable()d, cfg_lock */
	bool irq_requested;
	u32 ims;			/* causes this vector re-enables */
	u32 eitr;			/* throttle, 256 ns units */
	bool xdp_redirected;		/* this poll redirected: flush at its end */
	char name[IFNAMSIZ + 16];
};

struct ktnic_ring_cfg {
	u16 tx_count;
	u16 rx_count;
	u8 num_txq;
	u8 num_rxq;
};

/* A set of rings built before it replaces the running one. */
struct ktnic_ring_set {
	struct ktnic_ring *tx[KTNIC_MAX_TXQ];
	struct ktnic_ring *rx[KTNIC_MAX_RXQ];
	struct ktnic_ring_cfg cfg;
};

enum ktnic_state_bits {
	KTNIC_S_UP,			/* hardware running, cfg_lock */
	KTNIC_S_REMOVING,		/* no new reset or link work */
	KTNIC_S_DETACHED,		/* error recovery or a function reset in
					 * progress: hands off the device, rtnl
					 */
	KTNIC_S_DEAD,			/* latched: reads return all ones, no
					 * MMIO any more; only remove is left
					 */
	KTNIC_S_RESETTING,		/* ktnic_reset() between down and up */
};

struct ktnic_priv {
	struct net_device *netdev;
	struct pci_dev *pdev;
	u8 __iomem *hw;			/* BAR0 */
	unsigned long state;		/* ktnic_state_bits */

	/* protects rings, cfg, vector<->ring mapping and up/down */
	struct mutex cfg_lock;
	struct ktnic_ring_set rings;	/* current rings, cfg_lock */
	struct ktnic_ring_cfg cfg;	/* wanted configuration, cfg_lock */

	enum ktnic_irq_mode irq_mode;
	struct ktnic_vector vectors[KTNIC_MAX_VECTORS];
	u8 num_vectors;
	u8 other_vector;		/* MSI-X index of link/other */
	u8 max_txq;			/* channel limits for the irq mode */
	u8 max_rxq;

	struct bpf_prog *xdp_prog;	/* written under rtnl, read in NAPI */
	u32 rx_usecs;			/* coalescing, cfg_lock */
	u32 tx_usecs;
	/* RSS: key and indirection table (queue per entry), cfg_lock */
	u32 rss_key[KTNIC_RSSRK_REGS];
	u8 rss_indir[KTNIC_RETA_ENTRIES];

	struct delayed_work reset_task;	/* single reset owner, rate limited */
	unsigned long last_reset;	/* jiffies, written under rtnl */
	unsigned long tx_kicked[KTNIC_MAX_TXQ]; /* jiffies, xmit locks */
	struct work_struct link_work;	/* carrier from STATUS.LU */
	/* every KTNIC_SERVICE_INTERVAL while up: is the device still there
	 * (all ones), and the clear-on-read counters folded before they wrap
	 */
	struct delayed_work service_task;

	struct ktnic_txq_xmit_stats txq_xstats[KTNIC_MAX_TXQ];
	struct ktnic_txq_clean_stats txq_cstats[KTNIC_MAX_TXQ];
	struct ktnic_rxq_stats rxq_stats[KTNIC_MAX_RXQ];
	struct ktnic_dev_stats dstats;
	/* RCTL read-modify-write, dstats.rx_missed/rx_no_buffer */
	spinlock_t hw_lock;

	/* debugfs per-ring files: which ring each one shows */
	struct ktnic_dbg_ring {
		struct ktnic_priv *priv;
		u8 qid;
		bool is_tx;
	} dbg_ring[KTNIC_MAX_TXQ + KTNIC_MAX_RXQ];

	struct dentry *dbg_dir;
	/* fault injection (debugfs): fail the next ring set allocation */
	bool inject_alloc_fail;
};

/* Register access.  Once the device is latched dead there is no MMIO at
 * all: reads return all ones, writes are dropped.  The doorbells in the
 * datapath are plain writel()s; a dead device is detached right away, so
 * at most a few land on a device that no longer listens.
 */
static inline u32 ktnic_rd32(struct ktnic_priv *priv, u32 reg)
{
	if (unlikely(test_bit(KTNIC_S_DEAD, &priv->state)))
		return KTNIC_REG_GONE;
	return readl(priv->hw + reg);
}

static inline void ktnic_wr32(struct ktnic_priv *priv, u32 reg, u32 val)
{
	if (unlikely(test_bit(KTNIC_S_DEAD, &priv->state)))
		return;
	writel(val, priv->hw + reg);
}

/* Post all preceding register writes to the device. */
static inline void ktnic_flush(struct ktnic_priv *priv)
{
	ktnic_rd32(priv, KTNIC_STATUS);
}

/* STATUS never reads all ones on a working 82574 (reserved bits are 0). */
static inline bool ktnic_gone(struct ktnic_priv *priv)
{
	return ktnic_rd32(priv, KTNIC_STATUS) == KTNIC_REG_GONE;
}

/* Descriptors free for the producer; one is always kept unused so that a
 * full ring is told apart from an empty one (head == tail means empty).
 */
static inline u16 ktnic_ring_unused(const struct ktnic_ring *ring)
{
	u16 ntc = READ_ONCE(ring->next_to_clean);
	u16 ntu = READ_ONCE(ring->next_to_use);

	return ((ntc > ntu) ? 0 : ring->count) + ntc - ntu - 1;
}

/* ktnic_pci.c */
void ktnic_hw_read_mac(struct ktnic_priv *priv, u8 *mac);
void ktnic_hw_write_mac(struct ktnic_priv *priv, const u8 *mac);
void ktnic_hw_update_stats(struct ktnic_priv *priv);
void ktnic_hw_quiesce(struct ktnic_priv *priv);

/* ktnic_netdev.c */
extern const struct net_device_ops ktnic_netdev_ops;
void ktnic_up(struct ktnic_priv *priv);
void ktnic_down(struct ktnic_priv *priv);
void ktnic_rss_default_indir(struct ktnic_priv *priv);
void ktnic_set_rss_hw(struct ktnic_priv *priv);
int ktnic_reconfigure(struct ktnic_priv *priv,
		      const struct ktnic_ring_cfg *cfg);
bool ktnic_live(struct ktnic_priv *priv);
void ktnic_reset(struct ktnic_priv *priv);
void ktnic_schedule_reset(struct ktnic_priv *priv);
void ktnic_reset_task(struct work_struct *work);
bool ktnic_check_gone(struct ktnic_priv *priv);
void ktnic_detach(struct ktnic_priv *priv);
void ktnic_attach(struct ktnic_priv *priv);
void ktnic_count_rtnl_event(struct ktnic_priv *priv, u64_stats_t *counter);
void ktnic_link_work(struct work_struct *work);
void ktnic_service_task(struct work_struct *work);
void ktnic_set_coalesce_hw(struct ktnic_priv *priv);

/* ktnic_txrx.c */
int ktnic_alloc_ring_set(struct ktnic_priv *priv,
			 const struct ktnic_ring_cfg *cfg,
			 struct ktnic_ring_set *set);
void ktnic_free_ring_set(struct ktnic_ring_set *set);
void ktnic_ring_hw_init_tx(struct ktnic_priv *priv, struct ktnic_ring *ring);
void ktnic_ring_hw_init_rx(struct ktnic_priv *priv, struct ktnic_ring *ring);
void ktnic_ring_clean_tx(struct ktnic_ring *ring);
void ktnic_ring_clean_rx(struct ktnic_ring *ring);
void ktnic_rx_refill(struct ktnic_ring *ring, u16 count);
void ktnic_rx_kick_short(struct ktnic_priv *priv);
u16 ktnic_tx_in_flight(const struct ktnic_ring *ring);
u16 ktnic_rx_posted(const struct ktnic_ring *ring);
netdev_tx_t ktnic_start_xmit(struct sk_buff *skb, struct net_device *netdev);
int ktnic_xdp_xmit(struct net_device *netdev, int n, struct xdp_frame **frames,
		   u32 flags);
int ktnic_poll(struct napi_struct *napi, int budget);
void ktnic_pool_stats(struct ktnic_priv *priv, u64 *data);
int ktnic_pool_stats_count(void);

/* ktnic_irq.c */
int ktnic_irq_alloc_vectors(struct ktnic_priv *priv);
void ktnic_irq_free_vectors(struct ktnic_priv *priv);
int ktnic_irq_request(struct ktnic_priv *priv);
void ktnic_irq_release(struct ktnic_priv *priv);
void ktnic_irq_map_rings(struct ktnic_priv *priv);
struct ktnic_vector *ktnic_irq_rx_vector(struct ktnic_priv *priv, u16 qid);
void ktnic_irq_hw_enable(struct ktnic_priv *priv);
void ktnic_irq_set_throttle(struct ktnic_priv *priv, bool write_hw);
void ktnic_irq_hw_disable(struct ktnic_priv *priv);
void ktnic_irq_vector_rearm(struct ktnic_vector *v);
void ktnic_irq_kick(struct ktnic_vector *v);
void ktnic_irq_synchronize(struct ktnic_priv *priv);
const char *ktnic_irq_mode_name(enum ktnic_irq_mode mode);

/* ktnic_bugs.c */
int ktnic_bugs_parse(void);
const char *ktnic_bug_name(unsigned int bug);

/* ktnic_ethtool.c */
extern const struct ethtool_ops ktnic_ethtool_ops;

/* ktnic_debugfs.c */
void ktnic_debugfs_init(void);
void ktnic_debugfs_exit(void);
void ktnic_debugfs_add(struct ktnic_priv *priv);
void ktnic_debugfs_remove(struct ktnic_priv *priv);

#endif /* _KTNIC_H_ */
