// SPDX-License-Identifier: GPL-2.0
/*
 * ktest_bug_dmar_fault: points the Tx descriptor ring of the e1000e NIC
 * (82574L, 8086:10d3; bound to e1000e) at an I/O virtual address that is not
 * mapped, so that the next transmit makes the device fetch a descriptor from it.
 * With DMA remapping on (intel-iommu), the IOMMU reports a DMAR fault for the
 * device (golden report test). The NIC is unusable afterwards.
 */
#include <linux/init.h>
#include <linux/io.h>
#include <linux/module.h>
#include <linux/pci.h>
#include <linux/printk.h>

#define KTEST_BUG_TDBAL 0x03800
#define KTEST_BUG_TDBAH 0x03804
#define KTEST_BUG_IOVA 0xdead000ULL

static int __init ktest_bug_dmar_fault_init(void)
{
	struct pci_dev *pdev = pci_get_device(PCI_VENDOR_ID_INTEL, 0x10d3, NULL);
	void __iomem *regs;

	if (!pdev) {
		pr_err("ktest_bug_dmar_fault: no 8086:10d3 device\n");
		return -ENODEV;
	}
	regs = pci_iomap(pdev, 0, 0);
	if (!regs) {
		pci_dev_put(pdev);
		return -ENOMEM;
	}
	writel(lower_32_bits(KTEST_BUG_IOVA), regs + KTEST_BUG_TDBAL);
	writel(upper_32_bits(KTEST_BUG_IOVA), regs + KTEST_BUG_TDBAH);
	pci_iounmap(pdev, regs);
	pci_info(pdev, "ktest_bug_dmar_fault: Tx ring moved to unmapped IOVA %#llx\n",
		 KTEST_BUG_IOVA);
	pci_dev_put(pdev);
	return 0;
}

static void __exit ktest_bug_dmar_fault_exit(void)
{
}

module_init(ktest_bug_dmar_fault_init);
module_exit(ktest_bug_dmar_fault_exit);
MODULE_DESCRIPTION("ktest: NIC DMA to an unmapped IOVA");
MODULE_LICENSE("GPL");
