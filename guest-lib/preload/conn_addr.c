/* SPDX-License-Identifier: MIT */
/*
 * Socket shim connections, addresses: sockaddr parsing (IPv4-mapped IPv6
 * folded into IPv4), printable addresses, the local and peer names of a
 * socket, and the channel name of a connection. See conn.h.
 */
#include "conn.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ------------------------------------------------------------ addresses */

/* Fills family/addr(16)/port(network order) from a sockaddr, folding
 * IPv4-mapped IPv6 into IPv4. Returns 0 or -EAFNOSUPPORT. */
int shim_sa_parse(const struct sockaddr *sa, socklen_t len, int *fam, uint8_t addr[16],
		  uint16_t *port)
{
	memset(addr, 0, 16);
	if (sa->sa_family == AF_INET && len >= sizeof(struct sockaddr_in)) {
		const struct sockaddr_in *s = (const void *)sa;

		*fam = AF_INET;
		memcpy(addr, &s->sin_addr, 4);
		*port = s->sin_port;
		return 0;
	}
	if (sa->sa_family == AF_INET6 && len >= sizeof(struct sockaddr_in6)) {
		const struct sockaddr_in6 *s = (const void *)sa;

		*port = s->sin6_port;
		if (IN6_IS_ADDR_V4MAPPED(&s->sin6_addr)) {
			*fam = AF_INET;
			memcpy(addr, &s->sin6_addr.s6_addr[12], 4);
		} else {
			*fam = AF_INET6;
			memcpy(addr, &s->sin6_addr, 16);
		}
		return 0;
	}
	return -EAFNOSUPPORT;
}

void shim_addr_str(int fam, const uint8_t *a, uint16_t port, char *buf, size_t len)
{
	char ip[INET6_ADDRSTRLEN];

	inet_ntop(fam, a, ip, sizeof(ip));
	snprintf(buf, len, fam == AF_INET ? "%s:%u" : "[%s]:%u", ip, ntohs(port));
}

int shim_local_name(int fd, int *fam, uint8_t a[16], uint16_t *port)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);

	if (getsockname(fd, (struct sockaddr *)&ss, &len) < 0)
		return -errno;
	return shim_sa_parse((struct sockaddr *)&ss, len, fam, a, port);
}

int shim_peer_name(int fd, int *fam, uint8_t a[16], uint16_t *port)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);

	if (getpeername(fd, (struct sockaddr *)&ss, &len) < 0)
		return -errno;
	return shim_sa_parse((struct sockaddr *)&ss, len, fam, a, port);
}

/* The channel name of a connection: the client's view, "src>dst". */
void shim_conn_name(char *out, int fam, const uint8_t *caddr, uint16_t cport, const uint8_t *saddr,
		    uint16_t sport)
{
	if (fam == AF_INET) {
		char a[INET_ADDRSTRLEN], b[INET_ADDRSTRLEN];

		inet_ntop(AF_INET, caddr, a, sizeof(a));
		inet_ntop(AF_INET, saddr, b, sizeof(b));
		snprintf(out, IVL_NAME_MAX, "tcp:%s:%u>%s:%u", a, ntohs(cport), b, ntohs(sport));
	} else {
		uint64_t h = 0xcbf29ce484222325ULL;

		for (int i = 0; i < 16; i++)
			h = (h ^ caddr[i]) * 0x100000001b3ULL;
		for (int i = 0; i < 16; i++)
			h = (h ^ saddr[i]) * 0x100000001b3ULL;
		snprintf(out, IVL_NAME_MAX, "tcp6:%016llx:%u>%u", (unsigned long long)h,
			 ntohs(cport), ntohs(sport));
	}
}
