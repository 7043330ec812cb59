/* SPDX-License-Identifier: MIT */
/*
 * Socket shim core: the real calls, configuration and rules, the debug log,
 * the RCU fd table, endpoints (lazy attach, fork), exec and exit.
 * See shim.h for the design.
 */
#include "shim.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <dlfcn.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <urcu/urcu-memb.h>

struct shim_real shim_real;
struct shim_config shim_cfg;
uint64_t shim_hidden_ep_tag;

/* Ranges of the IVLINK_* settings; ivlink-run checks the same ones. */
#define SHIM_SPIN_NS_MAX	       1000000000LL
#define SHIM_ACCEPT_TIMEOUT_MS_DEFAULT 1000
#define SHIM_ACCEPT_TIMEOUT_MS_MAX     600000LL
#define SHIM_RING_SIZE_DEFAULT	       (128u * 1024)
#define SHIM_RING_SIZE_MIN	       4096
#define SHIM_RING_SIZE_MAX	       (1 << 28)

#define TAB_L2 1024
#define TAB_L1 4096

static struct shim_obj **fdtab[TAB_L1];
static pthread_key_t thread_key;
static __thread int thread_registered;

static pthread_mutex_t ep_lock = PTHREAD_MUTEX_INITIALIZER;
static struct shim_ep *g_eps; /* all endpoints this process uses */

pthread_mutex_t shim_active_lock = PTHREAD_MUTEX_INITIALIZER;
struct shim_conn *shim_active;

/* Environment preserved across execve (LD_PRELOAD and IVLINK_*). */
static char **g_keep_env;

/* ------------------------------------------------------------ real calls */

void shim_resolve(void)
{
#define RESOLVE(name) shim_real.name = (__typeof__(shim_real.name))dlsym(RTLD_NEXT, #name)
	RESOLVE(socket);
	RESOLVE(bind);
	RESOLVE(listen);
	RESOLVE(connect);
	RESOLVE(accept);
	RESOLVE(accept4);
	RESOLVE(close);
	RESOLVE(shutdown);
	RESOLVE(read);
	RESOLVE(write);
	RESOLVE(readv);
	RESOLVE(writev);
	RESOLVE(send);
	RESOLVE(recv);
	RESOLVE(sendto);
	RESOLVE(recvfrom);
	RESOLVE(sendmsg);
	RESOLVE(recvmsg);
	RESOLVE(sendfile);
	RESOLVE(poll);
	RESOLVE(ppoll);
	RESOLVE(epoll_create);
	RESOLVE(epoll_create1);
	RESOLVE(epoll_ctl);
	RESOLVE(epoll_wait);
	RESOLVE(epoll_pwait);
	RESOLVE(fcntl);
	RESOLVE(ioctl);
	RESOLVE(dup);
	RESOLVE(dup2);
	RESOLVE(dup3);
	RESOLVE(getsockopt);
	RESOLVE(setsockopt);
	RESOLVE(fork);
	RESOLVE(execve);
	RESOLVE(select);
	RESOLVE(pselect);
#undef RESOLVE
}

/* ------------------------------------------------------------ log */

void shim_log(const char *fmt, ...)
{
	char buf[512];
	va_list ap;
	int n;

	n = snprintf(buf, sizeof(buf), "ivlink-shim[%d]: ", (int)getpid());
	va_start(ap, fmt);
	n += vsnprintf(buf + n, sizeof(buf) - (size_t)n - 1, fmt, ap);
	va_end(ap);
	if (n > (int)sizeof(buf) - 2)
		n = (int)sizeof(buf) - 2;
	buf[n++] = '\n';
	/* The real write: fd 2 is never shimmed, but this must not recurse
	 * into the table while the shim initialises. */
	if (REAL(write)(2, buf, (size_t)n) < 0) {
		/* nothing more to do: the log is best effort */
	}
}

static void lib_log(void *ctx, enum ivl_log_level level, const char *msg)
{
	static const char *names[] = {"error", "warn", "info", "debug"};

	shim_log("libivlink %s: %s", names[level & 3], msg);
}

const char *shim_reason_name(uint32_t r)
{
	static const char *const n[] = {
	    "none",	 "no-region", "no-listener", "peer-no-shim", "region-full",
	    "timeout",	 "declined",  "option",	     "rules",	     "peer-gone",
	    "withdrawn", "proto",     "internal",    "peer-stale",   "no-shared-region",
	};

	/* Sockets passed between processes (conn_demote.c). */
	if (r == IVL_FB_DEMOTED)
		return "demoted";
	if (r == IVL_FB_DEMOTE_RESET)
		return "demote-reset";
	return r < sizeof(n) / sizeof(n[0]) ? n[r] : "unknown";
}

/* ------------------------------------------------------------ rules */

/*
 * Set when the rules did not parse (a malformed rule, an unreadable
 * IVLINK_CONF): shim_rules_allow() then refuses every connection, so that
 * a process whose exclusions were not understood accelerates nothing
 * rather than what a partial reading of them would let through.
 */
static int g_rules_invalid;

/* A decimal number in [s, end) (end NULL: to the terminating NUL), digits
 * only: no sign, blanks, base prefix or trailing characters. Returns 0, or
 * -EINVAL (empty or not a number) or -ERANGE (above max). */
static int parse_dec(const char *s, const char *end, uint64_t max, uint64_t *out)
{
	uint64_t v = 0;
	int big = 0;

	if (!end)
		end = s + strlen(s);
	if (s == end)
		return -EINVAL;
	for (; s < end; s++) {
		if (*s < '0' || *s > '9')
			return -EINVAL;
		if (big || v > (UINT64_MAX - (uint64_t)(*s - '0')) / 10)
			big = 1;
		else
			v = v * 10 + (uint64_t)(*s - '0');
	}
	if (big || v > max)
		return -ERANGE;
	*out = v;
	return 0;
}

/* PORT or PORT-PORT, each 0..65535, first <= last; why says what is
 * wrong. */
static int parse_ports(const char *port, struct shim_rule *r, char *why, size_t len)
{
	const char *dash = strchr(port, '-');
	uint64_t lo, hi;

	if (parse_dec(port, dash, 65535, &lo) < 0 ||
	    (dash && parse_dec(dash + 1, NULL, 65535, &hi) < 0)) {
		snprintf(why, len, "port '%s' is not *, N or N-M with N, M in 0..65535", port);
		return -EINVAL;
	}
	if (!dash)
		hi = lo;
	if (lo > hi) {
		snprintf(why, len, "port range '%s' is empty (%u > %u)", port, (unsigned)lo,
			 (unsigned)hi);
		return -EINVAL;
	}
	r->port_lo = (uint16_t)lo;
	r->port_hi = (uint16_t)hi;
	return 0;
}

/*
 * Rules, like libvma.conf's "use os" lines: ACTION ROLE ADDR[/PREFIX][:PORT]
 * separated by ';' or newlines, '#' comments. ACTION: include|exclude
 * (aliases accel|use, os|tcp); ROLE: client|server|any; ADDR: '*', an IPv4
 * address, or an IPv6 address in brackets; PREFIX: decimal, at most 32
 * (IPv4) or 128 (IPv6); PORT: N, N-M (N <= M, both 0..65535) or '*'. The
 * first matching rule wins; no match means include. Anything else is an
 * error (-EINVAL, why set): a rule is never read as something broader
 * than what it says.
 */
static int parse_rule(char *s, struct shim_rule *r, char *why, size_t len)
{
	char *tok[3], *save = NULL, *addr, *port, *slash, *pfx, *t;
	int n = 0;

	for (t = strtok_r(s, " \t\r", &save); t && n < 3; t = strtok_r(NULL, " \t\r", &save))
		tok[n++] = t;
	if (n != 3 || t) {
		snprintf(why, len, "not ACTION ROLE ADDRESS[/PREFIX][:PORT[-PORT]]");
		return -EINVAL;
	}
	memset(r, 0, sizeof(*r));
	if (!strcmp(tok[0], "include") || !strcmp(tok[0], "accel") || !strcmp(tok[0], "use")) {
		r->include = 1;
	} else if (!strcmp(tok[0], "exclude") || !strcmp(tok[0], "os") || !strcmp(tok[0], "tcp")) {
		r->include = 0;
	} else {
		snprintf(why, len, "action '%s' is not include, accel, use, exclude, os or tcp",
			 tok[0]);
		return -EINVAL;
	}
	if (!strcmp(tok[1], "any")) {
		r->role = 0;
	} else if (!strcmp(tok[1], "client")) {
		r->role = 1;
	} else if (!strcmp(tok[1], "server")) {
		r->role = 2;
	} else {
		snprintf(why, len, "role '%s' is not client, server or any", tok[1]);
		return -EINVAL;
	}
	addr = tok[2];
	port = NULL;
	pfx = NULL;
	if (addr[0] == '[') {
		char *rest = strchr(addr, ']');

		if (!rest) {
			snprintf(why, len, "'%s' has no closing ']'", addr);
			return -EINVAL;
		}
		*rest++ = '\0';
		addr++;
		if (*rest == '/') {
			pfx = rest + 1;
			rest = strchr(pfx, ':');
			if (rest)
				*rest++ = '\0';
			port = rest;
		} else if (*rest == ':') {
			port = rest + 1;
		} else if (*rest) {
			snprintf(why, len, "'%s' after ']' is not /PREFIX or :PORT", rest);
			return -EINVAL;
		}
	} else {
		port = strchr(addr, ':');
		if (port && strchr(port + 1, ':')) {
			snprintf(why, len, "an IPv6 address must be in [brackets]: '%s'", addr);
			return -EINVAL;
		}
		if (port)
			*port++ = '\0';
	}
	slash = strchr(addr, '/');
	if (slash) {
		if (pfx) {
			snprintf(why, len, "two prefixes");
			return -EINVAL;
		}
		*slash = '\0';
		pfx = slash + 1;
	}
	r->prefix = -1;
	if (strcmp(addr, "*") != 0) {
		uint64_t p;

		if (inet_pton(AF_INET, addr, r->addr) == 1) {
			r->family = AF_INET;
			r->prefix = 32;
		} else if (inet_pton(AF_INET6, addr, r->addr) == 1) {
			r->family = AF_INET6;
			r->prefix = 128;
		} else {
			snprintf(why, len,
				 "address '%s' is not *, an IPv4 address or an IPv6 address in"
				 " [brackets]",
				 addr);
			return -EINVAL;
		}
		if (pfx) {
			if (parse_dec(pfx, NULL, (uint64_t)r->prefix, &p) < 0) {
				snprintf(why, len, "prefix '/%s' is not a number in 0..%d", pfx,
					 r->prefix);
				return -EINVAL;
			}
			r->prefix = (int)p;
		}
	} else if (pfx) {
		snprintf(why, len, "'*' takes no prefix ('*/%s')", pfx);
		return -EINVAL;
	}
	r->port_lo = 0;
	r->port_hi = 65535;
	if (port && strcmp(port, "*") != 0)
		return parse_ports(port, r, why, len);
	return 0;
}

/* Parses the rules in text (';' or newline separated) and appends them;
 * origin names where they come from in messages. Each invalid rule is
 * reported on stderr (once: this runs in the constructor) and makes the
 * whole process keep its connections on TCP. */
static void parse_rules(const char *text, const char *origin)
{
	char *copy = strdup(text), *save = NULL;

	if (!copy) {
		g_rules_invalid = 1;
		return;
	}
	for (char *line = strtok_r(copy, ";\n", &save); line; line = strtok_r(NULL, ";\n", &save)) {
		struct shim_rule r, *nr;
		char *hash = strchr(line, '#'), shown[160], why[160];
		size_t n;

		if (hash)
			*hash = '\0';
		while (isspace((unsigned char)*line))
			line++;
		n = strlen(line);
		while (n && isspace((unsigned char)line[n - 1]))
			line[--n] = '\0';
		if (!*line)
			continue;
		snprintf(shown, sizeof(shown), "%s", line);
		if (parse_rule(line, &r, why, sizeof(why)) < 0) {
			shim_log("%s: invalid rule '%s': %s; no connection of this process will use"
				 " the rings (fallback reason \"rules\")",
				 origin, shown, why);
			g_rules_invalid = 1;
			continue;
		}
		nr = realloc(shim_cfg.rules, sizeof(*nr) * (size_t)(shim_cfg.n_rules + 1));
		if (!nr) {
			g_rules_invalid = 1;
			break;
		}
		shim_cfg.rules = nr;
		shim_cfg.rules[shim_cfg.n_rules++] = r;
	}
	free(copy);
}

/* The rules file, one rule per line (any length). An unreadable file is
 * reported and, like an invalid rule, keeps everything on TCP: the
 * exclusions it holds must not be silently dropped. */
static void parse_rules_file(const char *path)
{
	char origin[300], *line = NULL;
	size_t cap = 0;
	unsigned no = 0;
	FILE *f = fopen(path, "re");

	if (!f) {
		shim_log("IVLINK_CONF %s: %s; no connection of this process will use the rings"
			 " (fallback reason \"rules\")",
			 path, strerror(errno));
		g_rules_invalid = 1;
		return;
	}
	while (getline(&line, &cap, f) >= 0) {
		snprintf(origin, sizeof(origin), "%s:%u", path, ++no);
		/* A ';' or NUL inside a line is a separator too. */
		parse_rules(line, origin);
	}
	if (ferror(f)) {
		shim_log("IVLINK_CONF %s: read error; no connection of this process will use"
			 " the rings (fallback reason \"rules\")",
			 path);
		g_rules_invalid = 1;
	}
	free(line);
	fclose(f);
}

static int prefix_match(const uint8_t *a, const uint8_t *b, int bits)
{
	int bytes = bits / 8, rem = bits % 8;

	if (memcmp(a, b, (size_t)bytes) != 0)
		return 0;
	if (rem == 0)
		return 1;
	return ((a[bytes] ^ b[bytes]) & (0xff << (8 - rem))) == 0;
}

int shim_rules_allow(int role, int family, const uint8_t *addr, uint16_t port)
{
	if (g_rules_invalid) {
		/* Join the region all the same (as an accelerated connection
		 * would), so that the fallback is counted where ivlinkctl
		 * shows it: a connection excluded by valid rules does not
		 * make a process join, but this one is a configuration error
		 * to make visible. */
		shim_ep_get();
		return 0;
	}
	for (int i = 0; i < shim_cfg.n_rules; i++) {
		const struct shim_rule *r = &shim_cfg.rules[i];

		if (r->role && r->role != role)
			continue;
		if (port < r->port_lo || port > r->port_hi)
			continue;
		if (r->prefix >= 0 &&
		    (r->family != family || !prefix_match(r->addr, addr, r->prefix)))
			continue;
		return r->include;
	}
	return 1;
}

/* ------------------------------------------------------------ config */

static void save_env(void)
{
	extern char **environ;
	int n = 0, k = 0;

	for (char **e = environ; e && *e; e++)
		n++;
	g_keep_env = calloc((size_t)n + 1, sizeof(char *));
	if (!g_keep_env)
		return;
	for (char **e = environ; e && *e; e++)
		if (!strncmp(*e, "LD_PRELOAD=", 11) || !strncmp(*e, "IVLINK_", 7))
			g_keep_env[k++] = strdup(*e);
}

/*
 * A numeric IVLINK_* setting: a decimal integer in lo..hi (a leading '-'
 * only when lo < 0), or dflt when unset or empty. These tune speed and
 * never decide which connections use the rings, so a malformed value is
 * reported (once: this runs in the constructor) and the default used.
 * what names the value in the message; pow2: it must be a power of two.
 */
static int64_t env_num(const char *name, int64_t dflt, int64_t lo, int64_t hi, int pow2,
		       const char *what)
{
	const char *s = getenv(name);
	int neg = s && s[0] == '-' && lo < 0;
	uint64_t v;

	if (!s || !*s)
		return dflt;
	if (parse_dec(s + neg, NULL, neg ? (uint64_t)-lo : (uint64_t)hi, &v) == 0 &&
	    (neg || (int64_t)v >= lo) && (!pow2 || (v & (v - 1)) == 0))
		return neg ? -(int64_t)v : (int64_t)v;
	shim_log("%s='%s' is not %s in %lld..%lld; using the default, %lld", name, s, what,
		 (long long)lo, (long long)hi, (long long)dflt);
	return dflt;
}

/* A boolean IVLINK_* setting: unset, empty or 0 is off, another number is
 * on. Anything else is reported and taken as on: setting the variable at
 * all shows the intent (for IVLINK_DISABLE, on is also the safe side). */
static int env_bool(const char *name)
{
	const char *s = getenv(name);
	uint64_t v;

	if (!s || !*s)
		return 0;
	if (parse_dec(s, NULL, UINT64_MAX, &v) == 0)
		return v != 0;
	shim_log("%s='%s' is not 0 or 1; taken as 1", name, s);
	return 1;
}

static void load_config(void)
{
	const char *s;

	shim_cfg.disabled = env_bool("IVLINK_DISABLE");
	shim_cfg.debug = env_bool("IVLINK_DEBUG");
	/* libivlink's convention: a negative spin budget never spins. */
	shim_cfg.spin_ns = env_num(IVL_ENV_SPIN_NS, IVL_SPIN_NS_DEFAULT, -1, SHIM_SPIN_NS_MAX, 0,
				   "a number of nanoseconds");
	if (shim_cfg.spin_ns < 0)
		shim_cfg.spin_ns = 0;
	shim_cfg.accept_timeout_ns =
	    env_num("IVLINK_ACCEPT_TIMEOUT_MS", SHIM_ACCEPT_TIMEOUT_MS_DEFAULT, 1,
		    SHIM_ACCEPT_TIMEOUT_MS_MAX, 0, "a number of milliseconds") *
	    1000000LL;
	shim_cfg.ring_size =
	    (uint32_t)env_num("IVLINK_RING_SIZE", SHIM_RING_SIZE_DEFAULT, SHIM_RING_SIZE_MIN,
			      SHIM_RING_SIZE_MAX, 1, "a power of two");
	/* A copy: programs rewrite their environment (nginx's workers get
	 * an empty one, and its process title overwrites the old strings),
	 * and a forked worker attaches later, as a peer of its own. */
	s = getenv(IVL_ENV_ENDPOINT);
	shim_cfg.endpoint = s ? strdup(s) : NULL;
	s = getenv("IVLINK_CONF");
	if (s && *s)
		parse_rules_file(s);
	s = getenv("IVLINK_RULES");
	if (s && *s)
		parse_rules(s, "IVLINK_RULES");
}

static void thread_exit(void *arg)
{
	shim_reader_release();
	if (thread_registered) {
		urcu_memb_unregister_thread();
		thread_registered = 0;
	}
}

void shim_thread_init(void)
{
	if (__builtin_expect(thread_registered, 1))
		return;
	urcu_memb_register_thread();
	thread_registered = 1;
	pthread_setspecific(thread_key, (void *)1);
}

__attribute__((constructor)) static void shim_init(void)
{
	shim_resolve();
	shim_fast_init();
	pthread_key_create(&thread_key, thread_exit);
	load_config();
	save_env();
	shim_hidden_ep_tag = (uint64_t)(uintptr_t)&shim_hidden_ep_tag;
	SHIM_DBG("loaded (spin %lld ns, accept timeout %lld ms, ring %u, %d rules%s%s)",
		 (long long)shim_cfg.spin_ns, (long long)(shim_cfg.accept_timeout_ns / 1000000),
		 shim_cfg.ring_size, shim_cfg.n_rules,
		 g_rules_invalid ? ", rules invalid: everything on TCP" : "",
		 shim_cfg.disabled ? ", disabled" : "");
}

/* ------------------------------------------------------------ fd table */

struct shim_obj *shim_get(int fd)
{
	struct shim_obj **chunk, *o;

	if (fd < 0 || fd >= TAB_L1 * TAB_L2)
		return NULL;
	chunk = __atomic_load_n(&fdtab[fd / TAB_L2], __ATOMIC_ACQUIRE);
	if (!chunk)
		return NULL;
	shim_thread_init();
	urcu_memb_read_lock();
	o = rcu_dereference(chunk[fd % TAB_L2]);
	if (o)
		__atomic_fetch_add(&o->refs, 1, __ATOMIC_ACQ_REL);
	urcu_memb_read_unlock();
	return o;
}

void shim_put(struct shim_obj *o)
{
	if (!o || __atomic_sub_fetch(&o->refs, 1, __ATOMIC_ACQ_REL) != 0)
		return;
	if (o->type == SHIM_T_CONN) {
		shim_conn_free((struct shim_conn *)o);
		return;
	}
	/* An epoll set's wake fd lives as long as the object: a thread that
	 * sleeps on the set holds a reference (shim_epoll_wait). */
	if (o->type == SHIM_T_EPOLL && ((struct shim_epoll *)o)->wake_efd >= 0)
		REAL(close)(((struct shim_epoll *)o)->wake_efd);
	free(o);
}

int shim_set(int fd, struct shim_obj *o)
{
	struct shim_obj **chunk, *old;

	if (fd < 0 || fd >= TAB_L1 * TAB_L2)
		return -EBADF;
	chunk = __atomic_load_n(&fdtab[fd / TAB_L2], __ATOMIC_ACQUIRE);
	if (!chunk) {
		struct shim_obj **fresh = calloc(TAB_L2, sizeof(*fresh)), **expect = NULL;

		if (!fresh)
			return -ENOMEM;
		if (__atomic_compare_exchange_n(&fdtab[fd / TAB_L2], &expect, fresh, 0,
						__ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
			chunk = fresh;
		} else {
			free(fresh);
			chunk = expect;
		}
	}
	__atomic_fetch_add(&o->refs, 1, __ATOMIC_ACQ_REL);
	shim_thread_init();
	old = rcu_xchg_pointer(&chunk[fd % TAB_L2], o);
	if (old) {
		/* A stale entry: the fd was closed behind our back (e.g. by
		 * fclose, which calls close internally). */
		urcu_memb_synchronize_rcu();
		shim_fast_sync();
		shim_put(old);
	}
	return 0;
}

struct shim_obj *shim_fast_lookup(int fd)
{
	struct shim_obj **chunk;

	if ((unsigned)fd >= TAB_L1 * TAB_L2)
		return NULL;
	chunk = __atomic_load_n(&fdtab[fd / TAB_L2], __ATOMIC_ACQUIRE);
	/* Acquire: pairs with rcu_xchg_pointer() in shim_set(), as
	 * rcu_dereference() does. */
	return chunk ? __atomic_load_n(&chunk[fd % TAB_L2], __ATOMIC_ACQUIRE) : NULL;
}

struct shim_obj *shim_take(int fd)
{
	struct shim_obj **chunk;

	if (fd < 0 || fd >= TAB_L1 * TAB_L2)
		return NULL;
	chunk = __atomic_load_n(&fdtab[fd / TAB_L2], __ATOMIC_ACQUIRE);
	if (!chunk || !__atomic_load_n(&chunk[fd % TAB_L2], __ATOMIC_RELAXED))
		return NULL;
	shim_thread_init();
	return rcu_xchg_pointer(&chunk[fd % TAB_L2], NULL);
}

/* ------------------------------------------------------------ endpoints */

/*
 * Zeroes this peer's shim counters once per incarnation of the peer: a
 * host process is a peer of its own, but all the processes of a guest
 * share one (through ivlink-guestd), and the second one must not wipe what
 * the first counted. The shim's own reserved0 word records the epoch the
 * counters belong to (nobody else writes struct ivl_peer_shim).
 */
static void init_peer_shim(struct ivl_endpoint *ep)
{
	struct ivl_peer_entry *e = ivl_region_peer(&ep->rg, ep->self);

	if (__atomic_load_n(&e->shim.magic, __ATOMIC_ACQUIRE) == IVL_SHIM_MAGIC &&
	    __atomic_load_n(&e->shim.reserved0, __ATOMIC_RELAXED) == ep->self_epoch)
		return;
	memset(&e->shim, 0, sizeof(e->shim));
	__atomic_store_n(&e->shim.reserved0, ep->self_epoch, __ATOMIC_RELAXED);
	__atomic_store_n(&e->shim.magic, IVL_SHIM_MAGIC, __ATOMIC_RELEASE);
}

/*
 * Appends to g_eps (readers walk it without a lock). Appended, not pushed:
 * epoll sets hide the endpoint fds in list order and add only those past
 * the ones they hold (shim_hidden_eps), so a forked worker's own endpoint,
 * opened after the inherited one, reaches its sets. Caller holds ep_lock.
 */
static void ep_append(struct shim_ep *sep)
{
	struct shim_ep **tail = &g_eps;

	while (*tail)
		tail = &(*tail)->next;
	__atomic_store_n(tail, sep, __ATOMIC_RELEASE);
}

/*
 * The regions this process attaches to, in the order of the endpoint list
 * (shim.h, "Several regions"): read once, at the first attach, from the
 * copy of IVLINK_ENDPOINT, else from ivl_regions(). Each slot attaches
 * lazily and on its own: one that fails is retried after a second, with
 * a debug line, and never keeps the others from working. Slots are
 * written under ep_lock; sep is read without it (acquire: pairs with the
 * release store after the endpoint was set up).
 */
struct shim_region_slot {
	char *uri; /* for ivl_endpoint_opts.uri; "auto": the library's choice */
	struct shim_ep *sep;
	int64_t retry_ns;
	int failed_logged;
};

static struct shim_region_slot g_reg[SHIM_REGIONS_MAX];
static int g_n_reg = -1; /* -1: the list is not read yet */

static void region_add(const char *uri, size_t len)
{
	while (len && (uri[0] == ' ' || uri[0] == '\t')) {
		uri++;
		len--;
	}
	while (len && (uri[len - 1] == ' ' || uri[len - 1] == '\t'))
		len--;
	if (!len)
		return;
	if (g_n_reg >= SHIM_REGIONS_MAX) {
		SHIM_DBG("endpoint '%.*s' ignored: at most %d regions", (int)len, uri,
			 SHIM_REGIONS_MAX);
		return;
	}
	g_reg[g_n_reg].uri = strndup(uri, len);
	if (g_reg[g_n_reg].uri)
		g_n_reg++;
}

/*
 * The endpoint list. IVLINK_ENDPOINT: URIs separated by commas, in the
 * order connects look for listeners. Unset: every region ivl_regions()
 * lists (on the host the sockets in IVLINK_ENDPOINTS, in a guest every
 * ivshmem device) when that is more than one or IVLINK_ENDPOINTS is set,
 * else the library's auto choice, as with a single region before.
 * Caller holds ep_lock.
 */
static void regions_load(void)
{
	const char *s = shim_cfg.endpoint;

	g_n_reg = 0;
	if (s && *s) {
		for (const char *c; (c = strchr(s, ',')); s = c + 1)
			region_add(s, (size_t)(c - s));
		region_add(s, strlen(s));
	} else {
		struct ivl_region_info ri[SHIM_REGIONS_MAX];
		int n = ivl_regions(ri, SHIM_REGIONS_MAX);

		if (n >= 2 || (n == 1 && getenv(IVL_ENV_ENDPOINTS)))
			for (int i = 0; i < n && i < SHIM_REGIONS_MAX; i++)
				region_add(ri[i].uri, strlen(ri[i].uri));
	}
	if (!g_n_reg)
		region_add("auto", 4);
}

/* Attaches slot i unless it is attached or waits for its retry. Caller
 * holds ep_lock. */
static void region_attach(int i)
{
	struct shim_region_slot *r = &g_reg[i];
	struct ivl_endpoint_opts o;
	struct shim_ep *sep;
	char name[IVL_PEER_NAME_MAX];
	extern char *program_invocation_short_name;
	int rc;

	if (r->sep || ivl__now_ns() < r->retry_ns)
		return;
	memset(&o, 0, sizeof(o));
	snprintf(name, sizeof(name), "shim:%.18s:%d", program_invocation_short_name, (int)getpid());
	o.uri = r->uri;
	o.name = name;
	o.spin_ns = shim_cfg.spin_ns > 0 ? shim_cfg.spin_ns : -1;
	o.connect_timeout_ns = 2000000000LL;
	o.log = shim_cfg.debug ? lib_log : NULL;
	sep = calloc(1, sizeof(*sep));
	if (!sep)
		return;
	rc = ivl_endpoint_open(&sep->ep, &o);
	if (rc < 0) {
		if (shim_cfg.debug || !r->failed_logged)
			SHIM_DBG("no region at %s (%s): skipped, retried in 1 s", r->uri,
				 strerror(-rc));
		r->failed_logged = 1;
		free(sep);
		r->retry_ns = ivl__now_ns() + 1000000000LL;
		return;
	}
	sep->owner = getpid();
	sep->idx = i;
	sep->ep->drained = shim_doorbell_drained;
	init_peer_shim(sep->ep);
	ep_append(sep);
	__atomic_store_n(&r->sep, sep, __ATOMIC_RELEASE);
	SHIM_DBG("attached to %s (region '%s') as peer %u", r->uri, ivl_endpoint_region(sep->ep),
		 ivl_endpoint_id(sep->ep));
}

/* 1 when every region of the list is attached (no lock needed then). */
static int regions_all_attached(void)
{
	int n = __atomic_load_n(&g_n_reg, __ATOMIC_ACQUIRE);

	/* 0 while regions_load() counts them under ep_lock (it always ends
	 * with at least one): not "all attached", or a thread racing the
	 * first attach would find no region at all (memcslap's 8 threads
	 * connecting at once: one connection in ~50 on TCP, no-region). */
	if (n <= 0)
		return 0;
	for (int i = 0; i < n; i++)
		if (!__atomic_load_n(&g_reg[i].sep, __ATOMIC_ACQUIRE))
			return 0;
	return 1;
}

int shim_eps_get(struct shim_ep **out, int max)
{
	int n = 0;

	if (shim_cfg.disabled)
		return 0;
	if (!regions_all_attached()) {
		pthread_mutex_lock(&ep_lock);
		if (g_n_reg < 0) {
			regions_load();
			__atomic_store_n(&g_n_reg, g_n_reg, __ATOMIC_RELEASE);
		}
		for (int i = 0; i < g_n_reg; i++)
			region_attach(i);
		pthread_mutex_unlock(&ep_lock);
	}
	for (int i = 0; i < __atomic_load_n(&g_n_reg, __ATOMIC_ACQUIRE) && n < max; i++) {
		struct shim_ep *sep = __atomic_load_n(&g_reg[i].sep, __ATOMIC_ACQUIRE);

		if (sep)
			out[n++] = sep;
	}
	return n;
}

struct shim_ep *shim_ep_get(void)
{
	struct shim_ep *sep = shim_ep_own();

	if (sep || shim_cfg.disabled)
		return sep;
	return shim_eps_get(&sep, 1) == 1 ? sep : NULL;
}

struct shim_ep *shim_ep_own(void)
{
	int n = __atomic_load_n(&g_n_reg, __ATOMIC_ACQUIRE);

	for (int i = 0; i < n; i++) {
		struct shim_ep *sep = __atomic_load_n(&g_reg[i].sep, __ATOMIC_ACQUIRE);

		if (sep)
			return sep;
	}
	return NULL;
}

int shim_same_region(const struct shim_ep *a, const struct shim_ep *b)
{
	const struct ivl_region_hdr *x = &a->ep->rg.hdr, *y = &b->ep->rg.hdr;

	return x->region_size == y->region_size && x->created_unix_ns == y->created_unix_ns &&
	       x->daemon_gen == y->daemon_gen && memcmp(x->name, y->name, sizeof(x->name)) == 0;
}

struct shim_ep *shim_ep_own_like(const struct shim_ep *like)
{
	struct shim_ep *v[SHIM_REGIONS_MAX];
	int n = shim_eps_get(v, SHIM_REGIONS_MAX);

	for (int i = 0; i < n; i++)
		if (v[i] == like || shim_same_region(v[i], like))
			return v[i];
	return NULL;
}

int shim_ep_fds(int *fds, int max)
{
	int n = 0;

	for (struct shim_ep *s = __atomic_load_n(&g_eps, __ATOMIC_ACQUIRE); s && n < max;
	     s = s->next)
		fds[n++] = ivl_endpoint_fd(s->ep);
	return n;
}

void shim_active_add(struct shim_conn *c)
{
	pthread_mutex_lock(&shim_active_lock);
	if (!c->on_active) {
		c->on_active = 1;
		__atomic_fetch_add(&c->o.refs, 1, __ATOMIC_ACQ_REL);
		c->prev_active = NULL;
		c->next_active = shim_active;
		if (shim_active)
			shim_active->prev_active = c;
		shim_active = c;
	}
	pthread_mutex_unlock(&shim_active_lock);
}

void shim_active_del(struct shim_conn *c)
{
	int drop = 0;

	pthread_mutex_lock(&shim_active_lock);
	if (c->on_active) {
		c->on_active = 0;
		if (c->prev_active)
			c->prev_active->next_active = c->next_active;
		else
			shim_active = c->next_active;
		if (c->next_active)
			c->next_active->prev_active = c->prev_active;
		c->next_active = c->prev_active = NULL;
		drop = 1;
	}
	pthread_mutex_unlock(&shim_active_lock);
	if (drop)
		shim_put(&c->o);
}

/* Snapshot of the active list, with references. */
static int active_snapshot(struct shim_conn ***out)
{
	struct shim_conn **v;
	int n = 0, cap = 0;

	pthread_mutex_lock(&shim_active_lock);
	for (struct shim_conn *c = shim_active; c; c = c->next_active)
		cap++;
	v = cap ? malloc(sizeof(*v) * (size_t)cap) : NULL;
	for (struct shim_conn *c = shim_active; c && v; c = c->next_active) {
		__atomic_fetch_add(&c->o.refs, 1, __ATOMIC_ACQ_REL);
		v[n++] = c;
	}
	pthread_mutex_unlock(&shim_active_lock);
	*out = v;
	return n;
}

int shim_gc_pending;
static int64_t gc_last_ns;

void shim_gc_deferred(void)
{
	int64_t now;
	int left = 0;

	if (!__atomic_load_n(&shim_gc_pending, __ATOMIC_RELAXED))
		return;
	now = ivl__now_ns();
	if (now - __atomic_load_n(&gc_last_ns, __ATOMIC_RELAXED) < 50000000LL)
		return;
	__atomic_store_n(&gc_last_ns, now, __ATOMIC_RELAXED);
	__atomic_store_n(&shim_gc_pending, 0, __ATOMIC_RELAXED);
	for (struct shim_ep *s = __atomic_load_n(&g_eps, __ATOMIC_ACQUIRE); s; s = s->next) {
		const struct ivl_region *rg = &s->ep->rg;
		uint32_t self = ivl_endpoint_id(s->ep);

		ivl_ctab_gc(rg, self);
		for (uint32_t i = 0; i < rg->hdr.chan_slots && !left; i++)
			left = __atomic_load_n(&ivl_region_chan(rg, self, i)->state,
					       __ATOMIC_RELAXED) == IVL_CHAN_CLOSED;
	}
	if (left)
		__atomic_store_n(&shim_gc_pending, 1, __ATOMIC_RELAXED);
}

/*
 * Called at every poll/select/epoll_wait. A process whose sockets are all
 * plain or fell back (a server of non-shim clients, say) never waits on its
 * endpoint, so it would never read the daemon's join/leave messages: the
 * daemon drops a client that lets 4096 of them queue up, and the process
 * leaves the region. Drain them here, at most every 50 ms.
 */
void shim_housekeeping(void)
{
	static int64_t last_ns;
	int64_t now = ivl__now_ns();

	shim_gc_deferred();
	if (now - __atomic_load_n(&last_ns, __ATOMIC_RELAXED) < 50000000LL)
		return;
	__atomic_store_n(&last_ns, now, __ATOMIC_RELAXED);
	for (struct shim_ep *s = __atomic_load_n(&g_eps, __ATOMIC_ACQUIRE); s; s = s->next)
		ivl_endpoint_process(s->ep);
}

void shim_ep_process_all(void)
{
	struct shim_conn **v;
	int n;

	for (struct shim_ep *s = __atomic_load_n(&g_eps, __ATOMIC_ACQUIRE); s; s = s->next)
		ivl_endpoint_process(s->ep);
	n = active_snapshot(&v);
	for (int i = 0; i < n; i++) {
		shim_progress(v[i]);
		shim_sync(v[i]);
		shim_put(&v[i]->o);
	}
	free(v);
}

/* ------------------------------------------------------------ progress */

/*
 * A pending rendezvous (a connect in progress, a proposal or an accept
 * waiting for the other side's answer) moves on in this process's socket
 * calls. A program that writes and then makes no socket call for a while
 * (it computes, sleeps, or waits on something the shim does not see)
 * used to hold its bytes back until its next call, seconds later, where
 * TCP delivers them at once. So while any connection of the process is
 * pending, a helper thread moves it on: every 50 us at first, backing off
 * to 1 ms, and it sleeps on a condition variable as soon as nothing is
 * pending. It only calls shim_progress(), which any thread of a program
 * may call at any time; it blocks every signal but the synchronous faults,
 * so the program's handlers never run on it.
 */
static pthread_mutex_t prog_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t prog_cond = PTHREAD_COND_INITIALIZER;
static pthread_t prog_thread;
static int prog_running, prog_stop, prog_kicked;

/* What the thread moves on: an answer awaited. Not a connect in progress
 * (SS_CONNECTING): the thread that called connect() owns that transition
 * and the program learns of it by a call of its own anyway. */
static int pending(int st)
{
	return st == SS_CLI_PENDING || st == SS_SRV_PENDING;
}

static int get_state_of(struct shim_conn *c)
{
	return __atomic_load_n(&c->state, __ATOMIC_ACQUIRE);
}

/* Moves every pending connection on; returns how many are still pending. */
static int progress_pending(void)
{
	struct shim_conn **v;
	int n = active_snapshot(&v), left = 0;

	for (int i = 0; i < n; i++) {
		if (pending(get_state_of(v[i]))) {
			shim_progress(v[i]);
			left += pending(get_state_of(v[i]));
		}
		shim_put(&v[i]->o);
	}
	free(v);
	return left;
}

static void *prog_main(void *arg)
{
	long interval_ns = 50000;

	(void)arg;
	shim_thread_init();
	pthread_mutex_lock(&prog_lock);
	while (!prog_stop) {
		int left;

		prog_kicked = 0;
		pthread_mutex_unlock(&prog_lock);
		left = progress_pending();
		pthread_mutex_lock(&prog_lock);
		if (prog_stop)
			break;
		if (!left) {
			interval_ns = 50000;
			while (!prog_kicked && !prog_stop)
				pthread_cond_wait(&prog_cond, &prog_lock);
			continue;
		}
		if (prog_kicked) {
			interval_ns = 50000;
			continue;
		}
		pthread_mutex_unlock(&prog_lock);
		nanosleep(&(struct timespec){0, interval_ns}, NULL);
		if (interval_ns < 1000000)
			interval_ns *= 2;
		pthread_mutex_lock(&prog_lock);
	}
	pthread_mutex_unlock(&prog_lock);
	return NULL;
}

void shim_progress_kick(void)
{
	pthread_mutex_lock(&prog_lock);
	prog_kicked = 1;
	if (!prog_running && !prog_stop) {
		sigset_t all, old;

		/* The program's asynchronous signals go to its own threads.
		 * Faults stay deliverable: a blocked SIGBUS raised by an access
		 * is forced to its default action by the kernel, and the region
		 * guard (region_guard.c) must see a shrunk region's. */
		sigfillset(&all);
		sigdelset(&all, SIGBUS);
		sigdelset(&all, SIGSEGV);
		sigdelset(&all, SIGILL);
		sigdelset(&all, SIGFPE);
		sigdelset(&all, SIGTRAP);
		pthread_sigmask(SIG_SETMASK, &all, &old);
		prog_running = pthread_create(&prog_thread, NULL, prog_main, NULL) == 0;
		pthread_sigmask(SIG_SETMASK, &old, NULL);
		if (!prog_running)
			SHIM_DBG("no progress thread: %s; pending connections move in socket calls",
				 strerror(errno));
	}
	pthread_cond_signal(&prog_cond);
	pthread_mutex_unlock(&prog_lock);
}

static void progress_stop(void)
{
	int running;

	pthread_mutex_lock(&prog_lock);
	prog_stop = 1;
	running = prog_running;
	pthread_cond_signal(&prog_cond);
	pthread_mutex_unlock(&prog_lock);
	if (running && !pthread_equal(pthread_self(), prog_thread))
		pthread_join(prog_thread, NULL);
	prog_running = 0;
}

/*
 * At exit: close every connection as close() would, so that the remotes
 * read our last bytes and then EOF rather than a reset. Nothing waits for
 * them: the daemon keeps our section, with those bytes, until it hands our
 * id out again.
 */
__attribute__((destructor)) static void shim_fini(void)
{
	struct shim_conn **v;
	int n;

	progress_stop();
	n = active_snapshot(&v);

	for (int i = 0; i < n; i++) {
		shim_conn_last_close(v[i]);
		shim_put(&v[i]->o);
	}
	free(v);
}

/* ------------------------------------------------------------ fork, exec */

/* Adds delta to the process count of every active connection's half, and
 * for a child to come marks each as forked (conn_io.c adopts what the other
 * process moved). Caller holds shim_active_lock. */
static void procs_add(int delta)
{
	for (struct shim_conn *c = shim_active; c; c = c->next_active) {
		struct ivl_chan_half *h;

		if (delta > 0) {
			/* No fast path while another process may use it. */
			shim_guard_revoke(&c->txg, &c->forked);
			shim_guard_revoke(&c->rxg, &c->forked);
		}
		/* A listener's records in its other regions too. */
		for (int i = 0; i < c->n_lmore; i++) {
			struct shim_lrec *l = &c->lmore[i];

			h = ivl_region_chan(&l->sep->ep->rg, ivl_endpoint_id(l->sep->ep), l->slot);
			if (h)
				__atomic_fetch_add(&h->shim.procs, (uint32_t)delta,
						   __ATOMIC_ACQ_REL);
		}
		if (!c->sep || c->slot == IVL_SLOT_NONE)
			continue;
		h = ivl_region_chan(&c->sep->ep->rg, ivl_endpoint_id(c->sep->ep), c->slot);
		if (h)
			__atomic_fetch_add(&h->shim.procs, (uint32_t)delta, __ATOMIC_ACQ_REL);
	}
}

void shim_fork_prepare(void)
{
	pthread_mutex_lock(&ep_lock);
	pthread_mutex_lock(&shim_active_lock);
	/* Both processes hold every connection after fork: count the child
	 * in before it exists, so that a parent closing at once (a forking
	 * server) does not tear down what the child is about to use. */
	procs_add(1);
}

void shim_fork_parent(int failed)
{
	if (failed)
		procs_add(-1);
	pthread_mutex_unlock(&shim_active_lock);
	pthread_mutex_unlock(&ep_lock);
}

void shim_fork_child(void)
{
	/* The progress thread is the parent's; ours starts with our next
	 * pending connection. */
	pthread_mutex_init(&prog_lock, NULL);
	pthread_cond_init(&prog_cond, NULL);
	prog_running = prog_kicked = 0;
	pthread_mutex_init(&shim_active_lock, NULL);
	pthread_mutex_init(&ep_lock, NULL);
	pthread_mutex_init(&shim_reg_lock, NULL);
	shim_sleepers_fork_child();
	shim_fast_fork_child();
	/*
	 * The child shares the parent's peer identity for what it inherited,
	 * but the daemon connection is the parent's: the child must never
	 * read it (it would steal the parent's peer join/leave messages). Its
	 * own new connections get an endpoint of its own, opened lazily.
	 */
	for (struct shim_ep *s = g_eps; s; s = s->next) {
		if (!s->inherited) {
			s->ops_nocontrol = *s->ep->ops;
			s->ops_nocontrol.process = NULL;
			s->ep->ops = &s->ops_nocontrol;
			s->inherited = 1;
		}
		pthread_mutex_init(&s->ep->lock, NULL);
		/* Wait on the doorbells only, never on the parent's daemon
		 * connection (it would wake us for ever). */
		ivl__ep_fork_child(s->ep);
	}
	/* Our own endpoints come anew, one per region of the same list. */
	for (int i = 0; i < SHIM_REGIONS_MAX; i++) {
		g_reg[i].sep = NULL;
		g_reg[i].retry_ns = 0;
	}
	for (struct shim_conn *c = shim_active; c; c = c->next_active) {
		pthread_mutex_init(&c->lock, NULL);
		shim_guard_init(&c->txg);
		shim_guard_init(&c->rxg);
		c->inherited = 1;
		c->wake_done = c->wake_own = 0;
		c->lk.wake_busy = 0;
		c->forked = 1; /* never a fast path here: adopt at each use */
		/* What the parent moved and has not flushed yet is the
		 * parent's to count. */
		c->tx_unflushed = 0;
		c->rx_unflushed = 0;
		c->lk.block_max_ns = SHIM_INHERITED_SLICE_NS;
	}
}

/* Path of this library, for LD_PRELOAD across execve. */
static const char *self_path(void)
{
	static char path[1024];
	Dl_info info;

	if (!path[0] && dladdr((void *)self_path, &info) && info.dli_fname)
		snprintf(path, sizeof(path), "%s", info.dli_fname);
	return path;
}

/*
 * envp plus what the shim needs: LD_PRELOAD naming this library and the
 * IVLINK_* variables this process started with, unless envp sets them.
 * Returns a malloc'd array (strings borrowed or leaked: exec follows).
 */
char **shim_exec_env(char *const envp[])
{
	const char *lib = self_path();
	int n = 0, k = 0, have_preload = 0;
	char **out;

	for (char *const *e = envp; e && *e; e++)
		n++;
	for (char **e = g_keep_env; e && *e; e++)
		n++;
	out = calloc((size_t)n + 2, sizeof(char *));
	if (!out)
		return NULL;
	for (char *const *e = envp; e && *e; e++) {
		if (!strncmp(*e, "LD_PRELOAD=", 11)) {
			have_preload = 1;
			if (lib[0] && !strstr(*e, lib)) {
				size_t len = strlen(*e) + strlen(lib) + 2;
				char *s = malloc(len);

				if (s) {
					snprintf(s, len, "LD_PRELOAD=%s:%s", lib, *e + 11);
					out[k++] = s;
					continue;
				}
			}
		}
		out[k++] = *e;
	}
	for (char **e = g_keep_env; e && *e; e++) {
		size_t nl = strcspn(*e, "=") + 1;
		int found = 0;

		for (char *const *f = envp; f && *f && !found; f++)
			found = !strncmp(*f, *e, nl);
		if (!found && (strncmp(*e, "LD_PRELOAD=", 11) || !have_preload))
			out[k++] = *e;
		if (!strncmp(*e, "LD_PRELOAD=", 11))
			have_preload = 1;
	}
	if (!have_preload && lib[0]) {
		size_t len = strlen(lib) + 12;
		char *s = malloc(len);

		if (s) {
			snprintf(s, len, "LD_PRELOAD=%s", lib);
			out[k++] = s;
		}
	}
	out[k] = NULL;
	return out;
}
