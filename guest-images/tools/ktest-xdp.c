// SPDX-License-Identifier: GPL-2.0
/*
 * ktest-xdp: load one of a few small XDP programs and pin it, so that
 * "ip link set DEV xdpdrv pinned DIR/prog" attaches it; read its counters.
 * The guest has no compiler and no libbpf-based loader of its own: the
 * programs are assembled here as eBPF instructions and loaded with bpf(2).
 *
 *   ktest-xdp load DIR PROG [PORT] [IFINDEX] [frags]
 *       PROG is one of
 *         pass              every frame: XDP_PASS
 *         drop  PORT        UDP (IPv4/IPv6) to PORT: XDP_DROP
 *         tx    PORT        UDP to PORT: swap MACs, addresses and ports
 *                           (checksums stay valid), XDP_TX
 *         redirect PORT IFINDEX
 *                           UDP to PORT: swapped as for tx, then
 *                           bpf_redirect_map() to IFINDEX through a devmap
 *         abort PORT        UDP to PORT: XDP_ABORTED
 *       "frags": load with BPF_F_XDP_HAS_FRAGS (multi-buffer frames).
 *       Pins DIR/prog and DIR/counts (and DIR/devmap), DIR on a bpffs
 *       (/sys/fs/bpf is mounted if it is not).
 *   ktest-xdp counts DIR
 *       prints "seen=N matched=M bytes=B linear=L": frames the program saw,
 *       frames it acted on (all of them for pass), their whole length
 *       (bpf_xdp_get_buff_len(), every fragment included) and the part of
 *       it the program could read directly (data_end - data).  For a
 *       program without "frags" the two lengths must be equal: such a
 *       program must never get a frame it cannot see all of.
 *
 * Exit status 0 on success, 1 when the kernel refuses (the verifier log
 * goes to stderr), 2 on bad usage.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <linux/bpf.h>

#define BPF_FS_MAGIC	0xcafe4a11
#define MAX_INSNS	256
#define N_COUNTS	4	/* seen, matched, bytes, linear bytes */

static struct bpf_insn prog[MAX_INSNS];
static int n_insns;

/* ---- a tiny assembler: forward jumps to labels, patched at the end ---- */

enum label { L_PASS, L_IPV4, L_IPV6, L_MATCH, L_OUT, N_LABELS };

static int label_at[N_LABELS];
static struct { int insn; enum label to; } fixups[64];
static int n_fixups;

static void emit(struct bpf_insn insn)
{
	if (n_insns == MAX_INSNS) {
		fprintf(stderr, "ktest-xdp: program too long\n");
		exit(2);
	}
	prog[n_insns++] = insn;
}

static struct bpf_insn insn(uint8_t code, uint8_t dst, uint8_t src,
			    int16_t off, int32_t imm)
{
	struct bpf_insn i = {
		.code = code, .dst_reg = dst, .src_reg = src,
		.off = off, .imm = imm,
	};

	return i;
}

#define MOV_REG(d, s)	emit(insn(BPF_ALU64 | BPF_MOV | BPF_X, d, s, 0, 0))
#define MOV_IMM(d, v)	emit(insn(BPF_ALU64 | BPF_MOV | BPF_K, d, 0, 0, v))
#define ADD_IMM(d, v)	emit(insn(BPF_ALU64 | BPF_ADD | BPF_K, d, 0, 0, v))
#define AND_IMM(d, v)	emit(insn(BPF_ALU64 | BPF_AND | BPF_K, d, 0, 0, v))
#define SUB_REG(d, s)	emit(insn(BPF_ALU64 | BPF_SUB | BPF_X, d, s, 0, 0))
#define LDX(sz, d, s, o)	emit(insn(BPF_LDX | BPF_MEM | (sz), d, s, o, 0))
#define STX(sz, d, s, o)	emit(insn(BPF_STX | BPF_MEM | (sz), d, s, o, 0))
#define ST_IMM(sz, d, o, v)	emit(insn(BPF_ST | BPF_MEM | (sz), d, 0, o, v))
#define ATOMIC_ADD64(d, s, o) \
	emit(insn(BPF_STX | BPF_ATOMIC | BPF_DW, d, s, o, BPF_ADD))
#define CALL(fn)	emit(insn(BPF_JMP | BPF_CALL, 0, 0, 0, fn))
#define EXIT()		emit(insn(BPF_JMP | BPF_EXIT, 0, 0, 0, 0))

static void ld_map_fd(uint8_t dst, int fd)
{
	emit(insn(BPF_LD | BPF_DW | BPF_IMM, dst, BPF_PSEUDO_MAP_FD, 0, fd));
	emit(insn(0, 0, 0, 0, 0));
}

static void jump(uint8_t op, uint8_t dst, uint8_t src, int32_t imm,
		 enum label to)
{
	fixups[n_fixups].insn = n_insns;
	fixups[n_fixups++].to = to;
	emit(insn(BPF_JMP | op | (src ? BPF_X : BPF_K), dst, src, 0, imm));
}

#define JA(to)			jump(BPF_JA, 0, 0, 0, to)
#define JEQ_IMM(d, v, to)	jump(BPF_JEQ, d, 0, v, to)
#define JNE_IMM(d, v, to)	jump(BPF_JNE, d, 0, v, to)
#define JGT_REG(d, s, to)	jump(BPF_JGT, d, s, 0, to)

static void label(enum label l)
{
	label_at[l] = n_insns;
}

static void resolve(void)
{
	int i;

	for (i = 0; i < n_fixups; i++)
		prog[fixups[i].insn].off = label_at[fixups[i].to] -
					   fixups[i].insn - 1;
}

/* ---- bpf(2) ---- */

static long sys_bpf(int cmd, union bpf_attr *attr)
{
	return syscall(__NR_bpf, cmd, attr, sizeof(*attr));
}

static void fail(const char *what)
{
	fprintf(stderr, "ktest-xdp: %s: %s\n", what, strerror(errno));
	exit(1);
}

static int map_create(uint32_t type, uint32_t value_size, uint32_t entries)
{
	union bpf_attr a;
	int fd;

	memset(&a, 0, sizeof(a));
	a.map_type = type;
	a.key_size = 4;
	a.value_size = value_size;
	a.max_entries = entries;
	fd = sys_bpf(BPF_MAP_CREATE, &a);
	if (fd < 0)
		fail("creating a map");
	return fd;
}

static void map_update(int fd, uint32_t key, const void *value)
{
	union bpf_attr a;

	memset(&a, 0, sizeof(a));
	a.map_fd = fd;
	a.key = (uintptr_t)&key;
	a.value = (uintptr_t)value;
	if (sys_bpf(BPF_MAP_UPDATE_ELEM, &a))
		fail("writing the devmap");
}

static void pin(int fd, const char *dir, const char *name)
{
	char path[512];
	union bpf_attr a;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	memset(&a, 0, sizeof(a));
	a.bpf_fd = fd;
	a.pathname = (uintptr_t)path;
	if (sys_bpf(BPF_OBJ_PIN, &a))
		fail(path);
}

static int obj_get(const char *dir, const char *name)
{
	char path[512];
	union bpf_attr a;
	int fd;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	memset(&a, 0, sizeof(a));
	a.pathname = (uintptr_t)path;
	fd = sys_bpf(BPF_OBJ_GET, &a);
	if (fd < 0)
		fail(path);
	return fd;
}

static void ensure_bpffs(const char *dir)
{
	struct statfs st;

	if (statfs("/sys/fs/bpf", &st) == 0 && st.f_type != BPF_FS_MAGIC &&
	    mount("bpf", "/sys/fs/bpf", "bpf", 0, NULL))
		fail("mounting bpffs on /sys/fs/bpf");
	if (mkdir(dir, 0700) && errno != EEXIST)
		fail(dir);
}

/* ---- the programs ---- */

enum action { A_PASS, A_DROP, A_TX, A_REDIRECT, A_ABORT };

/* counts[key] += r_val (r1-r5 clobbered); r6 = ctx is kept */
static void count(int counts_fd, int32_t key, uint8_t val_reg)
{
	ST_IMM(BPF_W, BPF_REG_10, -4, key);
	MOV_REG(BPF_REG_9, val_reg);
	ld_map_fd(BPF_REG_1, counts_fd);
	MOV_REG(BPF_REG_2, BPF_REG_10);
	ADD_IMM(BPF_REG_2, -4);
	CALL(BPF_FUNC_map_lookup_elem);
	emit(insn(BPF_JMP | BPF_JEQ | BPF_K, BPF_REG_0, 0, 1, 0));
	ATOMIC_ADD64(BPF_REG_0, BPF_REG_9, 0);
}

static void count_one(int counts_fd, int32_t key)
{
	MOV_IMM(BPF_REG_8, 1);
	count(counts_fd, key, BPF_REG_8);
}

/* swap n bytes at a and b of the packet in r7 (n a multiple of 2) */
static void swap(int a, int b, int n)
{
	for (; n >= 4; n -= 4, a += 4, b += 4) {
		LDX(BPF_W, BPF_REG_1, BPF_REG_7, a);
		LDX(BPF_W, BPF_REG_2, BPF_REG_7, b);
		STX(BPF_W, BPF_REG_7, BPF_REG_2, a);
		STX(BPF_W, BPF_REG_7, BPF_REG_1, b);
	}
	if (n) {
		LDX(BPF_H, BPF_REG_1, BPF_REG_7, a);
		LDX(BPF_H, BPF_REG_2, BPF_REG_7, b);
		STX(BPF_H, BPF_REG_7, BPF_REG_2, a);
		STX(BPF_H, BPF_REG_7, BPF_REG_1, b);
	}
}

/* r7 = data, r8 = data_end (reloaded: calls clobber r1-r5 only) */
static void load_packet(void)
{
	LDX(BPF_W, BPF_REG_7, BPF_REG_6, offsetof(struct xdp_md, data));
	LDX(BPF_W, BPF_REG_8, BPF_REG_6, offsetof(struct xdp_md, data_end));
}

/* To L_PASS unless the packet holds a UDP header at udp whose protocol
 * byte (at proto) says UDP and whose destination port is port.
 */
static void udp_to(int udp, int proto, uint16_t port)
{
	MOV_REG(BPF_REG_4, BPF_REG_7);
	ADD_IMM(BPF_REG_4, udp + 8);
	JGT_REG(BPF_REG_4, BPF_REG_8, L_PASS);
	LDX(BPF_B, BPF_REG_5, BPF_REG_7, proto);
	JNE_IMM(BPF_REG_5, 17, L_PASS);
	LDX(BPF_H, BPF_REG_5, BPF_REG_7, udp + 2);
	JNE_IMM(BPF_REG_5, htons(port), L_PASS);
}

/* Back to the sender: source and destination MAC, address and port. */
static void swap_all(int src_addr, int addr_len, int udp)
{
	swap(src_addr, src_addr + addr_len, addr_len);
	swap(udp, udp + 2, 2);
	swap(0, 6, 6);
}

/* Falls through when the frame is UDP to port over IPv4 (no options) or
 * IPv6, with MACs, addresses and ports swapped when asked (no checksum
 * changes: the one's complement sums stay the same); jumps to L_PASS
 * otherwise.  Sets r7 = data, r8 = data_end.
 */
static void assemble_match(uint16_t port, int swap_addrs)
{
	const int eth = 14, v4_udp = eth + 20, v6_udp = eth + 40;

	load_packet();
	MOV_REG(BPF_REG_4, BPF_REG_7);
	ADD_IMM(BPF_REG_4, eth);
	JGT_REG(BPF_REG_4, BPF_REG_8, L_PASS);
	LDX(BPF_H, BPF_REG_5, BPF_REG_7, 12);
	JEQ_IMM(BPF_REG_5, htons(0x0800), L_IPV4);
	JEQ_IMM(BPF_REG_5, htons(0x86dd), L_IPV6);
	JA(L_PASS);

	label(L_IPV4);
	udp_to(v4_udp, eth + 9, port);
	LDX(BPF_B, BPF_REG_5, BPF_REG_7, eth);
	JNE_IMM(BPF_REG_5, 0x45, L_PASS);
	if (swap_addrs)
		swap_all(eth + 12, 4, v4_udp);
	JA(L_MATCH);

	label(L_IPV6);
	udp_to(v6_udp, eth + 6, port);
	if (swap_addrs)
		swap_all(eth + 8, 16, v6_udp);
}

static void assemble(enum action act, uint16_t port, int counts_fd,
		     int devmap_fd)
{
	MOV_REG(BPF_REG_6, BPF_REG_1);
	count_one(counts_fd, 0);
	if (act != A_PASS)
		assemble_match(port, act == A_TX || act == A_REDIRECT);

	label(L_MATCH);
	count_one(counts_fd, 1);
	MOV_REG(BPF_REG_1, BPF_REG_6);
	CALL(BPF_FUNC_xdp_get_buff_len);
	count(counts_fd, 2, BPF_REG_0);
	/* pointer minus pointer: a scalar (the loader is root) */
	load_packet();
	MOV_REG(BPF_REG_5, BPF_REG_8);
	SUB_REG(BPF_REG_5, BPF_REG_7);
	count(counts_fd, 3, BPF_REG_5);
	switch (act) {
	case A_PASS:
		MOV_IMM(BPF_REG_0, XDP_PASS);
		break;
	case A_DROP:
		MOV_IMM(BPF_REG_0, XDP_DROP);
		break;
	case A_TX:
		MOV_IMM(BPF_REG_0, XDP_TX);
		break;
	case A_ABORT:
		MOV_IMM(BPF_REG_0, XDP_ABORTED);
		break;
	case A_REDIRECT:
		ld_map_fd(BPF_REG_1, devmap_fd);
		MOV_IMM(BPF_REG_2, 0);
		MOV_IMM(BPF_REG_3, XDP_ABORTED);	/* no entry: aborted */
		CALL(BPF_FUNC_redirect_map);
		break;
	}
	if (act != A_PASS) {
		/* the verifier refuses code that cannot run */
		JA(L_OUT);
		label(L_PASS);
		MOV_IMM(BPF_REG_0, XDP_PASS);
	}
	label(L_OUT);
	EXIT();
	resolve();
}

static int load(const char *dir, enum action act, uint16_t port,
		uint32_t ifindex, int frags)
{
	static char log[65536];
	int counts_fd, devmap_fd = -1, fd;
	union bpf_attr a;

	ensure_bpffs(dir);
	counts_fd = map_create(BPF_MAP_TYPE_ARRAY, 8, N_COUNTS);
	if (act == A_REDIRECT) {
		devmap_fd = map_create(BPF_MAP_TYPE_DEVMAP, 4, 1);
		map_update(devmap_fd, 0, &ifindex);
	}
	assemble(act, port, counts_fd, devmap_fd);

	memset(&a, 0, sizeof(a));
	a.prog_type = BPF_PROG_TYPE_XDP;
	a.insns = (uintptr_t)prog;
	a.insn_cnt = n_insns;
	a.license = (uintptr_t)"GPL";
	a.log_buf = (uintptr_t)log;
	a.log_size = sizeof(log);
	a.log_level = 1;
	a.prog_flags = frags ? BPF_F_XDP_HAS_FRAGS : 0;
	strncpy(a.prog_name, "ktest_xdp", sizeof(a.prog_name) - 1);
	fd = sys_bpf(BPF_PROG_LOAD, &a);
	if (fd < 0) {
		fprintf(stderr, "ktest-xdp: the verifier refused the program: %s\n%s",
			strerror(errno), log);
		return 1;
	}
	pin(fd, dir, "prog");
	pin(counts_fd, dir, "counts");
	if (devmap_fd >= 0)
		pin(devmap_fd, dir, "devmap");
	printf("loaded %d instructions, pinned %s/prog\n", n_insns, dir);
	return 0;
}

static int counts(const char *dir)
{
	uint64_t v[N_COUNTS] = {};
	union bpf_attr a;
	uint32_t key;
	int fd = obj_get(dir, "counts");

	for (key = 0; key < N_COUNTS; key++) {
		memset(&a, 0, sizeof(a));
		a.map_fd = fd;
		a.key = (uintptr_t)&key;
		a.value = (uintptr_t)&v[key];
		if (sys_bpf(BPF_MAP_LOOKUP_ELEM, &a))
			fail("reading the counters");
	}
	printf("seen=%llu matched=%llu bytes=%llu linear=%llu\n",
	       (unsigned long long)v[0], (unsigned long long)v[1],
	       (unsigned long long)v[2], (unsigned long long)v[3]);
	return 0;
}

static const struct { const char *name; enum action act; int args; } progs[] = {
	{ "pass", A_PASS, 0 },
	{ "drop", A_DROP, 1 },
	{ "tx", A_TX, 1 },
	{ "redirect", A_REDIRECT, 2 },
	{ "abort", A_ABORT, 1 },
};

static int usage(void)
{
	fprintf(stderr, "usage: ktest-xdp load DIR pass|drop PORT|tx PORT|redirect PORT IFINDEX|abort PORT [frags]\n"
			"       ktest-xdp counts DIR\n");
	return 2;
}

int main(int argc, char **argv)
{
	unsigned long port = 0, ifindex = 0;
	unsigned int i;
	int frags;

	if (argc == 3 && !strcmp(argv[1], "counts"))
		return counts(argv[2]);
	if (argc < 4 || strcmp(argv[1], "load"))
		return usage();
	for (i = 0; i < sizeof(progs) / sizeof(progs[0]); i++) {
		if (strcmp(argv[3], progs[i].name))
			continue;
		if (argc < 4 + progs[i].args)
			return usage();
		if (progs[i].args >= 1)
			port = strtoul(argv[4], NULL, 0);
		if (progs[i].args >= 2)
			ifindex = strtoul(argv[5], NULL, 0);
		if (progs[i].args && (!port || port > 65535))
			return usage();
		frags = argc > 4 + progs[i].args &&
			!strcmp(argv[4 + progs[i].args], "frags");
		if (argc > 4 + progs[i].args + frags)
			return usage();
		return load(argv[2], progs[i].act, port, ifindex, frags);
	}
	return usage();
}
