/* SPDX-License-Identifier: MIT */
/* ivlinkd's server: logging, size parsing and reference-counted fds. */
#define _GNU_SOURCE
#include "internal.h"

void ivl__srv_log(const struct ivl_server *s, enum ivl_log_level lvl, const char *fmt, ...)
{
	char buf[512];
	va_list ap;

	if (!s->cfg.log)
		return;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	s->cfg.log(s->cfg.log_ctx, lvl, buf);
}

char *ivl__srv_dup_or_null(const char *str, int *err)
{
	char *d;

	if (!str)
		return NULL;
	d = strdup(str);
	if (!d)
		*err = -ENOMEM;
	return d;
}

int ivl_parse_size(const char *str, uint64_t *out)
{
	unsigned long long v;
	uint64_t mult = 1;
	char *end;

	/* Decimal only, from the first character: base 0 would read "010M"
	 * as 8M, and strtoull() alone takes blanks and a sign ("-1" is
	 * ULLONG_MAX). */
	if (!str || *str < '0' || *str > '9')
		return -EINVAL;
	errno = 0;
	v = strtoull(str, &end, 10);
	if (errno || end == str)
		return errno == ERANGE ? -ERANGE : -EINVAL;
	switch (*end) {
	case '\0':
		break;
	case 'k':
	case 'K':
		mult = 1ull << 10;
		end++;
		break;
	case 'm':
	case 'M':
		mult = 1ull << 20;
		end++;
		break;
	case 'g':
	case 'G':
		mult = 1ull << 30;
		end++;
		break;
	case 't':
	case 'T':
		mult = 1ull << 40;
		end++;
		break;
	default:
		return -EINVAL;
	}
	/* Accept "64M", "64MB" and "64MiB" alike; all are binary units, as in
	 * QEMU's ivshmem-server ("1K means 1024"). */
	if (mult > 1 && (strcmp(end, "iB") == 0 || strcmp(end, "B") == 0))
		end += strlen(end);
	if (*end)
		return -EINVAL;
	if (v > UINT64_MAX / mult)
		return -ERANGE;
	*out = v * mult;
	return 0;
}

void ivl__srv_efd_unref(struct efd_ref *r)
{
	if (r && --r->refs == 0) {
		close(r->fd);
		free(r);
	}
}

struct efd_ref *ivl__srv_efd_new(void)
{
	struct efd_ref *r = malloc(sizeof(*r));

	if (!r)
		return NULL;
	r->fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (r->fd < 0) {
		free(r);
		return NULL;
	}
	r->refs = 1;
	return r;
}
