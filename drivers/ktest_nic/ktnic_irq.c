// SPDX-License-Identifier: GPL-2.0
/*
 * Interrupts.  MSI-X uses five vectors: Rx0, Rx1, Tx0, Tx1 and "other"
 * (link change, Rx overrun).  MSI and INTx use one vector for everything.
 *
 * MSI-X: queue causes are in EIAC, so the device clears the ICR bit and
 * masks the cause (IAME=0) when it sends the message; the NAPI poll unmasks
 * it through IMS after napi_complete_done().  The "other" cause is not in
 * EIAC: in MSI-X mode reading ICR does not clear it, and QEMU's model does
 * not send a new message while an old cause is still pending, so the
 * handler clears the causes it saw by writing them back to ICR.  Without
 * that a second link change would never be signalled.
 */
#include <linux/interrupt.h>
#include <linux/pci.h>

#include "ktnic.h"

#define KTNIC_QUEUE_CAUSES	(KTNIC_INT_RXQ(0) | KTNIC_INT_RXQ(1) | \
				 KTNIC_INT_TXQ(0) | KTNIC_INT_TXQ(1))
#define KTNIC_LEGACY_QUEUE_CAUSES (KTNIC_INT_RXT0 | KTNIC_INT_TXDW)

const char *ktnic_irq_mode_name(enum ktnic_irq_mode mode)
{
	switch (mode) {
	case KTNIC_IRQ_MSIX:
		return "msix";
	case KTNIC_IRQ_MSI:
		return "msi";
	default:
		return "intx";
	}
}

static u32 ktnic_usecs_to_itr(u32 usecs)
{
	/* the throttle registers count 256 ns units */
	return DIV_ROUND_UP(usecs * 1000, 256);
}

static void ktnic_irq_other_causes(struct ktnic_priv *priv, u32 icr)
{
	struct ktnic_dev_stats *ds = &priv->dstats;

	if (!(icr & (KTNIC_INT_LSC | KTNIC_INT_RXO)))
		return;

	/* the only writer of these counters: one interrupt context */
	u64_stats_update_begin(&ds->irq_syncp);
	if (icr & KTNIC_INT_LSC)
		u64_stats_inc(&ds->link_irq);
	if (icr & KTNIC_INT_RXO)
		u64_stats_inc(&ds->rx_overrun_irq);
	u64_stats_update_end(&ds->irq_syncp);

	if ((icr & KTNIC_INT_LSC) && !test_bit(KTNIC_S_REMOVING, &priv->state))
		schedule_work(&priv->link_work);
}

static irqreturn_t ktnic_msix_queue_irq(int irq, void *data)
{
	struct ktnic_vector *v = data;

	/* cause already cleared and masked by the device (EIAC) */
	napi_schedule_irqoff(&v->napi);
	return IRQ_HANDLED;
}

static irqreturn_t ktnic_msix_other_irq(int irq, void *data)
{
	struct ktnic_vector *v = data;
	struct ktnic_priv *priv = v->priv;
	u32 icr;

	if (test_bit(KTNIC_S_DETACHED, &priv->state))
		return IRQ_NONE;
	icr = ktnic_rd32(priv, KTNIC_ICR);
	if (icr == KTNIC_REG_GONE) {
		ktnic_check_gone(priv);
		return IRQ_NONE;
	}

	/* Clear what we saw (W1C); writing OTHER clears every other cause.
	 * Queue causes are left alone: they belong to the queue vectors.
	 */
	ktnic_wr32(priv, KTNIC_ICR, icr & ~(KTNIC_QUEUE_CAUSES |
					    KTNIC_INT_ASSERTED));
	ktnic_irq_other_causes(priv, icr);
	ktnic_wr32(priv, KTNIC_IMS, v->ims);
	return IRQ_HANDLED;
}

/* MSI and INTx: one vector; reading ICR clears it in these modes. */
static irqreturn_t ktnic_single_irq(int irq, void *data)
{
	struct ktnic_vector *v = data;
	struct ktnic_priv *priv = v->priv;
	u32 icr;

	if (test_bit(KTNIC_S_DETACHED, &priv->state))
		return IRQ_NONE;	/* the device is being reset */
	icr = ktnic_rd32(priv, KTNIC_ICR);
	if (icr == KTNIC_REG_GONE)
		ktnic_check_gone(priv);
	if (!icr || icr == KTNIC_REG_GONE)
		return IRQ_NONE;	/* not ours (shared INTx) or gone */

	ktnic_irq_other_causes(priv, icr);
	if (icr & KTNIC_LEGACY_QUEUE_CAUSES) {
		/* masked until the poll completes */
		ktnic_wr32(priv, KTNIC_IMC, KTNIC_LEGACY_QUEUE_CAUSES);
		napi_schedule_irqoff(&v->napi);
	}
	return IRQ_HANDLED;
}

static void ktnic_irq_init_vectors(struct ktnic_priv *priv, u8 nqueue_vecs)
{
	struct net_device *netdev = priv->netdev;
	u8 i;

	for (i = 0; i < priv->num_vectors; i++) {
		struct ktnic_vector *v = &priv->vectors[i];

		v->priv = priv;
		v->idx = i;
		if (i < nqueue_vecs) {
			netif_napi_add(netdev, &v->napi, ktnic_poll);
			v->napi_added = true;
		}
	}
}

/* Probe time: pick the interrupt mode and create the NAPI instances. */
int ktnic_irq_alloc_vectors(struct ktnic_priv *priv)
{
	struct pci_dev *pdev = priv->pdev;
	int nvec;

	nvec = pci_alloc_irq_vectors(pdev, KTNIC_MAX_VECTORS,
				     KTNIC_MAX_VECTORS, PCI_IRQ_MSIX);
	if (nvec == KTNIC_MAX_VECTORS) {
		priv->irq_mode = KTNIC_IRQ_MSIX;
		priv->num_vectors = KTNIC_MAX_VECTORS;
		priv->other_vector = KTNIC_MAX_VECTORS - 1;
		ktnic_irq_init_vectors(priv, KTNIC_MAX_VECTORS - 1);
		goto done;
	}

	nvec = pci_alloc_irq_vectors(pdev, 1, 1, PCI_IRQ_MSI);
	if (nvec == 1) {
		priv->irq_mode = KTNIC_IRQ_MSI;
	} else {
		nvec = pci_alloc_irq_vectors(pdev, 1, 1, PCI_IRQ_INTX);
		if (nvec < 0)
			return nvec;
		priv->irq_mode = KTNIC_IRQ_INTX;
	}
	priv->num_vectors = 1;
	priv->other_vector = 0;
	ktnic_irq_init_vectors(priv, 1);
done:
	priv->max_txq = KTNIC_MAX_TXQ;
	priv->max_rxq = KTNIC_MAX_RXQ;
	dev_info(&pdev->dev, "interrupt mode %s, %u vectors\n",
		 ktnic_irq_mode_name(priv->irq_mode), priv->num_vectors);
	return 0;
}

void ktnic_irq_free_vectors(struct ktnic_priv *priv)
{
	u8 i;

	for (i = 0; i < priv->num_vectors; i++) {
		struct ktnic_vector *v = &priv->vectors[i];

		if (v->napi_added) {
			netif_napi_del(&v->napi);
			v->napi_added = false;
		}
	}
	pci_free_irq_vectors(priv->pdev);
	priv->num_vectors = 0;
}

/* Assign the current rings to vectors.  Interface down, cfg_lock held. */
/* The vector whose NAPI serves Rx queue qid (fixed at probe per irq mode). */
struct ktnic_vector *ktnic_irq_rx_vector(struct ktnic_priv *priv, u16 qid)
{
	return &priv->vectors[priv->irq_mode == KTNIC_IRQ_MSIX ? qid : 0];
}

void ktnic_irq_map_rings(struct ktnic_priv *priv)
{
	struct ktnic_ring_set *set = &priv->rings;
	u8 i;

	for (i = 0; i < priv->num_vectors; i++) {
		struct ktnic_vector *v = &priv->vectors[i];

		memset(v->txr, 0, sizeof(v->txr));
		memset(v->rxr, 0, sizeof(v->rxr));
		v->num_txr = 0;
		v->num_rxr = 0;
		v->ims = 0;
	}

	if (priv->irq_mode == KTNIC_IRQ_MSIX) {
		for (i = 0; i < set->cfg.num_rxq; i++) {
			struct ktnic_vector *v = ktnic_irq_rx_vector(priv, i);

			v->rxr[v->num_rxr++] = set->rx[i];
			set->rx[i]->vector = v;
			v->ims = KTNIC_INT_RXQ(i);
		}
		for (i = 0; i < set->cfg.num_txq; i++) {
			struct ktnic_vector *v = &priv->vectors[KTNIC_MAX_RXQ + i];

			v->txr[v->num_txr++] = set->tx[i];
			set->tx[i]->vector = v;
			v->ims = KTNIC_INT_TXQ(i);
		}
		priv->vectors[priv->other_vector].ims =
			KTNIC_INT_OTHER | KTNIC_INT_LSC | KTNIC_INT_RXO;
		ktnic_irq_set_throttle(priv, false);
		return;
	}

	for (i = 0; i < set->cfg.num_rxq; i++) {
		struct ktnic_vector *v = ktnic_irq_rx_vector(priv, i);

		v->rxr[v->num_rxr++] = set->rx[i];
		set->rx[i]->vector = v;
	}
	for (i = 0; i < set->cfg.num_txq; i++) {
		priv->vectors[0].txr[priv->vectors[0].num_txr++] = set->tx[i];
		set->tx[i]->vector = &priv->vectors[0];
	}
	priv->vectors[0].ims = KTNIC_LEGACY_QUEUE_CAUSES | KTNIC_INT_LSC |
			       KTNIC_INT_RXO;
	ktnic_irq_set_throttle(priv, false);
}

/*
 * Compute each vector's throttle from rx_usecs/tx_usecs (cfg_lock held)
 * and, if write_hw, program it.  MSI-X: vectors 0..1 serve Rx, 2..3 Tx,
 * the other vector is not throttled; MSI/INTx: ITR follows rx_usecs.
 * QEMU's model enforces at least 128 us whatever is written.
 */
void ktnic_irq_set_throttle(struct ktnic_priv *priv, bool write_hw)
{
	u8 i;

	if (priv->irq_mode != KTNIC_IRQ_MSIX) {
		priv->vectors[0].eitr = ktnic_usecs_to_itr(priv->rx_usecs);
		if (write_hw)
			ktnic_wr32(priv, KTNIC_ITR, priv->vectors[0].eitr);
		return;
	}
	for (i = 0; i < priv->num_vectors; i++) {
		struct ktnic_vector *v = &priv->vectors[i];

		if (i == priv->other_vector)
			v->eitr = 0;
		else if (i < KTNIC_MAX_RXQ)
			v->eitr = ktnic_usecs_to_itr(priv->rx_usecs);
		else
			v->eitr = ktnic_usecs_to_itr(priv->tx_usecs);
		if (write_hw)
			ktnic_wr32(priv, KTNIC_EITR(i), v->eitr);
	}
}

static void ktnic_irq_release_n(struct ktnic_priv *priv, u8 n)
{
	while (n--) {
		struct ktnic_vector *v = &priv->vectors[n];

		if (!v->irq_requested)
			continue;
		free_irq(pci_irq_vector(priv->pdev, n), v);
		v->irq_requested = false;
	}
}

/* ndo_open time (names carry the interface name). */
int ktnic_irq_request(struct ktnic_priv *priv)
{
	struct net_device *netdev = priv->netdev;
	struct pci_dev *pdev = priv->pdev;
	irq_handler_t handler;
	unsigned long flags;
	int err;
	u8 i;

	for (i = 0; i < priv->num_vectors; i++) {
		struct ktnic_vector *v = &priv->vectors[i];

		flags = 0;
		if (priv->irq_mode != KTNIC_IRQ_MSIX) {
			handler = ktnic_single_irq;
			snprintf(v->name, sizeof(v->name), "%s", netdev->name);
			if (priv->irq_mode == KTNIC_IRQ_INTX)
				flags = IRQF_SHARED;
		} else if (i == priv->other_vector) {
			handler = ktnic_msix_other_irq;
			snprintf(v->name, sizeof(v->name), "%s-other",
				 netdev->name);
		} else {
			handler = ktnic_msix_queue_irq;
			if (i < KTNIC_MAX_RXQ)
				snprintf(v->name, sizeof(v->name), "%s-rx-%u",
					 netdev->name, i);
			else
				snprintf(v->name, sizeof(v->name), "%s-tx-%u",
					 netdev->name, i - KTNIC_MAX_RXQ);
		}
		err = request_irq(pci_irq_vector(pdev, i), handler, flags,
				  v->name, v);
		if (err) {
			netdev_err(netdev, "request_irq %s: %d\n", v->name, err);
			goto err_release_requested;
		}
		v->irq_requested = true;
	}
	return 0;

err_release_requested:
	ktnic_irq_release_n(priv, i);
	return err;
}

void ktnic_irq_release(struct ktnic_priv *priv)
{
	ktnic_irq_release_n(priv, priv->num_vectors);
}

/* Program routing, throttling and masks; cannot fail. */
void ktnic_irq_hw_enable(struct ktnic_priv *priv)
{
	struct ktnic_ring_set *set = &priv->rings;
	u32 ims = 0, ivar = 0, ext;
	u8 i;

	for (i = 0; i < priv->num_vectors; i++)
		ims |= priv->vectors[i].ims;

	ext = ktnic_rd32(priv, KTNIC_CTRL_EXT);
	ext &= ~(KTNIC_CTRL_EXT_IAME | KTNIC_CTRL_EXT_EIAME);

	if (priv->irq_mode == KTNIC_IRQ_MSIX) {
		for (i = 0; i < set->cfg.num_rxq; i++)
			ivar |= (KTNIC_IVAR_VALID | i) << KTNIC_IVAR_RXQ_SHIFT(i);
		for (i = 0; i < set->cfg.num_txq; i++)
			ivar |= (KTNIC_IVAR_VALID | (KTNIC_MAX_RXQ + i)) <<
				KTNIC_IVAR_TXQ_SHIFT(i);
		ivar |= (KTNIC_IVAR_VALID | priv->other_vector) <<
			KTNIC_IVAR_OTHER_SHIFT;
		ktnic_wr32(priv, KTNIC_IVAR, ivar);
		ktnic_wr32(priv, KTNIC_CTRL_EXT, ext | KTNIC_CTRL_EXT_PBA_CLR);
		ktnic_wr32(priv, KTNIC_IAM, 0);
		ktnic_wr32(priv, KTNIC_EIAC, KTNIC_QUEUE_CAUSES);
		for (i = 0; i < priv->num_vectors; i++)
			ktnic_wr32(priv, KTNIC_EITR(i), priv->vectors[i].eitr);
	} else {
		ktnic_wr32(priv, KTNIC_CTRL_EXT, ext);
		ktnic_wr32(priv, KTNIC_ITR, priv->vectors[0].eitr);
	}
	/* drop causes left from before: a stale one would block new ones */
	ktnic_wr32(priv, KTNIC_ICR, KTNIC_INT_ALL);
	ktnic_wr32(priv, KTNIC_IMS, ims);
	ktnic_flush(priv);
}

void ktnic_irq_hw_disable(struct ktnic_priv *priv)
{
	ktnic_wr32(priv, KTNIC_IMC, KTNIC_INT_ALL);
	if (priv->irq_mode == KTNIC_IRQ_MSIX)
		ktnic_wr32(priv, KTNIC_EIAC, 0);
	ktnic_flush(priv);
}

void ktnic_irq_synchronize(struct ktnic_priv *priv)
{
	u8 i;

	for (i = 0; i < priv->num_vectors; i++)
		if (priv->vectors[i].irq_requested)
			synchronize_irq(pci_irq_vector(priv->pdev, i));
}

/* Raise a vector's queue interrupt from software, unmasked first (a lost
 * rearm is one way a queue stalls), so its NAPI poll runs and reclaims
 * whatever the device completed.  A poll already scheduled absorbs it.
 */
void ktnic_irq_kick(struct ktnic_vector *v)
{
	struct ktnic_priv *priv = v->priv;
	u32 causes = priv->irq_mode == KTNIC_IRQ_MSIX ? v->ims :
		     KTNIC_LEGACY_QUEUE_CAUSES;

	ktnic_wr32(priv, KTNIC_IMS, causes);
	ktnic_wr32(priv, KTNIC_ICS, causes);
}

/* Unmask a vector's queue causes after napi_complete_done(). */
void ktnic_irq_vector_rearm(struct ktnic_vector *v)
{
	struct ktnic_priv *priv = v->priv;

	if (priv->irq_mode == KTNIC_IRQ_MSIX)
		ktnic_wr32(priv, KTNIC_IMS, v->ims);
	else
		ktnic_wr32(priv, KTNIC_IMS, KTNIC_LEGACY_QUEUE_CAUSES);
}
