/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Register and descriptor layout of the Intel 82574L (8086:10d3), as far as
 * this driver uses it.  Offsets are in bytes from the start of BAR0.
 */
#ifndef _KTNIC_REGS_H_
#define _KTNIC_REGS_H_

#include <linux/bits.h>
#include <linux/types.h>

/* General control and status */
#define KTNIC_CTRL		0x00000
#define  KTNIC_CTRL_ASDE	BIT(5)	/* auto speed detection */
#define  KTNIC_CTRL_SLU		BIT(6)	/* set link up */
#define  KTNIC_CTRL_RST		BIT(26)	/* software reset, self clearing */
#define KTNIC_STATUS		0x00008
#define  KTNIC_STATUS_FD	BIT(0)
#define  KTNIC_STATUS_LU	BIT(1)
#define  KTNIC_STATUS_SPEED	GENMASK(7, 6)
#define  KTNIC_STATUS_SPEED_100	0x1
#define  KTNIC_STATUS_SPEED_1000 0x2
#define KTNIC_CTRL_EXT		0x00018
#define  KTNIC_CTRL_EXT_EIAME	BIT(24)
#define  KTNIC_CTRL_EXT_IAME	BIT(27)
#define  KTNIC_CTRL_EXT_PBA_CLR	BIT(31)

/* Interrupts */
#define KTNIC_ICR		0x000c0	/* cause, W1C; read clears unless MSI-X */
#define KTNIC_ITR		0x000c4	/* throttle for MSI/INTx, 256 ns units */
#define KTNIC_ICS		0x000c8
#define KTNIC_IMS		0x000d0	/* mask set */
#define KTNIC_IMC		0x000d8	/* mask clear */
#define KTNIC_IAM		0x000e0
#define KTNIC_EIAC		0x000dc	/* causes auto-cleared on MSI-X send */
#define KTNIC_IVAR		0x000e4	/* cause to MSI-X vector routing */
#define KTNIC_EITR(v)		(0x000e8 + 4 * (v))	/* per vector, 256 ns */

#define  KTNIC_INT_TXDW		BIT(0)	/* Tx write-back (non MSI-X) */
#define  KTNIC_INT_LSC		BIT(2)	/* link status change */
#define  KTNIC_INT_RXDMT0	BIT(4)
#define  KTNIC_INT_RXO		BIT(6)	/* Rx overrun: no free buffer */
#define  KTNIC_INT_RXT0		BIT(7)	/* Rx write-back (non MSI-X) */
#define  KTNIC_INT_RXQ(q)	BIT(20 + (q))
#define  KTNIC_INT_TXQ(q)	BIT(22 + (q))
#define  KTNIC_INT_OTHER	BIT(24)
#define  KTNIC_INT_ASSERTED	BIT(31)
#define  KTNIC_INT_ALL		0xffffffffU

/* IVAR: 4 bit fields (vector in bits 2:0, bit 3 valid) */
#define  KTNIC_IVAR_VALID	0x8
#define  KTNIC_IVAR_RXQ_SHIFT(q) (4 * (q))
#define  KTNIC_IVAR_TXQ_SHIFT(q) (8 + 4 * (q))
#define  KTNIC_IVAR_OTHER_SHIFT	16
#define  KTNIC_IVAR_TX_EVERY_WB	BIT(31)

/* Receive */
#define KTNIC_RCTL		0x00100
#define  KTNIC_RCTL_EN		BIT(1)
#define  KTNIC_RCTL_UPE		BIT(3)	/* unicast promiscuous */
#define  KTNIC_RCTL_MPE		BIT(4)	/* multicast promiscuous */
#define  KTNIC_RCTL_LPE		BIT(5)	/* long packets */
#define  KTNIC_RCTL_BAM		BIT(15)	/* accept broadcast */
#define  KTNIC_RCTL_SZ_2048	(0x0 << 16)	/* without BSEX */
#define  KTNIC_RCTL_SZ_4096	(0x3 << 16)	/* with BSEX */
#define  KTNIC_RCTL_BSEX	BIT(25)
#define  KTNIC_RCTL_SECRC	BIT(26)	/* strip CRC */
#define KTNIC_RDBAL(q)		(0x02800 + 0x100 * (q))
#define KTNIC_RDBAH(q)		(0x02804 + 0x100 * (q))
#define KTNIC_RDLEN(q)		(0x02808 + 0x100 * (q))
#define KTNIC_RDH(q)		(0x02810 + 0x100 * (q))
#define KTNIC_RDT(q)		(0x02818 + 0x100 * (q))
#define KTNIC_RXCSUM		0x05000
#define  KTNIC_RXCSUM_IPOFL	BIT(8)
#define  KTNIC_RXCSUM_TUOFL	BIT(9)
#define  KTNIC_RXCSUM_PCSD	BIT(13)	/* RSS hash instead of packet csum */
#define KTNIC_RFCTL		0x05008
#define  KTNIC_RFCTL_EXTEN	BIT(15)	/* extended Rx descriptors */
#define KTNIC_MTA(i)		(0x05200 + 4 * (i))
#define KTNIC_MTA_NUM		128
#define KTNIC_RAL(i)		(0x05400 + 8 * (i))
#define KTNIC_RAH(i)		(0x05404 + 8 * (i))
#define  KTNIC_RAH_AV		BIT(31)
#define KTNIC_MRQC		0x05818
#define  KTNIC_MRQC_RSS_2Q	0x1
#define  KTNIC_MRQC_IPV4_TCP	BIT(16)
#define  KTNIC_MRQC_IPV4	BIT(17)
#define  KTNIC_MRQC_IPV6_TCP_EX	BIT(18)
#define  KTNIC_MRQC_IPV6	BIT(20)
#define  KTNIC_MRQC_IPV6_TCP	BIT(21)
#define KTNIC_RETA(i)		(0x05c00 + 4 * (i))
#define KTNIC_RETA_REGS		32	/* 128 one-byte entries, bit 7 = queue */
#define KTNIC_RETA_ENTRIES	(4 * KTNIC_RETA_REGS)
#define  KTNIC_RETA_Q1		BIT(7)
#define KTNIC_RSSRK(i)		(0x05c80 + 4 * (i))
#define KTNIC_RSSRK_REGS	10

/* Transmit */
#define KTNIC_TCTL		0x00400
#define  KTNIC_TCTL_EN		BIT(1)
#define  KTNIC_TCTL_PSP		BIT(3)	/* pad short packets */
#define  KTNIC_TCTL_CT_SHIFT	4
#define  KTNIC_TCTL_COLD_SHIFT	12
#define  KTNIC_TCTL_RTLC	BIT(24)
#define KTNIC_TIPG		0x00410
#define  KTNIC_TIPG_DEFAULT	(8 | (8 << 10) | (6 << 20))
#define KTNIC_TDBAL(q)		(0x03800 + 0x100 * (q))
#define KTNIC_TDBAH(q)		(0x03804 + 0x100 * (q))
#define KTNIC_TDLEN(q)		(0x03808 + 0x100 * (q))
#define KTNIC_TDH(q)		(0x03810 + 0x100 * (q))
#define KTNIC_TDT(q)		(0x03818 + 0x100 * (q))
#define KTNIC_TARC(q)		(0x03840 + 0x100 * (q))
#define  KTNIC_TARC_ENABLE	BIT(10)

/* Statistics, clear on read */
#define KTNIC_MPC		0x04010	/* missed packets */
#define KTNIC_RNBC		0x040a0	/* no Rx buffer available */

/* A register read of all ones means the function is gone. */
#define KTNIC_REG_GONE		0xffffffffU

/* Extended Rx descriptor, 16 bytes, both views of the same memory. */
union ktnic_rx_desc {
	struct {
		__le64 addr;		/* buffer DMA address */
		__le64 zero;		/* cleared: also clears status */
	} read;
	struct {
		__le32 mrq;		/* RSS type in bits 3:0 */
		__le32 rss;		/* RSS hash (RXCSUM.PCSD set) */
		__le32 staterr;		/* status 19:0, errors 31:20 */
		__le16 length;
		__le16 vlan;
	} wb;
};

#define KTNIC_RXD_DD		BIT(0)
#define KTNIC_RXD_EOP		BIT(1)
#define KTNIC_RXD_UDPCS		BIT(4)
#define KTNIC_RXD_TCPCS		BIT(5)
#define KTNIC_RXD_IPCS		BIT(6)
#define KTNIC_RXD_ERR_FRAME	(BIT(24) | BIT(25) | BIT(26) | BIT(28) | BIT(31))
#define KTNIC_RXD_ERR_TCPE	BIT(29)
#define KTNIC_RXD_ERR_IPE	BIT(30)
#define KTNIC_RXD_RSS_TYPE	GENMASK(3, 0)

/* Tx data (legacy/extended) and context descriptors, 16 bytes. */
struct ktnic_tx_desc {
	__le64 addr;
	__le32 cmd;			/* length 15:0, DTYP, command 31:24 */
	__le32 status;			/* status 7:0, POPTS 15:8 */
};

struct ktnic_tx_ctx_desc {
	u8 ipcss;
	u8 ipcso;
	__le16 ipcse;
	u8 tucss;			/* start of the L4 checksummed area */
	u8 tucso;			/* where the L4 checksum goes */
	__le16 tucse;			/* 0: to the end of the packet */
	__le32 cmd;
	__le32 seg;
};

#define KTNIC_TXD_LEN_MASK	GENMASK(15, 0)
#define KTNIC_TXD_DTYP_D	BIT(20)	/* data (with DEXT); 0 = context */
#define KTNIC_TXD_CMD_EOP	BIT(24)
#define KTNIC_TXD_CMD_IFCS	BIT(25)
#define KTNIC_TXD_CMD_TCP	BIT(24)	/* context descriptor: L4 is TCP */
#define KTNIC_TXD_CMD_IP	BIT(25)	/* context descriptor: L3 is IPv4 */
#define KTNIC_TXD_CMD_RS	BIT(27)
#define KTNIC_TXD_CMD_DEXT	BIT(29)
#define KTNIC_TXD_STAT_DD	BIT(0)
#define KTNIC_TXD_CMD_TSE	BIT(26)	/* TCP segmentation: context and data */
#define KTNIC_TXD_POPTS_IXSM	BIT(8)	/* insert the IPv4 header checksum */
#define KTNIC_TXD_POPTS_TXSM	BIT(9)	/* insert the L4 checksum */
/* context descriptor for TSO: cmd 19:0 payload length, seg MSS and header */
#define KTNIC_TXD_PAYLEN_MASK	GENMASK(19, 0)
#define KTNIC_TXD_SEG_MSS	GENMASK(31, 16)
#define KTNIC_TXD_SEG_HDRLEN	GENMASK(15, 8)

#endif /* _KTNIC_REGS_H_ */
