// SPDX-License-Identifier: GPL-2.0
/*
 * ktest_bug_netdev_watchdog: a platform driver whose net device ("ktbwd%d")
 * stops its transmit queue on the first packet and never wakes it, with the
 * carrier on and a one second watchdog timeout. Bring it up and send a packet:
 * the stack's watchdog reports "NETDEV WATCHDOG: ... transmit queue 0 timed out"
 * (golden report test).
 */
#include <linux/etherdevice.h>
#include <linux/init.h>
#include <linux/module.h>
#include <linux/netdevice.h>
#include <linux/platform_device.h>
#include <linux/printk.h>
#include <linux/version.h>

#define KTEST_BUG_NAME "ktest_bug_netdev_watchdog"

static struct platform_device *ktest_bug_pdev;

static int ktest_bug_wd_open(struct net_device *dev)
{
	netif_carrier_on(dev);
	netif_start_queue(dev);
	return 0;
}

static int ktest_bug_wd_stop(struct net_device *dev)
{
	netif_stop_queue(dev);
	netif_carrier_off(dev);
	return 0;
}

static netdev_tx_t ktest_bug_wd_xmit(struct sk_buff *skb, struct net_device *dev)
{
	/* The "hardware" takes the packet and never completes it. */
	netif_stop_queue(dev);
	dev_kfree_skb_any(skb);
	return NETDEV_TX_OK;
}

static void ktest_bug_wd_tx_timeout(struct net_device *dev, unsigned int txqueue)
{
	netdev_info(dev, "tx timeout on queue %u\n", txqueue);
}

static const struct net_device_ops ktest_bug_wd_ops = {
	.ndo_open = ktest_bug_wd_open,
	.ndo_stop = ktest_bug_wd_stop,
	.ndo_start_xmit = ktest_bug_wd_xmit,
	.ndo_tx_timeout = ktest_bug_wd_tx_timeout,
};

static int ktest_bug_wd_probe(struct platform_device *pdev)
{
	struct net_device *dev;
	int err;

	dev = alloc_etherdev(0);
	if (!dev)
		return -ENOMEM;
	strscpy(dev->name, "ktbwd%d", IFNAMSIZ);
	dev->netdev_ops = &ktest_bug_wd_ops;
	dev->watchdog_timeo = HZ;
	eth_hw_addr_random(dev);
	SET_NETDEV_DEV(dev, &pdev->dev);
	err = register_netdev(dev);
	if (err) {
		free_netdev(dev);
		return err;
	}
	platform_set_drvdata(pdev, dev);
	return 0;
}

static void ktest_bug_wd_teardown(struct platform_device *pdev)
{
	struct net_device *dev = platform_get_drvdata(pdev);

	unregister_netdev(dev);
	free_netdev(dev);
}

/* .remove returns void from 6.11 on (6.1 has only the int form) */
#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 11, 0)
#define ktest_bug_wd_remove ktest_bug_wd_teardown
#else
static int ktest_bug_wd_remove(struct platform_device *pdev)
{
	ktest_bug_wd_teardown(pdev);
	return 0;
}
#endif

static struct platform_driver ktest_bug_wd_driver = {
	.probe = ktest_bug_wd_probe,
	.remove = ktest_bug_wd_remove,
	.driver = {
		.name = KTEST_BUG_NAME,
	},
};

static int __init ktest_bug_netdev_watchdog_init(void)
{
	int err = platform_driver_register(&ktest_bug_wd_driver);

	if (err)
		return err;
	ktest_bug_pdev = platform_device_register_simple(KTEST_BUG_NAME, -1, NULL, 0);
	if (IS_ERR(ktest_bug_pdev)) {
		platform_driver_unregister(&ktest_bug_wd_driver);
		return PTR_ERR(ktest_bug_pdev);
	}
	return 0;
}

static void __exit ktest_bug_netdev_watchdog_exit(void)
{
	platform_device_unregister(ktest_bug_pdev);
	platform_driver_unregister(&ktest_bug_wd_driver);
}

module_init(ktest_bug_netdev_watchdog_init);
module_exit(ktest_bug_netdev_watchdog_exit);
MODULE_DESCRIPTION("ktest: net device whose transmit queue hangs");
MODULE_LICENSE("GPL");
