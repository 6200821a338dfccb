// SPDX-License-Identifier: GPL-2.0
/*
 * debugfs: /sys/kernel/debug/ktest_nic/<pci-bdf>/
 *   tx0 tx1 rx0 rx1   one ring each, "key: value" lines:
 *                     state (up|down|absent), count, next_to_use,
 *                     next_to_clean, in_flight (Tx: descriptors owned by
 *                     the device or not yet reclaimed; Rx: buffers posted),
 *                     hw_head, hw_tail (registers, only when up)
 *   irq               mode (msix|msi|intx), vectors, and per vector its
 *                     rings, mask and throttle (EITR/ITR, 256 ns units)
 *   reset             write anything: schedule a reset through reset_task
 *                     (the path ndo_tx_timeout takes; rate limited)
 *   inject_alloc_fail bool: the next ring set allocation (open, ethtool -G,
 *                     ethtool -L) fails with -ENOMEM, once
 * Every file takes cfg_lock, so it never sees a ring being replaced.
 */
#include <linux/debugfs.h>
#include <linux/seq_file.h>

#include "ktnic.h"

static struct dentry *ktnic_dbg_root;

static int ktnic_dbg_ring_show(struct seq_file *m, void *unused)
{
	struct ktnic_dbg_ring *d = m->private;
	struct ktnic_priv *priv = d->priv;
	struct ktnic_ring *ring;
	bool up;
	int err;

	err = mutex_lock_interruptible(&priv->cfg_lock);
	if (err)
		return err;

	ring = d->is_tx ? priv->rings.tx[d->qid] : priv->rings.rx[d->qid];
	up = test_bit(KTNIC_S_UP, &priv->state);
	seq_printf(m, "queue: %s%u\n", d->is_tx ? "tx" : "rx", d->qid);
	if (!ring) {
		seq_puts(m, "state: absent\n");
		goto out_unlock;
	}
	seq_printf(m, "state: %s\n", up ? "up" : "down");
	seq_printf(m, "count: %u\n", ring->count);
	seq_printf(m, "next_to_use: %u\n", READ_ONCE(ring->next_to_use));
	seq_printf(m, "next_to_clean: %u\n", READ_ONCE(ring->next_to_clean));
	seq_printf(m, "in_flight: %u\n", d->is_tx ? ktnic_tx_in_flight(ring) :
					  ktnic_rx_posted(ring));
	if (up) {
		seq_printf(m, "hw_head: %u\n", ktnic_rd32(priv, d->is_tx ?
			   KTNIC_TDH(d->qid) : KTNIC_RDH(d->qid)));
		seq_printf(m, "hw_tail: %u\n", ktnic_rd32(priv, d->is_tx ?
			   KTNIC_TDT(d->qid) : KTNIC_RDT(d->qid)));
	}
out_unlock:
	mutex_unlock(&priv->cfg_lock);
	return 0;
}
DEFINE_SHOW_ATTRIBUTE(ktnic_dbg_ring);

static int ktnic_dbg_irq_show(struct seq_file *m, void *unused)
{
	struct ktnic_priv *priv = m->private;
	int err, i;

	err = mutex_lock_interruptible(&priv->cfg_lock);
	if (err)
		return err;
	seq_printf(m, "mode: %s\n", ktnic_irq_mode_name(priv->irq_mode));
	seq_printf(m, "vectors: %u\n", priv->num_vectors);
	for (i = 0; i < priv->num_vectors; i++) {
		struct ktnic_vector *v = &priv->vectors[i];

		seq_printf(m,
			   "vector%d: txr=%u rxr=%u ims=0x%08x eitr=%u napi=%d\n",
			   i, v->num_txr, v->num_rxr, v->ims, v->eitr,
			   v->napi_on);
	}
	mutex_unlock(&priv->cfg_lock);
	return 0;
}
DEFINE_SHOW_ATTRIBUTE(ktnic_dbg_irq);

static ssize_t ktnic_dbg_reset_write(struct file *file,
				     const char __user *buf, size_t len,
				     loff_t *ppos)
{
	struct ktnic_priv *priv = file->private_data;

	ktnic_schedule_reset(priv);
	return len;
}

static const struct file_operations ktnic_dbg_reset_fops = {
	.owner = THIS_MODULE,
	.open = simple_open,
	.write = ktnic_dbg_reset_write,
	.llseek = noop_llseek,
};

void ktnic_debugfs_add(struct ktnic_priv *priv)
{
	char name[8];
	int i;

	priv->dbg_dir = debugfs_create_dir(pci_name(priv->pdev),
					   ktnic_dbg_root);
	for (i = 0; i < KTNIC_MAX_TXQ + KTNIC_MAX_RXQ; i++) {
		struct ktnic_dbg_ring *d = &priv->dbg_ring[i];

		d->priv = priv;
		d->is_tx = i < KTNIC_MAX_TXQ;
		d->qid = d->is_tx ? i : i - KTNIC_MAX_TXQ;
		snprintf(name, sizeof(name), "%s%u", d->is_tx ? "tx" : "rx",
			 d->qid);
		debugfs_create_file(name, 0400, priv->dbg_dir, d,
				    &ktnic_dbg_ring_fops);
	}
	debugfs_create_file("irq", 0400, priv->dbg_dir, priv,
			    &ktnic_dbg_irq_fops);
	debugfs_create_file("reset", 0200, priv->dbg_dir, priv,
			    &ktnic_dbg_reset_fops);
	debugfs_create_bool("inject_alloc_fail", 0600, priv->dbg_dir,
			    &priv->inject_alloc_fail);
}

void ktnic_debugfs_remove(struct ktnic_priv *priv)
{
	debugfs_remove_recursive(priv->dbg_dir);
	priv->dbg_dir = NULL;
}

void ktnic_debugfs_init(void)
{
	ktnic_dbg_root = debugfs_create_dir(KTNIC_DRV_NAME, NULL);
}

void ktnic_debugfs_exit(void)
{
	debugfs_remove_recursive(ktnic_dbg_root);
	ktnic_dbg_root = NULL;
}
