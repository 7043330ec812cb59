/* SPDX-License-Identifier: MIT */
/*
 * ivlink-udp-switch: a learning Ethernet switch between QEMU UDP netdevs on
 * 127.0.0.1, for guests that libvirt starts in the host's network namespace
 * (ivlink-libvirt with three or more guests).
 *
 * QEMU's `-netdev socket,udp=127.0.0.1:HUB,localaddr=127.0.0.1:OWN` (libvirt's
 * <interface type='udp'>) sends every frame of the guest's NIC as one
 * datagram to HUB and receives frames on OWN from anyone. libvirt has no
 * guest-only network besides that point-to-point link and multicast, which
 * this machine must not use; a bridge would be the host's. So every guest's
 * link points at this one socket, which forwards each frame to the port
 * that last sent from its destination MAC, or to every other guest port when
 * the destination is unknown, broadcast or multicast, as a switch does.
 *
 * Nothing reaches the host's network: the socket is bound to a loopback
 * address, datagrams are accepted only from the guest ports given on the
 * command line (at that address) and are sent only to them.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define PORTS_MAX 64u
#define MACS_MAX  1024u
#define FRAME_MAX 65536u
#define ETH_HLEN  14u

struct port {
	uint16_t port; /* host order */
	uint64_t rx, tx, rx_bytes;
};

struct mac_entry {
	uint8_t mac[6];
	uint8_t used;
	uint8_t port;  /* index into ports[] */
	uint64_t seen; /* frame counter when last learned: the oldest goes first */
};

static struct port ports[PORTS_MAX];
static unsigned n_ports;
static struct mac_entry macs[MACS_MAX];
static uint64_t frames, dropped_foreign, dropped_runt, dropped_bad_src, send_errors;
static volatile sig_atomic_t stop_sig, stats_sig;

static void usage(FILE *f)
{
	fprintf(f,
		"NAME\n"
		"    ivlink-udp-switch - a learning Ethernet switch for QEMU UDP links on\n"
		"    the loopback address\n"
		"\n"
		"SYNOPSIS\n"
		"    ivlink-udp-switch [OPTIONS] HUB-PORT GUEST-PORT GUEST-PORT...\n"
		"\n"
		"DESCRIPTION\n"
		"    Binds a UDP socket to ADDR:HUB-PORT and switches Ethernet frames\n"
		"    between the guests whose QEMU UDP netdevs send to it, each from its\n"
		"    own GUEST-PORT (libvirt: <interface type='udp'> with <source\n"
		"    address='ADDR' port='HUB-PORT'> and <local address='ADDR'\n"
		"    port='GUEST-PORT'>). A frame goes to the port its destination MAC\n"
		"    was last seen on, or to every other guest port when the\n"
		"    destination is unknown, broadcast or multicast. Datagrams from any\n"
		"    other address or port are dropped and counted, as are frames\n"
		"    shorter than an Ethernet header and frames with a multicast source\n"
		"    MAC. Nothing is sent anywhere but the guest ports.\n"
		"\n"
		"    Used by ivlink-libvirt for three or more guests, which libvirt's QEMU\n"
		"    runs in the host's network namespace: libvirt has no guest-only\n"
		"    network there except point-to-point UDP links and multicast.\n"
		"\n"
		"OPTIONS\n"
		"    -a, --address ADDR\n"
		"        IPv4 loopback address (127.0.0.0/8) of the switch and of the\n"
		"        guests' sockets. Default 127.0.0.1.\n"
		"    -P, --pidfile FILE\n"
		"        Write the process id to FILE once the socket is bound (a\n"
		"        launcher waits for it), and remove it at exit.\n"
		"    -h, --help\n"
		"        Print this page and exit.\n"
		"    --version\n"
		"        Print the version and exit.\n"
		"\n"
		"    HUB-PORT and each GUEST-PORT are UDP ports 1-65535, all different;\n"
		"    2 to %u guest ports.\n"
		"\n"
		"SIGNALS\n"
		"    SIGUSR1 prints the counters to standard error; SIGTERM and SIGINT\n"
		"    print them and exit 0.\n"
		"\n"
		"OUTPUT\n"
		"    One line per guest port: frames and bytes received, frames sent;\n"
		"    then frames switched, dropped (foreign sender, runt, bad source MAC)\n"
		"    and failed sends.\n"
		"\n"
		"EXIT STATUS\n"
		"    0 stopped by a signal, 1 error (socket, bind, pid file), 2 invalid\n"
		"    command line.\n"
		"\n"
		"EXAMPLE\n"
		"    ivlink-udp-switch -P /run/sw.pid 40000 40001 40002 40003\n",
		PORTS_MAX);
}

static void on_signal(int sig)
{
	if (sig == SIGUSR1)
		stats_sig = 1;
	else
		stop_sig = sig;
}

static void print_stats(void)
{
	for (unsigned i = 0; i < n_ports; i++)
		fprintf(stderr,
			"ivlink-udp-switch: port %u: rx %" PRIu64 " frames %" PRIu64
			" bytes, tx %" PRIu64 " frames\n",
			ports[i].port, ports[i].rx, ports[i].rx_bytes, ports[i].tx);
	fprintf(stderr,
		"ivlink-udp-switch: %" PRIu64 " frames switched; dropped: %" PRIu64
		" foreign sender, %" PRIu64 " runt, %" PRIu64 " bad source MAC; %" PRIu64
		" failed sends\n",
		frames, dropped_foreign, dropped_runt, dropped_bad_src, send_errors);
}

/* A port number 1-65535, or -1. */
static int parse_port(const char *s)
{
	char *end;
	errno = 0;
	unsigned long v = strtoul(s, &end, 10);
	if (errno || end == s || *end || s[0] == '-' || s[0] == '+' || v < 1 || v > 65535)
		return -1;
	return (int)v;
}

static int port_index(uint16_t port)
{
	for (unsigned i = 0; i < n_ports; i++)
		if (ports[i].port == port)
			return (int)i;
	return -1;
}

static struct mac_entry *mac_find(const uint8_t *mac)
{
	for (unsigned i = 0; i < MACS_MAX; i++)
		if (macs[i].used && memcmp(macs[i].mac, mac, 6) == 0)
			return &macs[i];
	return NULL;
}

/* Learns (or moves) mac on port pi; a full table forgets its oldest entry. */
static void mac_learn(const uint8_t *mac, unsigned pi)
{
	struct mac_entry *e = mac_find(mac), *oldest = &macs[0];
	if (!e) {
		for (unsigned i = 0; i < MACS_MAX && !e; i++) {
			if (!macs[i].used)
				e = &macs[i];
			else if (macs[i].seen < oldest->seen)
				oldest = &macs[i];
		}
		if (!e)
			e = oldest;
		memcpy(e->mac, mac, 6);
		e->used = 1;
	}
	e->port = (uint8_t)pi;
	e->seen = frames;
}

static void send_to(int fd, struct in_addr addr, unsigned pi, const uint8_t *buf, size_t len)
{
	struct sockaddr_in to = {
	    .sin_family = AF_INET, .sin_port = htons(ports[pi].port), .sin_addr = addr};
	if (sendto(fd, buf, len, 0, (struct sockaddr *)&to, sizeof(to)) == (ssize_t)len)
		ports[pi].tx++;
	else
		send_errors++; /* the guest's QEMU is not up yet or went away */
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"address", required_argument, NULL, 'a'},
	    {"pidfile", required_argument, NULL, 'P'},
	    {"help", no_argument, NULL, 'h'},
	    {"version", no_argument, NULL, 'V'},
	    {NULL, 0, NULL, 0},
	};
	const char *addr_s = "127.0.0.1", *pidfile = NULL;
	int c;
	while ((c = getopt_long(argc, argv, "a:P:h", opts, NULL)) != -1) {
		switch (c) {
		case 'a':
			addr_s = optarg;
			break;
		case 'P':
			pidfile = optarg;
			break;
		case 'h':
			usage(stdout);
			return 0;
		case 'V':
			printf("ivlink-udp-switch %s\n", IVL_VERSION);
			return 0;
		default:
			fprintf(stderr, "Try 'ivlink-udp-switch --help' for more information.\n");
			return 2;
		}
	}
	struct in_addr addr;
	if (inet_pton(AF_INET, addr_s, &addr) != 1 || (ntohl(addr.s_addr) >> 24) != 127) {
		fprintf(stderr, "ivlink-udp-switch: --address %s: not an IPv4 loopback address\n",
			addr_s);
		return 2;
	}
	int nargs = argc - optind;
	if (nargs < 3 || (unsigned)(nargs - 1) > PORTS_MAX) {
		fprintf(stderr,
			"ivlink-udp-switch: want HUB-PORT and 2 to %u GUEST-PORTs, got %d "
			"port(s); see --help\n",
			PORTS_MAX, nargs);
		return 2;
	}
	int hub = parse_port(argv[optind]);
	if (hub < 0) {
		fprintf(stderr, "ivlink-udp-switch: HUB-PORT '%s': not a port 1-65535\n",
			argv[optind]);
		return 2;
	}
	for (int i = optind + 1; i < argc; i++) {
		int p = parse_port(argv[i]);
		if (p < 0) {
			fprintf(stderr, "ivlink-udp-switch: GUEST-PORT '%s': not a port 1-65535\n",
				argv[i]);
			return 2;
		}
		if (p == hub || port_index((uint16_t)p) >= 0) {
			fprintf(stderr, "ivlink-udp-switch: port %d given twice\n", p);
			return 2;
		}
		ports[n_ports++].port = (uint16_t)p;
	}

	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		perror("ivlink-udp-switch: socket");
		return 1;
	}
	struct sockaddr_in me = {
	    .sin_family = AF_INET, .sin_port = htons((uint16_t)hub), .sin_addr = addr};
	if (bind(fd, (struct sockaddr *)&me, sizeof(me)) != 0) {
		fprintf(stderr, "ivlink-udp-switch: bind %s:%d: %s\n", addr_s, hub,
			strerror(errno));
		return 1;
	}
	/* No SA_RESTART: a signal ends the blocking recvfrom with EINTR. */
	struct sigaction sa = {.sa_handler = on_signal};
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGUSR1, &sa, NULL);
	if (pidfile) {
		FILE *pf = fopen(pidfile, "w");
		if (!pf || fprintf(pf, "%ld\n", (long)getpid()) < 0 || fclose(pf) != 0) {
			fprintf(stderr, "ivlink-udp-switch: pid file %s: %s\n", pidfile,
				strerror(errno));
			return 1;
		}
	}
	fprintf(stderr, "ivlink-udp-switch: %s:%d switching %u guest ports\n", addr_s, hub,
		n_ports);

	static uint8_t buf[FRAME_MAX];
	while (!stop_sig) {
		if (stats_sig) {
			stats_sig = 0;
			print_stats();
		}
		struct sockaddr_in from;
		socklen_t fl = sizeof(from);
		ssize_t n = recvfrom(fd, buf, sizeof(buf), 0, (struct sockaddr *)&from, &fl);
		if (n < 0) {
			if (errno == EINTR || errno == ECONNREFUSED)
				continue;
			perror("ivlink-udp-switch: recvfrom");
			break;
		}
		int pi = (fl == sizeof(from) && from.sin_family == AF_INET &&
			  from.sin_addr.s_addr == addr.s_addr)
			     ? port_index(ntohs(from.sin_port))
			     : -1;
		if (pi < 0) {
			dropped_foreign++;
			continue;
		}
		ports[pi].rx++;
		ports[pi].rx_bytes += (uint64_t)n;
		if ((size_t)n < ETH_HLEN) {
			dropped_runt++;
			continue;
		}
		const uint8_t *dst = buf, *src = buf + 6;
		if (src[0] & 1) {
			dropped_bad_src++;
			continue;
		}
		frames++;
		mac_learn(src, (unsigned)pi);
		struct mac_entry *e = (dst[0] & 1) ? NULL : mac_find(dst);
		if (e) {
			if (e->port != (unsigned)pi)
				send_to(fd, addr, e->port, buf, (size_t)n);
			continue;
		}
		for (unsigned i = 0; i < n_ports; i++)
			if (i != (unsigned)pi)
				send_to(fd, addr, i, buf, (size_t)n);
	}
	print_stats();
	if (pidfile)
		unlink(pidfile);
	return stop_sig ? 0 : 1;
}
