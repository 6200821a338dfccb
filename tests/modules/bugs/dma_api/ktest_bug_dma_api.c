// SPDX-License-Identifier: GPL-2.0
/*
 * ktest_bug_dma_api: maps a buffer for the e1000e NIC (82574L, 8086:10d3) with
 * dma_map_single() and unmaps it without checking dma_mapping_error() when
 * loaded; DMA-API debugging reports "device driver failed to check map error"
 * (golden report test). The device itself is left alone.
 */
#include <linux/dma-mapping.h>
#include <linux/init.h>
#include <linux/module.h>
#include <linux/pci.h>
#include <linux/printk.h>
#include <linux/slab.h>

#define KTEST_BUG_BUF_SIZE 256

static noinline void ktest_bug_map_unchecked(struct device *dev, void *buf)
{
	dma_addr_t addr = dma_map_single(dev, buf, KTEST_BUG_BUF_SIZE, DMA_TO_DEVICE);

	/* Missing: if (dma_mapping_error(dev, addr)) ... */
	dma_unmap_single(dev, addr, KTEST_BUG_BUF_SIZE, DMA_TO_DEVICE);
}

static int __init ktest_bug_dma_api_init(void)
{
	struct pci_dev *pdev = pci_get_device(PCI_VENDOR_ID_INTEL, 0x10d3, NULL);
	void *buf;

	if (!pdev) {
		pr_err("ktest_bug_dma_api: no 8086:10d3 device\n");
		return -ENODEV;
	}
	buf = kzalloc(KTEST_BUG_BUF_SIZE, GFP_KERNEL);
	if (!buf) {
		pci_dev_put(pdev);
		return -ENOMEM;
	}
	ktest_bug_map_unchecked(&pdev->dev, buf);
	kfree(buf);
	pci_dev_put(pdev);
	pr_info("ktest_bug_dma_api: mapped without checking the mapping\n");
	return 0;
}

static void __exit ktest_bug_dma_api_exit(void)
{
}

module_init(ktest_bug_dma_api_init);
module_exit(ktest_bug_dma_api_exit);
MODULE_DESCRIPTION("ktest: unchecked DMA mapping on load");
MODULE_LICENSE("GPL");
