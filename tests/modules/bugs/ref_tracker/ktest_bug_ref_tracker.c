// SPDX-License-Identifier: GPL-2.0
/*
 * ktest_bug_ref_tracker: registers a net device ("ktbref%d"), takes a tracked
 * reference (netdev_hold) and unregisters the device from a work item without
 * releasing it. After ~10 s unregister_netdevice reports "waiting for ktbref0 to
 * become free" and the ref_tracker prints where the reference was taken
 * (golden report test). Unloading the module drops the reference.
 */
#include <linux/etherdevice.h>
#include <linux/init.h>
#include <linux/module.h>
#include <linux/netdevice.h>
#include <linux/printk.h>
#include <linux/workqueue.h>

static struct net_device *ktest_bug_dev;
static netdevice_tracker ktest_bug_tracker;
static bool ktest_bug_held;

static void ktest_bug_unregister(struct work_struct *work)
{
	unregister_netdev(ktest_bug_dev);
	pr_info("ktest_bug_ref_tracker: unregistered\n");
}

static DECLARE_WORK(ktest_bug_work, ktest_bug_unregister);

static const struct net_device_ops ktest_bug_ref_ops = {
};

static noinline void ktest_bug_ref_tracker_hold(struct net_device *dev)
{
	netdev_hold(dev, &ktest_bug_tracker, GFP_KERNEL);
	ktest_bug_held = true;
}

static int __init ktest_bug_ref_tracker_init(void)
{
	int err;

	ktest_bug_dev = alloc_etherdev(0);
	if (!ktest_bug_dev)
		return -ENOMEM;
	strscpy(ktest_bug_dev->name, "ktbref%d", IFNAMSIZ);
	ktest_bug_dev->netdev_ops = &ktest_bug_ref_ops;
	eth_hw_addr_random(ktest_bug_dev);
	err = register_netdev(ktest_bug_dev);
	if (err) {
		free_netdev(ktest_bug_dev);
		return err;
	}
	ktest_bug_ref_tracker_hold(ktest_bug_dev);
	queue_work(system_long_wq, &ktest_bug_work);
	pr_info("ktest_bug_ref_tracker: unregistering %s with a reference held\n",
		ktest_bug_dev->name);
	return 0;
}

static void __exit ktest_bug_ref_tracker_exit(void)
{
	if (ktest_bug_held)
		netdev_put(ktest_bug_dev, &ktest_bug_tracker);
	flush_work(&ktest_bug_work);
	free_netdev(ktest_bug_dev);
}

module_init(ktest_bug_ref_tracker_init);
module_exit(ktest_bug_ref_tracker_exit);
MODULE_DESCRIPTION("ktest: net device reference leaked at unregister");
MODULE_LICENSE("GPL");
