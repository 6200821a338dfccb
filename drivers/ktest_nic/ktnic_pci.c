// SPDX-License-Identifier: GPL-2.0
/*
 * PCI glue: module init/exit, probe and remove, device identity, PCI error
 * recovery (AER) and function resets (FLR, bus reset) requested through the
 * PCI core.  Recovery and resets reuse ktnic_detach()/ktnic_attach(): the
 * same down/up pair as ndo_stop/ndo_open, with rings and irqs kept.
 */
#include <linux/delay.h>
#include <linux/etherdevice.h>
#include <linux/module.h>
#include <linux/pci.h>
#include <linux/rtnetlink.h>

#include "ktnic.h"

static const struct pci_device_id ktnic_pci_ids[] = {
	{ PCI_VDEVICE(INTEL, 0x10d3) },	/* 82574L, QEMU "e1000e" */
	{ }
};
MODULE_DEVICE_TABLE(pci, ktnic_pci_ids);

void ktnic_hw_read_mac(struct ktnic_priv *priv, u8 *mac)
{
	u32 lo = ktnic_rd32(priv, KTNIC_RAL(0));
	u32 hi = ktnic_rd32(priv, KTNIC_RAH(0));

	mac[0] = lo;
	mac[1] = lo >> 8;
	mac[2] = lo >> 16;
	mac[3] = lo >> 24;
	mac[4] = hi;
	mac[5] = hi >> 8;
}

void ktnic_hw_write_mac(struct ktnic_priv *priv, const u8 *mac)
{
	u32 lo = mac[0] | mac[1] << 8 | mac[2] << 16 | (u32)mac[3] << 24;
	u32 hi = mac[4] | mac[5] << 8;

	/* clear AV first so the filter is never half updated */
	ktnic_wr32(priv, KTNIC_RAH(0), 0);
	ktnic_wr32(priv, KTNIC_RAL(0), lo);
	ktnic_wr32(priv, KTNIC_RAH(0), hi | KTNIC_RAH_AV);
}

/* Fold the clear-on-read hardware counters into the software totals. */
void ktnic_hw_update_stats(struct ktnic_priv *priv)
{
	unsigned long flags;
	u32 mpc, rnbc;

	spin_lock_irqsave(&priv->hw_lock, flags);
	mpc = ktnic_rd32(priv, KTNIC_MPC);
	rnbc = ktnic_rd32(priv, KTNIC_RNBC);
	if (mpc != KTNIC_REG_GONE && rnbc != KTNIC_REG_GONE) {
		priv->dstats.rx_missed += mpc;
		priv->dstats.rx_no_buffer += rnbc;
	}
	spin_unlock_irqrestore(&priv->hw_lock, flags);
}

/* Stop whatever a previous owner left running, then reset the MAC. */
void ktnic_hw_quiesce(struct ktnic_priv *priv)
{
	ktnic_wr32(priv, KTNIC_IMC, KTNIC_INT_ALL);
	ktnic_wr32(priv, KTNIC_RCTL, 0);
	ktnic_wr32(priv, KTNIC_TCTL, 0);
	ktnic_flush(priv);
	/* let DMA already started by the device drain */
	usleep_range(10000, 12000);

	ktnic_wr32(priv, KTNIC_CTRL,
		   ktnic_rd32(priv, KTNIC_CTRL) | KTNIC_CTRL_RST);
	/* the reset bit self-clears within 1 ms; no register is polled */
	usleep_range(1000, 2000);

	ktnic_wr32(priv, KTNIC_IMC, KTNIC_INT_ALL);
	ktnic_wr32(priv, KTNIC_ICR, KTNIC_INT_ALL);
	ktnic_flush(priv);
}

static void ktnic_init_stats(struct ktnic_priv *priv)
{
	int i;

	for (i = 0; i < KTNIC_MAX_TXQ; i++) {
		u64_stats_init(&priv->txq_xstats[i].syncp);
		u64_stats_init(&priv->txq_cstats[i].syncp);
	}
	for (i = 0; i < KTNIC_MAX_RXQ; i++)
		u64_stats_init(&priv->rxq_stats[i].syncp);
	u64_stats_init(&priv->dstats.irq_syncp);
	u64_stats_init(&priv->dstats.rtnl_syncp);
}

static int ktnic_probe(struct pci_dev *pdev, const struct pci_device_id *id)
{
	struct net_device *netdev;
	struct ktnic_priv *priv;
	u8 __iomem *hw;
	u8 mac[ETH_ALEN];
	bool dma64 = true;
	int err;

	err = pcim_enable_device(pdev);
	if (err)
		return err;

	err = pci_request_mem_regions(pdev, KTNIC_DRV_NAME);
	if (err)
		return err;

	err = dma_set_mask_and_coherent(&pdev->dev, DMA_BIT_MASK(64));
	if (err) {
		dma64 = false;
		err = dma_set_mask_and_coherent(&pdev->dev, DMA_BIT_MASK(32));
		if (err) {
			dev_err(&pdev->dev, "no usable DMA mask\n");
			goto err_release_regions;
		}
	}

	pci_set_master(pdev);

	hw = pci_iomap(pdev, 0, 0);
	if (!hw) {
		err = -ENOMEM;
		goto err_clear_master;
	}

	netdev = alloc_etherdev_mqs(sizeof(*priv), KTNIC_MAX_TXQ,
				    KTNIC_MAX_RXQ);
	if (!netdev) {
		err = -ENOMEM;
		goto err_iounmap;
	}
	SET_NETDEV_DEV(netdev, &pdev->dev);

	priv = netdev_priv(netdev);
	priv->netdev = netdev;
	priv->pdev = pdev;
	priv->hw = hw;
	mutex_init(&priv->cfg_lock);
	spin_lock_init(&priv->hw_lock);
	INIT_DELAYED_WORK(&priv->reset_task, ktnic_reset_task);
	INIT_DELAYED_WORK(&priv->service_task, ktnic_service_task);
	if (!ktnic_bug(OPEN_RACES_PROBE))
		INIT_WORK(&priv->link_work, ktnic_link_work);
	ktnic_init_stats(priv);
	priv->cfg.tx_count = KTNIC_TX_DEFAULT;
	priv->cfg.rx_count = KTNIC_RX_DEFAULT;
	priv->cfg.num_txq = KTNIC_MAX_TXQ;
	priv->cfg.num_rxq = KTNIC_MAX_RXQ;
	priv->rx_usecs = KTNIC_COAL_DEFAULT;
	priv->tx_usecs = KTNIC_COAL_DEFAULT;
	netdev_rss_key_fill(priv->rss_key, sizeof(priv->rss_key));
	ktnic_rss_default_indir(priv);

	/* before anything can raise an interrupt */
	pci_set_drvdata(pdev, priv);

	if (ktnic_gone(priv)) {
		dev_err(&pdev->dev, "device does not respond\n");
		err = -ENODEV;
		goto err_free_netdev;
	}
	ktnic_hw_quiesce(priv);

	err = ktnic_irq_alloc_vectors(priv);
	if (err)
		goto err_free_netdev;
	/* what slot_reset restores after a reset (MSI-X included) */
	pci_save_state(pdev);

	netdev->netdev_ops = &ktnic_netdev_ops;
	netdev->ethtool_ops = &ktnic_ethtool_ops;
	ktnic_set_stat_ops(netdev);
	netdev->watchdog_timeo = 5 * HZ;
	netdev->hw_features = NETIF_F_SG | NETIF_F_IP_CSUM |
			      NETIF_F_IPV6_CSUM | NETIF_F_TSO | NETIF_F_TSO6 |
			      NETIF_F_RXCSUM | NETIF_F_RXHASH;
	netdev->features = netdev->hw_features;
	if (dma64)
		netdev->features |= NETIF_F_HIGHDMA;
	/* checksum offload under a VLAN tag is untested: not offered */
	netdev->vlan_features = netdev->features & (NETIF_F_SG |
						    NETIF_F_HIGHDMA);
	netdev->min_mtu = ETH_MIN_MTU;
	netdev->max_mtu = KTNIC_MAX_MTU;
	ktnic_set_xdp_features(netdev);

	ktnic_hw_read_mac(priv, mac);
	if (is_valid_ether_addr(mac)) {
		eth_hw_addr_set(netdev, mac);
	} else {
		dev_warn(&pdev->dev, "invalid MAC %pM, using a random one\n",
			 mac);
		eth_hw_addr_random(netdev);
	}

	err = netif_set_real_num_tx_queues(netdev, priv->cfg.num_txq);
	if (err)
		goto err_free_vectors;
	err = netif_set_real_num_rx_queues(netdev, priv->cfg.num_rxq);
	if (err)
		goto err_free_vectors;

	ktnic_debugfs_add(priv);

	err = register_netdev(netdev);
	if (err)
		goto err_remove_debugfs;
	/* set-up finished after the interface became visible: an open in
	 * this window finds the link work uninitialised
	 */
	if (ktnic_bug(OPEN_RACES_PROBE)) {
		msleep(1000);
		INIT_WORK(&priv->link_work, ktnic_link_work);
	}

	netif_carrier_off(netdev);
	netdev_info(netdev, "82574L at %s, MAC %pM, %s\n", pci_name(pdev),
		    netdev->dev_addr, ktnic_irq_mode_name(priv->irq_mode));
	return 0;

err_remove_debugfs:
	ktnic_debugfs_remove(priv);
err_free_vectors:
	ktnic_irq_free_vectors(priv);
err_free_netdev:
	if (!ktnic_bug(PROBE_LEAK))
		free_netdev(netdev);
err_iounmap:
	pci_iounmap(pdev, hw);
err_clear_master:
	pci_clear_master(pdev);
err_release_regions:
	pci_release_mem_regions(pdev);
	return err;
}

static void ktnic_remove(struct pci_dev *pdev)
{
	struct ktnic_priv *priv = pci_get_drvdata(pdev);
	struct net_device *netdev = priv->netdev;
	u8 __iomem *hw = priv->hw;

	set_bit(KTNIC_S_REMOVING, &priv->state);

	/* stops the interface: rings and irqs are released by ndo_stop */
	unregister_netdev(netdev);
	if (ktnic_bug(FREE_NETDEV_EARLY))
		free_netdev(netdev);	/* priv lives in there */

	if (!ktnic_bug(WORK_AFTER_REMOVE))
		cancel_delayed_work_sync(&priv->reset_task);
	cancel_work_sync(&priv->link_work);
	cancel_delayed_work_sync(&priv->service_task);
	ktnic_debugfs_remove(priv);

	if (!ktnic_gone(priv)) {
		ktnic_wr32(priv, KTNIC_RCTL, 0);
		ktnic_wr32(priv, KTNIC_TCTL, 0);
		ktnic_irq_hw_disable(priv);
	}
	ktnic_irq_free_vectors(priv);

	if (!ktnic_bug(FREE_NETDEV_EARLY))
		free_netdev(netdev);
	pci_iounmap(pdev, hw);
	pci_clear_master(pdev);
	pci_release_mem_regions(pdev);
}

/*
 * AER: an error was reported on the link.  Stop using the device and ask
 * for a reset, or give up on it when the link is gone for good.  MMIO
 * reads may fail from here until slot_reset.
 */
static pci_ers_result_t ktnic_io_error_detected(struct pci_dev *pdev,
						pci_channel_state_t state)
{
	struct ktnic_priv *priv = pci_get_drvdata(pdev);

	rtnl_lock();
	ktnic_count_rtnl_event(priv, &priv->dstats.pci_errors);
	ktnic_detach(priv);
	if (state == pci_channel_io_perm_failure)
		set_bit(KTNIC_S_DEAD, &priv->state);
	rtnl_unlock();
	netdev_warn(priv->netdev, "PCI error (channel state %d): %s\n", state,
		    state == pci_channel_io_perm_failure ? "giving up" :
		    "waiting for a reset");
	return state == pci_channel_io_perm_failure ?
	       PCI_ERS_RESULT_DISCONNECT : PCI_ERS_RESULT_NEED_RESET;
}

/* The slot was reset (fatal error) or not (non-fatal): either way, start
 * from the saved config space and a quiesced MAC.
 */
static pci_ers_result_t ktnic_io_slot_reset(struct pci_dev *pdev)
{
	struct ktnic_priv *priv = pci_get_drvdata(pdev);

	if (!ktnic_bug(NO_STATE_RESTORE))
		pci_restore_state(pdev);
	/* pci_restore_state() consumed the copy: keep one for next time */
	pci_save_state(pdev);
	if (ktnic_gone(priv)) {
		dev_err(&pdev->dev, "no response after the reset\n");
		set_bit(KTNIC_S_DEAD, &priv->state);
		return PCI_ERS_RESULT_DISCONNECT;
	}
	ktnic_hw_quiesce(priv);
	return PCI_ERS_RESULT_RECOVERED;
}

static void ktnic_io_resume(struct pci_dev *pdev)
{
	struct ktnic_priv *priv = pci_get_drvdata(pdev);

	rtnl_lock();
	ktnic_attach(priv);
	ktnic_count_rtnl_event(priv, &priv->dstats.slot_resets);
	rtnl_unlock();
	netdev_info(priv->netdev, "recovered from the PCI error\n");
}

/* A function reset requested through the PCI core (sysfs reset, VFIO...):
 * the core saves and restores config space around it.
 */
static void ktnic_reset_prepare(struct pci_dev *pdev)
{
	struct ktnic_priv *priv = pci_get_drvdata(pdev);

	rtnl_lock();
	ktnic_detach(priv);
	rtnl_unlock();
}

static void ktnic_reset_done(struct pci_dev *pdev)
{
	struct ktnic_priv *priv = pci_get_drvdata(pdev);

	rtnl_lock();
	if (ktnic_gone(priv)) {
		set_bit(KTNIC_S_DEAD, &priv->state);
		netdev_err(priv->netdev, "no response after the function reset: detached\n");
	} else {
		ktnic_hw_quiesce(priv);
		ktnic_attach(priv);
		ktnic_count_rtnl_event(priv, &priv->dstats.function_resets);
	}
	rtnl_unlock();
}

static const struct pci_error_handlers ktnic_err_handlers = {
	.error_detected	= ktnic_io_error_detected,
	.slot_reset	= ktnic_io_slot_reset,
	.resume		= ktnic_io_resume,
	.reset_prepare	= ktnic_reset_prepare,
	.reset_done	= ktnic_reset_done,
};

/* the same without the function reset hooks (bug no_reset_prepare) */
static const struct pci_error_handlers ktnic_err_handlers_no_reset = {
	.error_detected	= ktnic_io_error_detected,
	.slot_reset	= ktnic_io_slot_reset,
	.resume		= ktnic_io_resume,
};

static void ktnic_shutdown(struct pci_dev *pdev)
{
	struct ktnic_priv *priv = pci_get_drvdata(pdev);
	int i;

	rtnl_lock();
	netif_device_detach(priv->netdev);
	if (netif_running(priv->netdev))
		dev_close(priv->netdev);
	rtnl_unlock();
	/* the bug: quiesce NAPI once more without asking whether the close
	 * did; napi_disable() of a disabled instance waits for ever
	 */
	if (ktnic_bug(SHUTDOWN_NAPI_TWICE)) {
		for (i = 0; i < priv->num_vectors; i++) {
			if (priv->vectors[i].napi_added)
				napi_disable(&priv->vectors[i].napi);
		}
	}
	pci_clear_master(pdev);
}

static struct pci_driver ktnic_pci_driver = {
	.name = KTNIC_DRV_NAME,
	.id_table = ktnic_pci_ids,
	.probe = ktnic_probe,
	.remove = ktnic_remove,
	.shutdown = ktnic_shutdown,
	.err_handler = &ktnic_err_handlers,
};

static int __init ktnic_init(void)
{
	int err;

	err = ktnic_bugs_parse();
	if (err)
		return err;
	if (ktnic_bug(NO_RESET_PREPARE))
		ktnic_pci_driver.err_handler = &ktnic_err_handlers_no_reset;
	ktnic_debugfs_init();
	err = pci_register_driver(&ktnic_pci_driver);
	if (err)
		ktnic_debugfs_exit();
	return err;
}
module_init(ktnic_init);

static void __exit ktnic_exit(void)
{
	pci_unregister_driver(&ktnic_pci_driver);
	ktnic_debugfs_exit();
}
module_exit(ktnic_exit);

MODULE_DESCRIPTION("ktest NIC driver for the Intel 82574L (QEMU e1000e)");
MODULE_LICENSE("GPL");
