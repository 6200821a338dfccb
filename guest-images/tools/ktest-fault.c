// SPDX-License-Identifier: GPL-2.0
/*
 * ktest-fault: run one driver operation with the kernel's per-task fault
 * injection armed, so that exactly the N-th injectable call made by that
 * operation fails (/proc/thread-self/fail-nth).
 *
 *   ktest-fault N write PATH STRING      write(2) STRING to PATH (sysfs)
 *   ktest-fault N up IFNAME              SIOCSIFFLAGS |= IFF_UP
 *   ktest-fault N mtu IFNAME MTU         SIOCSIFMTU
 *   ktest-fault N rings IFNAME RX TX     ETHTOOL_SRINGPARAM
 *   ktest-fault N channels IFNAME RX TX COMBINED   ETHTOOL_SCHANNELS
 *
 * Everything the operation needs (the file, the socket, the current
 * settings) is set up first; fail-nth is armed right before the one system
 * call that performs it.  Prints one line:
 *   "result=0" or "result=-ERRNO (message)", then " injected=1" if the N-th
 *   call happened (and failed), " injected=0" if the operation made fewer
 *   than N injectable calls: nothing failed, the sweep is complete.
 * N = 0 runs the operation without injection.  Exit status 0 whatever the
 * operation's result; 2 on bad usage or a failed set-up.
 */
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>
#include <linux/ethtool.h>
#include <linux/sockios.h>

static int nth_fd = -1;

static void die(const char *what)
{
	fprintf(stderr, "ktest-fault: %s: %s\n", what, strerror(errno));
	exit(2);
}

static void arm(unsigned int n)
{
	char buf[16];
	int len;

	if (!n)
		return;
	len = snprintf(buf, sizeof(buf), "%u", n);
	if (write(nth_fd, buf, len) != len)
		die("writing fail-nth");
}

/* Disarm and tell whether the N-th call happened: the kernel counts the
 * armed value down and leaves 0 once it has injected the failure.
 */
static int disarm(unsigned int n)
{
	char buf[16] = "";
	ssize_t got;

	if (!n)
		return 0;
	got = pread(nth_fd, buf, sizeof(buf) - 1, 0);
	if (got < 0)
		die("reading fail-nth");
	if (atoi(buf) == 0)
		return 1;
	if (write(nth_fd, "0", 1) != 1)
		die("clearing fail-nth");
	return 0;
}

static int ifreq_socket(struct ifreq *ifr, const char *name)
{
	int fd = socket(AF_INET, SOCK_DGRAM, 0);

	if (fd < 0)
		die("socket");
	memset(ifr, 0, sizeof(*ifr));
	if (strlen(name) >= sizeof(ifr->ifr_name)) {
		errno = ENAMETOOLONG;
		die(name);
	}
	strcpy(ifr->ifr_name, name);
	return fd;
}

static void report(unsigned int n, int ret, int err)
{
	int injected = disarm(n);

	if (ret < 0)
		printf("result=-%d (%s) injected=%d\n", err, strerror(err), injected);
	else
		printf("result=0 injected=%d\n", injected);
}

int main(int argc, char **argv)
{
	unsigned int n;
	struct ifreq ifr;
	const char *op;
	int fd, ret;

	if (argc < 4) {
		fprintf(stderr, "usage: ktest-fault N write|up|mtu|rings|channels ...\n");
		return 2;
	}
	n = strtoul(argv[1], NULL, 10);
	op = argv[2];
	nth_fd = open("/proc/thread-self/fail-nth", O_RDWR);
	if (nth_fd < 0)
		die("/proc/thread-self/fail-nth (CONFIG_FAULT_INJECTION)");

	if (!strcmp(op, "write") && argc == 5) {
		size_t len = strlen(argv[4]);

		fd = open(argv[3], O_WRONLY);
		if (fd < 0)
			die(argv[3]);
		arm(n);
		ret = write(fd, argv[4], len);
		report(n, ret < 0 ? -1 : 0, errno);
		return 0;
	}
	if (!strcmp(op, "up") && argc == 4) {
		fd = ifreq_socket(&ifr, argv[3]);
		if (ioctl(fd, SIOCGIFFLAGS, &ifr) < 0)
			die("SIOCGIFFLAGS");
		ifr.ifr_flags |= IFF_UP;
		arm(n);
		ret = ioctl(fd, SIOCSIFFLAGS, &ifr);
		report(n, ret, errno);
		return 0;
	}
	if (!strcmp(op, "mtu") && argc == 5) {
		fd = ifreq_socket(&ifr, argv[3]);
		ifr.ifr_mtu = atoi(argv[4]);
		arm(n);
		ret = ioctl(fd, SIOCSIFMTU, &ifr);
		report(n, ret, errno);
		return 0;
	}
	if (!strcmp(op, "rings") && argc == 6) {
		struct ethtool_ringparam rp = { .cmd = ETHTOOL_GRINGPARAM };

		fd = ifreq_socket(&ifr, argv[3]);
		ifr.ifr_data = (void *)&rp;
		if (ioctl(fd, SIOCETHTOOL, &ifr) < 0)
			die("ETHTOOL_GRINGPARAM");
		rp.cmd = ETHTOOL_SRINGPARAM;
		rp.rx_pending = atoi(argv[4]);
		rp.tx_pending = atoi(argv[5]);
		arm(n);
		ret = ioctl(fd, SIOCETHTOOL, &ifr);
		report(n, ret, errno);
		return 0;
	}
	if (!strcmp(op, "channels") && argc == 7) {
		struct ethtool_channels ch = { .cmd = ETHTOOL_GCHANNELS };

		fd = ifreq_socket(&ifr, argv[3]);
		ifr.ifr_data = (void *)&ch;
		if (ioctl(fd, SIOCETHTOOL, &ifr) < 0)
			die("ETHTOOL_GCHANNELS");
		ch.cmd = ETHTOOL_SCHANNELS;
		ch.rx_count = atoi(argv[4]);
		ch.tx_count = atoi(argv[5]);
		ch.combined_count = atoi(argv[6]);
		arm(n);
		ret = ioctl(fd, SIOCETHTOOL, &ifr);
		report(n, ret, errno);
		return 0;
	}
	fprintf(stderr, "ktest-fault: bad arguments for %s\n", op);
	return 2;
}
