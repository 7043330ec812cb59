/* SPDX-License-Identifier: MIT */
/*
 * Private header of guest-lib/preload/: the socket shim libivlink-preload.so.
 *
 * What it does
 * ------------
 * Unmodified TCP programs get the ivlink rings, the way Linux SMC and libvma
 * give them RDMA or shared memory: a real kernel TCP socket stays behind
 * every shimmed fd (the fd number IS that socket), the TCP connection is made
 * first, and the two shims agree through the region (layout.h, "socket
 * shim's rendezvous"), never with in-band bytes. Anything that cannot agree
 * stays plain TCP on the same connection, with a reason code (enum
 * ivl_fb_reason) in the region for ivlinkctl and in the debug log.
 *
 * States of a tracked socket (struct shim_conn):
 *
 *   PLAIN ---listen()---> LISTEN          (a LISTEN half is published)
 *   PLAIN ---connect() to a shim listener--> CONNECTING (proposal posted
 *            before connect(2); the ring is usable from here on)
 *   CONNECTING --TCP up--> CLI_PENDING --server ACCEPT seen--> ACCEL
 *   CLI_PENDING --decline / timeout / close--> FALLBACK (ring replayed)
 *   accept() + proposal found --> SRV_PENDING --client CONFIRMED--> ACCEL
 *   SRV_PENDING --client WITHDRAWN / gone--> FALLBACK (own ring replayed)
 *
 * Only the client decides (CAS on its proposal's rdv word), so the two ends
 * can never disagree: the server reads the client's ring only after it saw
 * CONFIRMED, and a withdrawing side replays everything its peer never read.
 * The pending states move on in the process's socket calls and, so that a
 * program that writes and then makes no call is not held back, in a
 * progress thread that runs only while a connection is pending (core.c).
 *
 * Several regions
 * ---------------
 * A process attaches to every region of its endpoint list (core.c): the
 * comma-separated URIs of IVLINK_ENDPOINT, else every region ivl_regions()
 * lists (on the host the sockets of IVLINK_ENDPOINTS; in a guest every
 * ivshmem device) when that is more than one, else "auto". Each attaches
 * lazily and alone; one that fails is skipped with a debug line and
 * retried a second later. Channels never cross regions, so:
 *
 *  - listen() publishes the LISTEN record in every attached region;
 *  - connect() looks for the destination's listener in each region in list
 *    order and proposes in the first that has it; the connection, its
 *    rings and its counters live in that region only (c->sep);
 *  - accept() looks for the proposal in each of the listener's regions and
 *    answers in the one it is in (a forked worker: with its own endpoint
 *    of that region, and the REDIRECT note in that region too).
 *
 * Peers that share no region stay on TCP. Which reason is counted, and
 * where (fallbacks made before any region is chosen count in the first
 * attached region):
 *
 *  - client, listener in none of our regions: no-shared-region if the
 *    destination is a loopback address and its port carries the host-local
 *    listener mark (an abstract AF_UNIX name "ivlink-shim-listen:PORT" a
 *    listener binds once published in a region: it listens under the shim,
 *    in regions we are not in); else no-listener (we cannot see other
 *    regions; a remote destination's server counts the precise reason);
 *  - server, no proposal in any of the listener's regions:
 *    no-shared-region if the client's address is not one of those
 *    regions' peers (no live peer published it in a shim record:
 *    listener addresses, its side's address of a proposal, accept or note)
 *    and not of this machine (loopback or our own address); else
 *    peer-no-shim (a peer of ours, or a program on this machine we cannot
 *    tell apart from a shimmed one of another region).
 *
 * Close, exit and a remote that left
 * ----------------------------------
 * close() of the last fd (and exit, from the destructor, for every
 * connection still open) marks the rings closed: the remote reads the rest
 * and then EOF. Nobody lingers: the daemon keeps a gone peer's section
 * intact until it hands the id out again, so a remote that left, even
 * killed, can still be drained. The receive side reads on while the
 * remote's section carries the epoch it matched (ivl__link_rx_alive(), the
 * link channels use too), and reports ECONNRESET only for an empty ring
 * without EOF or a reused section; sends fail as soon as the remote is
 * gone.
 *
 * Readiness (poll, select, epoll)
 * -------------------------------
 * The kernel TCP socket of an accelerated connection carries no data, so its
 * kernel readiness is wrong. Two mechanisms, chosen per call family:
 *
 *  - poll/ppoll/select/pselect are stateless: readiness of accelerated fds is
 *    computed in user space from the rings; the call spins for the spin
 *    budget, then arms the rings' doorbells and blocks in the real ppoll()
 *    on the other fds plus every endpoint fd (ivl_endpoint_fd) and the TCP
 *    sockets (POLLRDHUP: the peer's close), then recomputes.
 *
 *  - epoll in a set that nothing outside watches (the common case: redis,
 *    libuv, nginx, ...): user space too, level triggered, edge triggered
 *    and ONESHOT alike. The registration stays in the shim only (target
 *    SHIM_TARGET_USER); epoll_wait() computes the ring readiness of these
 *    registrations itself, like poll, and adds them to the kernel's events
 *    for the other fds, so a request costs no system call for readiness.
 *    For EPOLLET a registration remembers what its last report saw (the rx
 *    ring's tail, hang-ups, the count of sends that found the ring full)
 *    and reports again only when one of those moved or after ADD/MOD, as
 *    the kernel's wake-up callback would; EPOLLONESHOT is off after one
 *    report until EPOLL_CTL_MOD (wait_epoll.c, user_events). Writable means
 *    a quarter of the ring free, as a TCP socket is writable only with a
 *    good part of its buffer free.
 *
 *  - sets watched from outside (epoll fds nested in epoll fds or polled)
 *    and EPOLLEXCLUSIVE are the kernel's: such a registration gets a
 *    readiness fd: one end of an AF_UNIX socketpair that
 *    the shim keeps consistent with the rings (a byte queued = readable, a
 *    full send buffer = not writable, a shut-down peer end = RDHUP). The
 *    app's registration of the TCP fd is re-pointed to the readiness fd
 *    with the app's own events and data, so the KERNEL implements LT, ET,
 *    MOD, ONESHOT and nesting. Each new ring event makes a new edge (one
 *    more byte). Every epoll set holding a shimmed fd also holds, hidden,
 *    the endpoint fd (its doorbells) and the TCP socket (EPOLLRDHUP|ET);
 *    epoll_wait() filters those out, processes doorbells, and updates the
 *    readiness fds before returning. An epoll fd that holds such a set gets
 *    the hidden endpoint fd too, so nested sets wake. A set that becomes
 *    watched from outside moves its user-space registrations to readiness
 *    fds; EPOLL_CTL_MOD moves a registration whenever its kind changes. On
 *    fallback the registration is moved back to the TCP socket.
 *
 *  - threads: a doorbell is consumed by whichever thread drains it, so every
 *    sleeping poll/epoll wait registers a wake eventfd first, and a drain
 *    writes the others' (wait_sleepers.c): each thread's event loop sees
 *    the doorbells of its own connections.
 *
 * Threads and the fd table
 * ------------------------
 * The fd table is a two-level array indexed by fd whose entries are
 * published with rcu_assign_pointer. The full path's lookup (shim_get)
 * runs under rcu_read_lock (liburcu, urcu-memb flavour) and takes a
 * reference on the object before leaving the read-side section. The fast
 * path of send/recv/read/write (conn_io.c, shim_fast_send/recv) takes none:
 * it runs in a fast section (fast.c), a per-thread sequence word made odd
 * and even again with plain stores. close clears the entry, waits for an
 * RCU grace period and for the fast sections (shim_fast_sync, one
 * membarrier), then drops the table's reference. Each direction of a
 * connection has a guard (a ring handle is single-threaded): a mutex, and
 * an owner, the first thread to use the accelerated direction, which goes
 * on without the mutex until another thread takes the guard; that ends
 * the ownership for good (the direction is shared from then on). So one
 * thread's send() or recv() with room or data costs the ring's inline
 * write or read and no lock or atomic read-modify-write; byte counters
 * for ivlinkctl are kept per connection and flushed every 1024 calls,
 * before a wait and at close. State changes take the connection's lock.
 *
 * Errors inside the shim are -errno (style.md); only wrap.c, the POSIX
 * boundary, turns them into -1 + errno.
 */
#ifndef IVLINK_PRELOAD_SHIM_H
#define IVLINK_PRELOAD_SHIM_H

#define _GNU_SOURCE
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <sys/epoll.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/uio.h>

#include "../internal.h"
#include "os.h"

#define SHIM_API __attribute__((visibility("default")))

/* A connection inherited over fork shares its vectors with the other
 * process, which may consume a doorbell meant for us: sleep at most this
 * long at a time (the link's block_max_ns, pending waits, poll/epoll). */
#define SHIM_INHERITED_SLICE_NS 2000000LL

/* ------------------------------------------------------------ real calls */

struct shim_real {
	int (*socket)(int, int, int);
	int (*bind)(int, const struct sockaddr *, socklen_t);
	int (*listen)(int, int);
	int (*connect)(int, const struct sockaddr *, socklen_t);
	int (*accept)(int, struct sockaddr *, socklen_t *);
	int (*accept4)(int, struct sockaddr *, socklen_t *, int);
	int (*close)(int);
	int (*shutdown)(int, int);
	ssize_t (*read)(int, void *, size_t);
	ssize_t (*write)(int, const void *, size_t);
	ssize_t (*readv)(int, const struct iovec *, int);
	ssize_t (*writev)(int, const struct iovec *, int);
	ssize_t (*send)(int, const void *, size_t, int);
	ssize_t (*recv)(int, void *, size_t, int);
	ssize_t (*sendto)(int, const void *, size_t, int, const struct sockaddr *, socklen_t);
	ssize_t (*recvfrom)(int, void *, size_t, int, struct sockaddr *, socklen_t *);
	ssize_t (*sendmsg)(int, const struct msghdr *, int);
	ssize_t (*recvmsg)(int, struct msghdr *, int);
	ssize_t (*sendfile)(int, int, off_t *, size_t);
	int (*poll)(struct pollfd *, nfds_t, int);
	int (*ppoll)(struct pollfd *, nfds_t, const struct timespec *, const sigset_t *);
	int (*epoll_create)(int);
	int (*epoll_create1)(int);
	int (*epoll_ctl)(int, int, int, struct epoll_event *);
	int (*epoll_wait)(int, struct epoll_event *, int, int);
	int (*epoll_pwait)(int, struct epoll_event *, int, int, const sigset_t *);
	int (*fcntl)(int, int, ...);
	int (*ioctl)(int, unsigned long, ...);
	int (*dup)(int);
	int (*dup2)(int, int);
	int (*dup3)(int, int, int);
	int (*getsockopt)(int, int, int, void *, socklen_t *);
	int (*setsockopt)(int, int, int, const void *, socklen_t);
	pid_t (*fork)(void);
	int (*execve)(const char *, char *const[], char *const[]);
	int (*select)(int, fd_set *, fd_set *, fd_set *, struct timeval *);
	int (*pselect)(int, fd_set *, fd_set *, fd_set *, const struct timespec *,
		       const sigset_t *);
};

extern struct shim_real shim_real;
void shim_resolve(void);
#define REAL(fn)                                                                                   \
	(__builtin_expect(shim_real.fn != NULL, 1) ? shim_real.fn : (shim_resolve(), shim_real.fn))

/* ------------------------------------------------------------ config, log */

struct shim_rule {
	int include; /* 1 include, 0 exclude */
	int role;    /* 0 any, 1 client (destination), 2 server (local) */
	int family;  /* 0 any, AF_INET, AF_INET6 */
	uint8_t addr[16];
	int prefix;		   /* bits; -1: any address */
	uint16_t port_lo, port_hi; /* host order; 0..65535 = any */
};

struct shim_config {
	int disabled;
	int debug;
	int64_t spin_ns;
	int64_t accept_timeout_ns;
	uint32_t ring_size;
	const char *endpoint;
	struct shim_rule *rules;
	int n_rules;
};

extern struct shim_config shim_cfg;

void shim_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
#define SHIM_DBG(...)                                                                              \
	do {                                                                                       \
		if (shim_cfg.debug)                                                                \
			shim_log(__VA_ARGS__);                                                     \
	} while (0)

/* 1 if a connection with this role (1 client, 2 server) and address may use
 * the rings. */
int shim_rules_allow(int role, int family, const uint8_t *addr, uint16_t port);
const char *shim_reason_name(uint32_t reason);

/* ------------------------------------------------------------ objects */

enum shim_type { SHIM_T_CONN = 1, SHIM_T_EPOLL = 2 };

struct shim_obj {
	int type;
	int refs; /* atomic */
};

enum shim_state {
	SS_PLAIN = 0,
	SS_LISTEN,
	SS_CONNECTING,
	SS_CLI_PENDING,
	SS_SRV_PENDING,
	SS_ACCEL,
	SS_FALLBACK,
	SS_DEMOTING, /* leaving the rings for TCP (conn_demote.c): sends wait */
};

/* Regions a process attaches to at most (the endpoint list, core.c). */
#define SHIM_REGIONS_MAX 16

/* An endpoint as this process uses it: its own, or inherited over fork. */
struct shim_ep {
	struct ivl_endpoint *ep;
	pid_t owner;
	int inherited;
	int idx; /* its place in the endpoint list (the lookup order) */
	struct ivl__backend_ops ops_nocontrol; /* inherited: process = NULL */
	struct shim_ep *next;
};

struct shim_conn;

/*
 * Fast sections (fast.c): a thread's reader record, seq odd while inside
 * one. Entering and leaving are plain stores; whoever must wait for the
 * readers (a close, a thread taking a direction away from its owner) pays
 * a membarrier() instead.
 */
struct shim_reader {
	uint64_t seq;
	struct shim_reader *next;
	int free;
} __attribute__((aligned(64)));

extern __thread struct shim_reader *shim_self_reader __attribute__((tls_model("initial-exec")));
extern int shim_fast_fence;

/* The calling thread's record, inside a fast section, or NULL (not
 * registered yet: take the slow path, which registers it). */
static inline struct shim_reader *shim_fast_enter(void)
{
	struct shim_reader *r = shim_self_reader;

	if (__builtin_expect(!r, 0))
		return NULL;
	__atomic_store_n(&r->seq, r->seq + 1, __ATOMIC_RELAXED);
	if (__builtin_expect(shim_fast_fence, 0))
		ivl__full_fence();
	else
		__atomic_signal_fence(__ATOMIC_SEQ_CST);
	return r;
}

static inline void shim_fast_leave(struct shim_reader *r)
{
	/* Release: pairs with the waiters' acquire loads in fast.c. */
	__atomic_store_n(&r->seq, r->seq + 1, __ATOMIC_RELEASE);
}

void shim_fast_init(void);
struct shim_reader *shim_reader_register(void);
void shim_reader_release(void);
/* After an object left the fd table, before its table reference goes:
 * waits for every fast section that may have found it. */
void shim_fast_sync(void);
void shim_fast_fork_child(void);

/*
 * A ring direction's guard: a mutex, and an owner thread that uses the
 * handle without it while no other thread ever did. shim_guard_lock()
 * takes the mutex and, from a thread other than the owner, ends the
 * ownership for good (waiting for the owner's current fast section);
 * shim_guard_claim(), under the mutex, makes the caller the owner of a
 * direction never shared.
 */
struct shim_guard {
	pthread_mutex_t lock;
	struct shim_reader *owner; /* atomic */
	int shared;		   /* under lock */
};

void shim_guard_init(struct shim_guard *g);
void shim_guard_lock(struct shim_guard *g);
/* Claims g unless *never is set (c->forked: the connection is shared with
 * another process, whose moves each use must adopt). */
void shim_guard_claim(struct shim_guard *g, const int *never);
/* Sets *never and ends any ownership of g, without its mutex (fork). */
void shim_guard_revoke(struct shim_guard *g, int *never);

/* An app epoll registration of a tracked socket. */
struct shim_reg {
	struct shim_reg *next_c; /* conn's list */
	struct shim_reg *next_e; /* epoll's list */
	struct shim_conn *c;
	struct shim_epoll *e;
	int fd; /* the app's fd number */
	struct epoll_event ev;
	int target;	/* fd registered in the kernel: fd, the readiness fd, or
			 * SHIM_TARGET_USER: none, readiness computed in user space */
	int hidden_tcp; /* the TCP watch is registered */
	/* User-space EPOLLET/EPOLLONESHOT (wait_epoll.c, user_scan): what the
	 * last report saw, so that an event is reported once per arrival,
	 * as the kernel's wake-up callback does. Under shim_reg_lock. */
	uint64_t et_tail; /* rx ring's tail at the last report */
	uint32_t et_full; /* c->tx_full at the last report */
	unsigned et_rev;  /* events of the last report */
	int et_force;	  /* report the current readiness once (ADD, MOD) */
	int oneshot_off;  /* EPOLLONESHOT: reported, off until EPOLL_CTL_MOD */
};

#define SHIM_TARGET_USER (-2)

struct shim_epoll {
	struct shim_obj o;
	int epfd;
	int hidden_ep; /* endpoint fds registered (count of shim_ep) */
	int nested;    /* holds an epoll fd that holds shimmed fds */
	int in_outer;  /* watched from outside: in another epoll set, or polled */
	unsigned rot;  /* where the next user-space scan starts (fairness) */
	int wake_efd;  /* hidden in the set: written by shim_doorbell_drained() */
	struct shim_reg *regs;
};

struct shim_conn {
	struct shim_obj o;
	pthread_mutex_t lock; /* state changes, replay, readiness fd */
	int state;	      /* enum shim_state, atomic */
	int fd;		      /* one app fd of this socket (any of its dups) */
	int nfds;	      /* app fds referring to it in this process */
	int family;
	int nonblock;
	int is_server;
	int opt_unsupported;
	int inherited; /* came over fork: short sleeps (shared vectors) */
	int wake_done; /* inherited: own_wake() decided (conn_io.c) */
	int wake_own;  /* inherited, and the remote rings a doorbell of ours */
	int forked;    /* a child took it over fork: the processes may use it in turn
			* (atomic: a fast path's owner is revoked when it is set) */
	uint32_t reason;
	int64_t rcvtimeo_ns, sndtimeo_ns; /* < 0: none */

	/* Rendezvous and rings. */
	struct shim_ep *sep;
	uint32_t slot, gen;	 /* own half */
	struct ivl_ctab_own own; /* what our offer took (private; tx_pages 0: none) */
	uint32_t remote_slot, remote_gen;
	/* Server in a process forked from the listener's peer: the REDIRECT
	 * note (layout.h, rendezvous step 5) in the listener peer's section,
	 * closed once the client decided. rd_sep NULL: none. */
	struct shim_ep *rd_sep;
	uint32_t rd_slot;
	/* A listener's LISTEN records in the regions after its first one
	 * (sep, slot), in the endpoint list's order. */
	struct shim_lrec {
		struct shim_ep *sep;
		uint32_t slot;
	} * lmore;
	int n_lmore;
	int lmark; /* a listener's host-local mark (conn_handshake.c), or -1 */
	/* Rings, the remote's doorbell, its id and epoch, liveness (link.h);
	 * lk.ep is set with sep. */
	struct ivl__link lk;
	struct shim_guard txg, rxg; /* one thread at a time per ring handle */
	/* Bytes moved since the last flush to the peer table's counters, and
	 * calls since (each kept by the direction's user, under its guard). */
	uint64_t tx_unflushed, rx_unflushed;
	uint32_t tx_calls, rx_calls;
	int64_t deadline_ns;		 /* CLI_PENDING: withdraw after */
	struct ivl_ring_cons dummy_cons; /* tx consumer block until matched */
	char name[IVL_NAME_MAX];
	uint8_t laddr[16], raddr[16];
	uint16_t lport, rport;
	int shut_wr, shut_rd;
	int tcp_hup, tcp_err; /* seen on the TCP socket: FIN, RST */
	int closing;

	/* Readiness fd (epoll): rfd is registered in the app's sets. */
	int rfd, cfd;
	int r_bytes;	  /* bytes queued to rfd (readable while > 0) */
	int w_full;	  /* rfd's send buffer filled (not writable) */
	int r_hup;	  /* cfd shut down (EOF/reset shown) */
	uint64_t r_mark;  /* rx tail when the last edge was made */
	uint32_t tx_full; /* writes that found the ring full (atomic): an
			   * EPOLLOUT edge is due once it has room again */
	int edges;	  /* some registration needs an edge per arrival (ET, nested) */
	int rfd_regs;	  /* registrations that watch the readiness fd */
	struct shim_reg *regs;
	struct shim_conn *next_active, *prev_active;
	int on_active;
	uint64_t hidden_tag; /* its address is the hidden TCP watch's data */
};

/* fd table (core.c). */
struct shim_obj *shim_get(int fd); /* with a reference, or NULL */
/* Without a reference: only inside a fast section (fast.c). */
struct shim_obj *shim_fast_lookup(int fd);
void shim_put(struct shim_obj *o);
int shim_set(int fd, struct shim_obj *o); /* takes a reference */
struct shim_obj *shim_take(int fd);	  /* removes; returns the table's ref */
void shim_thread_init(void);

static inline struct shim_conn *shim_conn_of(struct shim_obj *o)
{
	return o && o->type == SHIM_T_CONN ? (struct shim_conn *)o : NULL;
}

static inline struct shim_epoll *shim_epoll_of(struct shim_obj *o)
{
	return o && o->type == SHIM_T_EPOLL ? (struct shim_epoll *)o : NULL;
}

/* Endpoints (core.c): one of our own per region of the endpoint list. */
/* Attaches lazily to every region not attached yet (one that fails is
 * skipped and retried later); fills out with our endpoints in list order
 * and returns their count. */
int shim_eps_get(struct shim_ep **out, int max);
struct shim_ep *shim_ep_get(void); /* the first of shim_eps_get(), or NULL */
struct shim_ep *shim_ep_own(void); /* the first attached, never attaches */
/* Our own endpoint in like's region (attaching lazily), or NULL. */
struct shim_ep *shim_ep_own_like(const struct shim_ep *like);
int shim_same_region(const struct shim_ep *a, const struct shim_ep *b);
int shim_ep_fds(int *fds, int max);	 /* endpoint fds to wait on */
void shim_ep_process_all(void);		 /* drain doorbells, sync all */
extern pthread_mutex_t shim_active_lock; /* the active list */
extern struct shim_conn *shim_active;	 /* pending/accelerated conns */
void shim_active_add(struct shim_conn *c);
void shim_active_del(struct shim_conn *c);
extern uint64_t shim_hidden_ep_tag;

/* Connections (conn*.c, conn.h). */
struct shim_conn *shim_conn_new(int fd, int family, int nonblock);
void shim_conn_free(struct shim_conn *c);
int shim_listen_publish(struct shim_conn *c);
int shim_connect(struct shim_conn *c, const struct sockaddr *sa, socklen_t len);
int shim_accept_attach(struct shim_conn *lc, int nfd, int nonblock);
int shim_connecting_check(struct shim_conn *c, int consumed_error);
void shim_progress(struct shim_conn *c);
/* A connection became pending (SS_CLI_PENDING, SS_SRV_PENDING): the
 * progress thread (core.c) moves it on even if the program makes no
 * further socket call. */
void shim_progress_kick(void);
ssize_t shim_sendv(struct shim_conn *c, const struct iovec *iov, int cnt, int flags);
ssize_t shim_recvv(struct shim_conn *c, const struct iovec *iov, int cnt, int flags);
/* send()/recv() of one buffer on an accelerated connection whose direction
 * this thread owns, when the ring has room or data: no lock, no atomic
 * read-modify-write. Returns 1 with the result (or -errno) in *ret, or 0:
 * take the full path. */
int shim_fast_send(int fd, const void *buf, size_t len, int flags, ssize_t *ret);
int shim_fast_recv(int fd, void *buf, size_t len, int flags, ssize_t *ret);
int shim_shutdown(struct shim_conn *c, int how);
void shim_conn_last_close(struct shim_conn *c);
unsigned shim_conn_revents(struct shim_conn *c, unsigned events, int arm);
long shim_conn_nread(struct shim_conn *c);
int shim_is_active(int state);
void shim_fork_prepare(void);
void shim_fork_parent(int failed);
void shim_fork_child(void);
char **shim_exec_env(char *const envp[]);
/* Sockets passed between processes (conn_demote.c): before an fd leaves
 * the process (SCM_RIGHTS in m, execve), its accelerated connections move
 * back to TCP with every byte in order, or are reset. */
void shim_demote_msg(const struct msghdr *m);
void shim_demote_exec(void);
/* The remote asked to move c back to TCP (layout.h, rendezvous step 6):
 * a read of one shared line. shim_progress() answers it (c is plain TCP
 * afterwards). */
int shim_demote_asked(struct shim_conn *c);
void shim_demote_answer(struct shim_conn *c);
#define SHIM_PASS (-100000) /* shim_sendv/recvv/shutdown: use the real call */
void shim_count_fallback(struct shim_ep *sep, uint32_t reason);
/* Set when a half was closed while its remote may still read it: such a
 * half is freed by a later ivl_ctab_gc(), which shim_gc_deferred() runs
 * from poll/select/epoll_wait (at most every 50 ms) until none is left:
 * otherwise a program that stops opening and closing connections would
 * keep the ring pages of the halves it closed first. */
extern int shim_gc_pending;
void shim_gc_deferred(void);
/* shim_gc_deferred() and a drain of the daemon's messages (rate-limited):
 * run at every poll/select/epoll_wait. */
void shim_housekeeping(void);

/* Readiness (wait_*.c: readiness fds, sleepers, epoll registrations, epoll_wait, poll). */
void shim_sync(struct shim_conn *c);
void shim_regs_retarget(struct shim_conn *c);
void shim_regs_drop(struct shim_conn *c);
void shim_epoll_drop(struct shim_epoll *e);
int shim_poll(struct pollfd *fds, nfds_t n, int64_t timeout_ns, const sigset_t *mask);
int shim_epoll_ctl(int epfd, int op, int fd, struct epoll_event *ev);
/* The epoll set is watched from outside its epoll_wait() (nested, polled). */
void shim_epoll_outer(struct shim_epoll *e);
/* Vector v's doorbell was consumed by this thread: wake the other threads
 * sleeping on connections of v (libivlink's drained hook). */
void shim_doorbell_drained(uint32_t v);
void shim_sleepers_fork_child(void);
int shim_epoll_wait(int epfd, struct epoll_event *evs, int max, int timeout_ms,
		    const sigset_t *mask);
extern pthread_mutex_t shim_reg_lock;

#endif /* IVLINK_PRELOAD_SHIM_H */
