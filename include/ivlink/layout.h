/* SPDX-License-Identifier: MIT */
/*
 * ivlink region layout, version 4.
 *
 * This file is an ABI: every VM and host process that maps an ivlink region
 * agrees on these structures byte for byte. All fields are fixed width and
 * little endian (x86-64 and aarch64 hosts only), every position is an offset
 * from the start of the region (each peer maps it at a different address),
 * and every offset or size that another peer relies on is pinned by a
 * static_assert below (C11's <assert.h> macro for _Static_assert, C++'s
 * keyword: the header is checked as both). Changing any of them means
 * bumping IVL_LAYOUT_VERSION.
 *
 *   0                4 KiB                      section_off
 *   +----------------+--------------------------+--------------------------+---
 *   | region header  | peer table               | section of peer 0        | ...
 *   | (daemon, once) | max_peers x 256 B        | section_size bytes       |
 *   +----------------+--------------------------+--------------------------+---
 *
 *   section of peer i (written only by peer i, except rx consumer fields):
 *   +--------------------+----------------------------+-----------------------+
 *   | section header 4K  | channel table              | heap: ring data pages |
 *   | magic, page bitmap | chan_slots x 512 B halves  | 4 KiB pages           |
 *   +--------------------+----------------------------+-----------------------+
 *
 *   channel half (512 B, one cache line per row; all of it written by its
 *   owner only, so the adjacent-line prefetcher's 128-byte pairs never mix
 *   the two sides' writes):
 *     0   descriptor (2 lines)            before OFFERED
 *   128   tx_prod index: tail             every publish of our tx ring
 *   192   tx_prod control: flags,         when we sleep for space, close,
 *           sleep_seq, counters             flush counters
 *   256   rx_cons index: head             every release of our rx ring
 *   320   rx_cons control: flags,         when we sleep for data, close,
 *           sleep_seq, counters             flush counters
 *   384   shim block (2 lines)            socket shim rendezvous
 *
 * Who writes what: the daemon writes the region header (once, at format time,
 * plus daemon_gen/daemon_pid at each start) and the daemon half of every peer
 * table entry. A peer writes only its own peer-table diagnostics and its own
 * section; the single exception is that the consumer of a ring stores its
 * consumer index in *its own* channel half, so even that write stays in the
 * writer's section. A hostile peer can therefore scribble anywhere (ivshmem
 * cannot stop it), but an honest peer never needs to write outside its
 * section, and everything it reads from elsewhere is validated first
 * (transport/region.c).
 */
#ifndef IVLINK_LAYOUT_H
#define IVLINK_LAYOUT_H

#include <assert.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* "IVLINK01" read as a little-endian 64-bit integer. */
#define IVL_REGION_MAGIC  0x31304b4e494c5649ULL
#define IVL_SECTION_MAGIC 0x54434553u /* "SECT" */
/* Version 2 gave ring blocks two lines (an index line and a control line,
 * the shim block moved to 384). Version 3 changes the message-mode data:
 * a record of at most one cache line, header included, never crosses a
 * line (a pad record fills the rest of the line before it), so a v2
 * consumer would take a pad for a corrupt record. The validator refuses
 * any other version. */
#define IVL_LAYOUT_VERSION 4u

#define IVL_CACHELINE 64u
#define IVL_PAGE_SIZE 4096u

#define IVL_REGION_HDR_SIZE  4096u
#define IVL_PEER_ENTRY_SIZE  256u
#define IVL_SECTION_HDR_SIZE 4096u
#define IVL_CHAN_HALF_SIZE   512u

/* Hard limits a validator enforces whatever the header claims. */
#define IVL_PEERS_LIMIT	  64u /* ids 0..63 */
#define IVL_VECTORS_LIMIT 64u
/* 65536 halves (32 MiB of table per section): a process under the socket
 * shim uses one half per connection plus its listeners and the halves of
 * closed connections not yet collected, so a server holding 10,000
 * connections needs more than 10,000 (ivlinkd --chan-slots). */
#define IVL_CHAN_SLOTS_LIMIT 65536u
#define IVL_REGION_MIN_SIZE  (1u << 20)
#define IVL_NAME_MAX	     48u /* channel names, NUL included */
#define IVL_PEER_NAME_MAX    32u /* peer names, NUL included */
#define IVL_REGION_NAME_MAX  64u

/* Bitmap bytes in a section header: one bit per heap page. */
#define IVL_SECTION_BITMAP_BYTES (IVL_SECTION_HDR_SIZE - 64u)
#define IVL_SECTION_MAX_PAGES	 (IVL_SECTION_BITMAP_BYTES * 8u)

/* Vector 0 of every peer is the control vector: the daemon rings it on each
 * peer join or leave. Vectors 1..n_vectors-1 carry channel wake-ups. */
#define IVL_CTRL_VECTOR 0u

/* ------------------------------------------------------------------------ */
/* Region header: offset 0, written by the daemon.                           */

struct ivl_region_hdr {
	uint64_t magic;		  /* IVL_REGION_MAGIC */
	uint32_t version;	  /* IVL_LAYOUT_VERSION */
	uint32_t hdr_size;	  /* IVL_REGION_HDR_SIZE */
	uint64_t region_size;	  /* bytes, power of two (QEMU BAR) */
	uint32_t max_peers;	  /* peer ids 0..max_peers-1 */
	uint32_t n_vectors;	  /* doorbell vectors per peer */
	uint64_t peer_table_off;  /* IVL_REGION_HDR_SIZE */
	uint32_t peer_entry_size; /* IVL_PEER_ENTRY_SIZE */
	uint32_t chan_slots;	  /* channel halves per section */
	uint64_t section_off;	  /* section of peer 0, page aligned */
	uint64_t section_size;	  /* bytes per section, page multiple */
	uint32_t chan_half_size;  /* IVL_CHAN_HALF_SIZE */
	uint32_t flags;		  /* reserved, 0 */
	uint64_t daemon_gen;	  /* bumped at each daemon start */
	uint32_t daemon_pid;
	uint32_t reserved0;
	uint64_t created_unix_ns;
	char name[IVL_REGION_NAME_MAX]; /* region name, NUL padded */
	uint8_t reserved[IVL_REGION_HDR_SIZE - 160];
};

static_assert(offsetof(struct ivl_region_hdr, magic) == 0, "abi");
static_assert(offsetof(struct ivl_region_hdr, version) == 8, "abi");
static_assert(offsetof(struct ivl_region_hdr, region_size) == 16, "abi");
static_assert(offsetof(struct ivl_region_hdr, max_peers) == 24, "abi");
static_assert(offsetof(struct ivl_region_hdr, n_vectors) == 28, "abi");
static_assert(offsetof(struct ivl_region_hdr, peer_table_off) == 32, "abi");
static_assert(offsetof(struct ivl_region_hdr, chan_slots) == 44, "abi");
static_assert(offsetof(struct ivl_region_hdr, section_off) == 48, "abi");
static_assert(offsetof(struct ivl_region_hdr, section_size) == 56, "abi");
static_assert(offsetof(struct ivl_region_hdr, chan_half_size) == 64, "abi");
static_assert(offsetof(struct ivl_region_hdr, daemon_gen) == 72, "abi");
static_assert(offsetof(struct ivl_region_hdr, created_unix_ns) == 88, "abi");
static_assert(offsetof(struct ivl_region_hdr, name) == 96, "abi");
static_assert(sizeof(struct ivl_region_hdr) == IVL_REGION_HDR_SIZE, "abi");

/* ------------------------------------------------------------------------ */
/* Peer table entry: the first cache line is written by the daemon, the      */
/* second by the peer itself (diagnostics only; nobody trusts them).         */

enum ivl_peer_state {
	IVL_PEER_FREE = 0, /* never used */
	IVL_PEER_UP = 1,   /* connected to the daemon */
	IVL_PEER_GONE = 2, /* left; its section may be reclaimed */
};

enum ivl_peer_backend {
	IVL_BACKEND_UNKNOWN = 0,
	IVL_BACKEND_HOST = 1, /* host process, eventfds from the daemon */
	IVL_BACKEND_VFIO = 2, /* guest, VFIO + MSI-X interrupts */
	IVL_BACKEND_POLL = 3, /* guest, sysfs BARs, polling */
	IVL_BACKEND_QEMU = 4, /* a QEMU guest seen from the daemon */
};

/*
 * Fallback reasons of the socket shim (libivlink-preload), in the manner of
 * SMC's CLC decline codes (SMC_CLC_DECL_*, shown by smcss). Stored in the
 * region (per-connection shim blocks and per-peer counters below) so that
 * ivlinkctl can show why a connection did not use the rings.
 */
enum ivl_fb_reason {
	IVL_FB_NONE = 0,
	IVL_FB_NO_REGION = 1,	 /* no daemon/region to attach to */
	IVL_FB_NO_LISTENER = 2,	 /* destination is no shim listener of the region */
	IVL_FB_PEER_NO_SHIM = 3, /* server side: the client made no proposal */
	IVL_FB_REGION_FULL = 4,	 /* no free channel slot or ring pages */
	IVL_FB_TIMEOUT = 5,	 /* the server did not accept in time */
	IVL_FB_DECLINED = 6,	 /* the server declined (its reason is in its note) */
	IVL_FB_OPTION = 7,	 /* unsupported option (TCP_FASTOPEN, MSG_OOB, ...) */
	IVL_FB_RULES = 8,	 /* excluded by IVLINK_RULES / IVLINK_CONF */
	IVL_FB_PEER_GONE = 9,	 /* the other peer left during the handshake */
	IVL_FB_WITHDRAWN = 10,	 /* server side: the client withdrew its proposal */
	IVL_FB_PROTO = 11,	 /* the other side published malformed state */
	IVL_FB_INTERNAL = 12,	 /* local error (memory, fds) */
	IVL_FB_PEER_STALE = 13,	 /* the other peer's liveness is unknown (UP under an
				  * earlier ivlinkd, or no doorbell to ring it) */
	/* The other end is under the shim (client) or a peer (server) only in
	 * regions we are not in (shim.h, "Several regions"). */
	IVL_FB_NO_SHARED_REGION = 14,
	/* 15: accelerated, then moved back to TCP (its fd was passed to
	 * another process, or inherited over execve); 16: such a move that
	 * the other side never answered, so the connection was reset. */
	IVL_FB_DEMOTED = 15,
	IVL_FB_DEMOTE_RESET = 16,
	IVL_FB_REASONS = 20, /* size of the counter array */
};

#define IVL_SHIM_MAGIC 0x4d494853u /* "SHIM" */

/* Peer-written shim counters in the peer entry (diagnostics only). Updated
 * with relaxed atomic adds by every process of the peer. */
struct ivl_peer_shim {
	uint32_t magic;	      /* IVL_SHIM_MAGIC while the peer runs the shim */
	uint32_t listeners;   /* listening sockets published */
	uint64_t accelerated; /* connections that went through the rings */
	uint64_t fallbacks;   /* connections that stayed on TCP */
	uint64_t tx_bytes;    /* bytes written into rings by the shim */
	uint64_t rx_bytes;    /* bytes read from rings by the shim */
	uint32_t last_reason; /* enum ivl_fb_reason of the last fallback */
	uint32_t reserved0;
	uint32_t by_reason[IVL_FB_REASONS];
};

static_assert(offsetof(struct ivl_peer_shim, accelerated) == 8, "abi");
static_assert(offsetof(struct ivl_peer_shim, by_reason) == 48, "abi");
static_assert(sizeof(struct ivl_peer_shim) == 128, "abi");

/* daemon_flags: this entry is UP from an earlier ivlinkd that died; the
 * running daemon cannot vouch for the peer (it holds none of its doorbells
 * and will never see it leave), so nothing new is started with it. */
#define IVL_PEER_F_STALE 1u

struct ivl_peer_entry {
	/* Daemon-written. A peer is identified by (id, epoch): the epoch is
	 * bumped at every join and every leave, so a value seen while the
	 * peer was UP names exactly one incarnation of that id. */
	uint32_t state; /* enum ivl_peer_state */
	uint32_t epoch; /* bumped at each join and leave */
	uint32_t pid;	/* SO_PEERCRED of the daemon client */
	uint32_t uid;
	uint64_t joined_unix_ns;
	uint64_t left_unix_ns;
	uint32_t n_vectors;    /* vectors this peer announced */
	uint32_t daemon_flags; /* IVL_PEER_F_*; cleared at each join and leave */
	uint8_t daemon_reserved[24];
	/* Peer-written (cache line 1). */
	char name[IVL_PEER_NAME_MAX];
	uint32_t backend;    /* enum ivl_peer_backend */
	uint32_t self_epoch; /* the epoch the peer saw when it wrote this */
	uint32_t self_pid;   /* pid inside the VM, or host pid */
	uint32_t reserved1;
	uint64_t heartbeat_ns;	   /* optional liveness hint */
	struct ivl_peer_shim shim; /* socket shim counters (diagnostics) */
	uint8_t peer_reserved[IVL_PEER_ENTRY_SIZE - 64 - 56 - 128];
};

static_assert(offsetof(struct ivl_peer_entry, state) == 0, "abi");
static_assert(offsetof(struct ivl_peer_entry, epoch) == 4, "abi");
static_assert(offsetof(struct ivl_peer_entry, name) == 64, "abi");
static_assert(offsetof(struct ivl_peer_entry, backend) == 96, "abi");
static_assert(offsetof(struct ivl_peer_entry, shim) == 120, "abi");
static_assert(sizeof(struct ivl_peer_entry) == IVL_PEER_ENTRY_SIZE, "abi");

/* ------------------------------------------------------------------------ */
/* Ring control blocks. A ring's data lives in the producer's section heap;  */
/* its producer block sits in the producer's channel half and its consumer   */
/* block in the consumer's channel half. Each block is written by one side   */
/* only (so the two sides never false-share, the reason DPDK's               */
/* rte_ring_core.h gives for its separate prod/cons headtail lines) and is   */
/* two cache lines:                                                           */
/*                                                                            */
/*   line 0, the index line: tail (head). Written at every publish; the      */
/*     other side reads it only when its cached copy runs out.                */
/*   line 1, the control line: flags, sleep_seq and the diagnostic counters. */
/*     Written only around a sleep, at a flag change and when the counters   */
/*     are flushed (ring.c); the other side reads sleep_seq after each of    */
/*     its publishes and polls the flags, which hit in its cache as long as  */
/*     this side does not sleep.                                              */
/*                                                                            */
/* In layout v1 flags, sleep_seq and counters shared the index line, so      */
/* every publish cost the other side a second coherence miss there.          */

/* Flags in ivl_ring_prod.flags (producer to consumer), after SMC's
 * peer_done_writing / peer_conn_closed / peer_conn_abort. */
#define IVL_RING_F_DONE_WRITING 0x1u /* EOF after the last byte (SHUT_WR) */
#define IVL_RING_F_CLOSED	0x2u /* side closed the channel */
#define IVL_RING_F_ABORT	0x4u /* reset: pending data is discarded */

/* Counters (kicks, kicks_suppressed, msgs) are diagnostics: kept in the
 * handle and stored here when the side waits, kicks, changes its flags, on
 * an explicit ivl_ring_flush_stats() and about once per lap of its index
 * (every ring size of bytes), so they may trail the truth by that much. */

struct ivl_ring_prod {
	/* Line 0: index. */
	uint64_t tail; /* free-running: bytes ever published */
	uint8_t reserved0[IVL_CACHELINE - 8];
	/* Line 1: control. */
	uint32_t flags;	    /* IVL_RING_F_* */
	uint32_t sleep_seq; /* odd while the producer waits for space */
	uint64_t kicks;	    /* doorbells sent (diagnostics) */
	uint64_t kicks_suppressed;
	uint64_t msgs; /* records or write calls published */
	uint8_t reserved1[IVL_CACHELINE - 32];
};

struct ivl_ring_cons {
	/* Line 0: index. */
	uint64_t head; /* free-running: bytes ever consumed */
	uint8_t reserved0[IVL_CACHELINE - 8];
	/* Line 1: control. */
	uint32_t flags;	    /* IVL_RING_F_CLOSED | IVL_RING_F_ABORT */
	uint32_t sleep_seq; /* odd while the consumer waits for data */
	uint64_t kicks;
	uint64_t kicks_suppressed;
	uint64_t msgs;
	uint8_t reserved1[IVL_CACHELINE - 32];
};

static_assert(offsetof(struct ivl_ring_prod, tail) == 0, "abi");
static_assert(offsetof(struct ivl_ring_prod, flags) == IVL_CACHELINE, "abi");
static_assert(offsetof(struct ivl_ring_prod, sleep_seq) == IVL_CACHELINE + 4, "abi");
static_assert(offsetof(struct ivl_ring_prod, kicks) == IVL_CACHELINE + 8, "abi");
static_assert(offsetof(struct ivl_ring_prod, kicks_suppressed) == IVL_CACHELINE + 16, "abi");
static_assert(offsetof(struct ivl_ring_prod, msgs) == IVL_CACHELINE + 24, "abi");
static_assert(sizeof(struct ivl_ring_prod) == 2 * IVL_CACHELINE, "abi");
static_assert(offsetof(struct ivl_ring_cons, head) == 0, "abi");
static_assert(offsetof(struct ivl_ring_cons, flags) == IVL_CACHELINE, "abi");
static_assert(offsetof(struct ivl_ring_cons, sleep_seq) == IVL_CACHELINE + 4, "abi");
static_assert(offsetof(struct ivl_ring_cons, kicks) == IVL_CACHELINE + 8, "abi");
static_assert(offsetof(struct ivl_ring_cons, kicks_suppressed) == IVL_CACHELINE + 16, "abi");
static_assert(offsetof(struct ivl_ring_cons, msgs) == IVL_CACHELINE + 24, "abi");
static_assert(sizeof(struct ivl_ring_cons) == 2 * IVL_CACHELINE, "abi");

/* Message mode: every record starts with this header, 8-byte aligned; the
 * payload follows and is padded to 8 bytes. Records over a cache line may
 * wrap at the ring end (the consumer sees two spans); records of at most a
 * line (header included) never cross a line, so never wrap (v3, below).
 *
 *   data offset   0        40    64       104   128
 *                 | rec 32 | pad | rec 32 | pad | ...
 *                 (a 40-byte record at 40 would cross 64: a 24-byte pad,
 *                 header len 16, fills the line and the record starts at 64)
 */
struct ivl_rec_hdr {
	uint32_t len;	/* payload bytes */
	uint32_t magic; /* IVL_REC_MAGIC: catches a desynchronised consumer */
};
#define IVL_REC_MAGIC 0x52455631u /* "REV1" */
/* Layout v3: a pad record (this magic, len = pad bytes - 8) fills the rest
 * of a cache line when a record of at most a line, header included, would
 * cross into the next; the consumer skips it. Rings under two lines do
 * without pads. */
#define IVL_REC_PAD_MAGIC 0x50414433u /* "PAD3" */
#define IVL_REC_ALIGN	  8u
static_assert(sizeof(struct ivl_rec_hdr) == 8, "abi");

enum ivl_ring_mode {
	IVL_MODE_STREAM = 1,
	IVL_MODE_MESSAGE = 2,
};

/* ------------------------------------------------------------------------ */
/* Channel table: each peer's section holds chan_slots halves. A channel     */
/* named N between peers A and B is A's half {name N, remote B} matched with */
/* B's half {name N, remote A}. A writes into its tx ring (data in A's heap, */
/* producer block in A's half) and reads B's tx ring, keeping that ring's    */
/* consumer block in its own half.                                           */

enum ivl_chan_state {
	IVL_CHAN_FREE = 0,
	IVL_CHAN_CLAIMED = 1, /* being filled in by its owner */
	IVL_CHAN_OFFERED = 2, /* complete, waiting for or matched with remote */
	IVL_CHAN_CLOSED = 3,  /* owner closed it; reclaimed lazily */
	/* Socket shim states: halves without ring pages, which matching
	 * ignores; ivl_ctab_close() + ivl_ctab_gc() free them. */
	IVL_CHAN_LISTEN = 4, /* a listening TCP socket (shim.laddr/lport, addrs) */
	IVL_CHAN_NOTE = 5,   /* a connection that fell back, or a decline */
};

/*
 * The socket shim's rendezvous (see guest-lib/preload/shim.h), in the manner
 * of SMC's CLC proposal/accept/confirm/decline, but through the region:
 *
 *  1. A listening shim publishes an IVL_CHAN_LISTEN half: kind LISTEN, its
 *     bound address and port, and for a wildcard bind up to 3 of its local
 *     addresses.
 *  2. A connecting shim whose destination matches a listener binds its
 *     socket, then, before connect(2), offers a half (OFFERED, a tx ring)
 *     named after the 4-tuple to the listener's peer: kind PROPOSAL, rdv
 *     PROPOSED. It may write into that ring at once.
 *  3. At accept(2) the server's shim looks for the proposal with the
 *     accepted socket's 4-tuple. It offers its own half with the same name
 *     (kind ACCEPT, peer_slot/peer_gen = the proposal) and matches it, or
 *     publishes an IVL_CHAN_NOTE half of kind DECLINE with a reason.
 *  4. The client alone decides, with a CAS on its proposal's rdv word:
 *     PROPOSED -> CONFIRMED when it sees the ACCEPT, PROPOSED -> WITHDRAWN
 *     on a DECLINE or a timeout. The server reads the client's ring only
 *     after it saw CONFIRMED, so a withdrawing client replays every byte of
 *     its ring over TCP, and a server that sees WITHDRAWN replays the bytes
 *     of its own ring (the client never read them).
 *  5. A process forked from the listener's peer (a pre-fork server's
 *     worker) shares that peer's identity for what it inherited, but
 *     accepts as a peer of its own, whose doorbells it owns: in step 3 it
 *     offers its ACCEPT half in its own section, naming the client, and
 *     publishes in the listener peer's section an IVL_CHAN_NOTE half of
 *     kind REDIRECT (remote = the client, peer_slot/peer_gen = the
 *     proposal, redirect_peer = its own id). The client, finding no ACCEPT
 *     in the listener peer's section, follows the note and matches the
 *     ACCEPT half there; the rest is step 4 with that peer. A client that
 *     does not know REDIRECT times out and withdraws, losing nothing.
 *  6. Demotion: an accelerated connection moves back to TCP before its fd
 *     leaves the process (SCM_RIGHTS, execve without FD_CLOEXEC). The
 *     demoting side D stops using both rings and publishes in its own
 *     half's shim block (struct ivl_shim_dm): dm.gen = the remote half's
 *     gen, dm.tx_tail = its final tx tail, dm.rx_head = how far it read
 *     the remote's ring, then dm.state = IVL_DM_REQ (release store), and
 *     rings the remote P. P stops as well and answers in its own half the
 *     same way (IVL_DM_ACK, dm.gen = D's gen). Each side then writes the
 *     bytes of its own tx ring that the other never read, from the other's
 *     dm.rx_head to its own tail, to the TCP socket, and is plain TCP from
 *     then on: every byte arrives once and in order. Two sides demoting at
 *     once each take the other's request as the answer. A D that sees no
 *     answer in time (P dead or hostile) resets the TCP connection. P keeps
 *     its half (and its ring pages) until it closes the connection, so that
 *     D can still read the answer.
 */
enum ivl_shim_kind {
	IVL_SHIM_NONE = 0,
	IVL_SHIM_LISTEN = 1,
	IVL_SHIM_PROPOSAL = 2,
	IVL_SHIM_ACCEPT = 3,
	IVL_SHIM_DECLINE = 4,
	IVL_SHIM_FALLBACK = 5, /* a note: this connection stayed on TCP */
	IVL_SHIM_REDIRECT = 6, /* a note: the proposal was accepted elsewhere */
};

/* struct ivl_shim_dm state (rendezvous step 6). */
enum ivl_shim_demote {
	IVL_DM_NONE = 0,
	IVL_DM_REQ = 1, /* this side stopped using the rings and asks the other to */
	IVL_DM_ACK = 2, /* this side stopped too, answering the other's request */
};

enum ivl_shim_rdv {
	IVL_RDV_NONE = 0,
	IVL_RDV_PROPOSED = 1,
	IVL_RDV_CONFIRMED = 2,
	IVL_RDV_WITHDRAWN = 3,
};

#define IVL_SHIM_ADDRS 3u

/* The demotion record of a proposal or accept half (rendezvous step 6),
 * written by the half's owner, state last. */
struct ivl_shim_dm {
	uint32_t state;	  /* enum ivl_shim_demote, stored last (release) */
	uint32_t gen;	  /* gen of the remote half it is about */
	uint64_t tx_tail; /* this side's final tx tail */
	uint64_t rx_head; /* how far this side read the remote's ring */
};

static_assert(offsetof(struct ivl_shim_dm, tx_tail) == 8, "abi");
static_assert(offsetof(struct ivl_shim_dm, rx_head) == 16, "abi");
static_assert(sizeof(struct ivl_shim_dm) == 24, "abi");

/* The shim block of a channel half (offset 384, 128 bytes). Written by the
 * owner before the half's state is published, except rdv (client CAS),
 * reason and procs. Addresses are in network byte order, IPv4 in the first
 * 4 bytes, family in Linux's values (AF_INET 2, AF_INET6 10). */
struct ivl_shim_half {
	uint32_t kind;	    /* enum ivl_shim_kind */
	uint32_t rdv;	    /* enum ivl_shim_rdv (proposals) */
	uint32_t reason;    /* enum ivl_fb_reason (notes, withdrawn proposals) */
	uint32_t procs;	    /* processes of the owner holding the connection */
	uint32_t family;    /* 2 or 10 */
	uint16_t lport;	    /* owner's port, network order */
	uint16_t rport;	    /* other end's port, network order */
	uint8_t laddr[16];  /* owner's address (listen: bound address) */
	uint8_t raddr[16];  /* other end's address */
	uint32_t peer_slot; /* accept/decline: the proposal's slot */
	uint32_t peer_gen;  /* accept/decline: the proposal's gen */
	uint64_t created_unix_ns;
	union {
		uint32_t n_addrs;	/* listen, wildcard bind: entries of addrs */
		uint32_t redirect_peer; /* redirect: the peer that accepted */
	};
	uint32_t owner_pid;
	union {
		uint8_t addrs[IVL_SHIM_ADDRS][16]; /* listen: local addresses */
		struct ivl_shim_dm dm;		   /* proposal/accept: step 6 */
	};
};

static_assert(offsetof(struct ivl_shim_half, rdv) == 4, "abi");
static_assert(offsetof(struct ivl_shim_half, family) == 16, "abi");
static_assert(offsetof(struct ivl_shim_half, lport) == 20, "abi");
static_assert(offsetof(struct ivl_shim_half, laddr) == 24, "abi");
static_assert(offsetof(struct ivl_shim_half, raddr) == 40, "abi");
static_assert(offsetof(struct ivl_shim_half, peer_slot) == 56, "abi");
static_assert(offsetof(struct ivl_shim_half, n_addrs) == 72, "abi");
static_assert(offsetof(struct ivl_shim_half, addrs) == 80, "abi");
static_assert(offsetof(struct ivl_shim_half, dm) == 80, "abi");
static_assert(sizeof(struct ivl_shim_half) == 128, "abi");

#define IVL_SLOT_NONE 0xffffffffu

/*
 * wake_to (layout v4): where the remote rings to wake this side. 0 (as
 * created): this half's owner peer at rx_vector. Set: the vector of
 * another peer id (or another vector of the same one) that the process
 * holding this side now sleeps on: a process forked from the owner that
 * keeps the connection alone takes a doorbell of its own, so that its
 * wake-ups no longer wake its parent and siblings, which share the owner's
 * vectors. The owner stores it (seq_cst) at any time after ESTABLISHED
 * and re-checks its rings before it sleeps again; a producer loads it
 * (seq_cst) after it found this side asleep, just before it rings
 * (guest-lib/link.c, W1/W2). A value naming no peer of the region, or a
 * vector out of range, rings the owner's rx_vector as before.
 */
#define IVL_WAKE_TO_SET		  0x80000000u
#define IVL_WAKE_TO(peer, vector) (IVL_WAKE_TO_SET | ((peer)&0x7fffu) << 16 | ((vector)&0xffffu))
#define IVL_WAKE_TO_PEER(w)	  (((w) >> 16) & 0x7fffu)
#define IVL_WAKE_TO_VECTOR(w)	  ((w)&0xffffu)

struct ivl_chan_half {
	/* Line 0-1: descriptor, written by the owner before OFFERED. */
	uint32_t state;	       /* enum ivl_chan_state */
	uint32_t gen;	       /* bumped each time the slot is reused */
	uint32_t owner_epoch;  /* owner's peer epoch at creation */
	uint32_t owner_pid;    /* process that owns it (diagnostics, agent) */
	uint32_t remote_peer;  /* peer id at the other end */
	uint32_t remote_slot;  /* matched remote half, or IVL_SLOT_NONE */
	uint32_t remote_epoch; /* remote peer epoch at match, 0 before */
	uint32_t remote_gen;   /* remote half gen at match */
	uint32_t mode;	       /* enum ivl_ring_mode */
	uint32_t rx_vector;    /* vector the remote rings to wake this side */
	uint64_t tx_data_off;  /* region offset of this side's tx ring data */
	uint32_t tx_size;      /* bytes, power of two */
	uint32_t max_record;   /* message mode: largest payload */
	uint32_t tx_pages;     /* heap pages backing tx data */
	uint32_t wake_to;      /* 0, or IVL_WAKE_TO_SET | peer << 16 | vector */
	char name[IVL_NAME_MAX];
	uint8_t reserved1[2 * IVL_CACHELINE - 64 - IVL_NAME_MAX];
	/* Lines 2-3: producer block of this side's tx ring (index, control). */
	struct ivl_ring_prod tx_prod;
	/* Lines 4-5: consumer block of the remote's tx ring (our rx ring). */
	struct ivl_ring_cons rx_cons;
	/* Lines 6-7: socket shim block (zero for native channels). */
	struct ivl_shim_half shim;
};

static_assert(offsetof(struct ivl_chan_half, state) == 0, "abi");
static_assert(offsetof(struct ivl_chan_half, remote_peer) == 16, "abi");
static_assert(offsetof(struct ivl_chan_half, remote_slot) == 20, "abi");
static_assert(offsetof(struct ivl_chan_half, mode) == 32, "abi");
static_assert(offsetof(struct ivl_chan_half, tx_data_off) == 40, "abi");
static_assert(offsetof(struct ivl_chan_half, tx_size) == 48, "abi");
static_assert(offsetof(struct ivl_chan_half, name) == 64, "abi");
static_assert(offsetof(struct ivl_chan_half, tx_prod) == 128, "abi");
static_assert(offsetof(struct ivl_chan_half, tx_prod.flags) == 192, "abi");
static_assert(offsetof(struct ivl_chan_half, rx_cons) == 256, "abi");
static_assert(offsetof(struct ivl_chan_half, rx_cons.flags) == 320, "abi");
static_assert(offsetof(struct ivl_chan_half, shim) == 384, "abi");
static_assert(sizeof(struct ivl_chan_half) == IVL_CHAN_HALF_SIZE, "abi");

/* ------------------------------------------------------------------------ */
/* Section header: first page of each peer's section.                        */

struct ivl_section_hdr {
	uint32_t magic;	      /* IVL_SECTION_MAGIC once initialised */
	uint32_t owner_epoch; /* epoch of the peer that initialised it */
	uint32_t heap_pages;  /* pages in the heap */
	uint32_t reserved0;
	uint64_t heap_off;   /* region offset of the heap's first page */
	uint64_t pages_used; /* diagnostics */
	uint8_t reserved[32];
	/* One bit per heap page, set = used. Updated with atomic RMW so that
	 * several processes of one VM (one peer) can allocate concurrently. */
	uint64_t bitmap[IVL_SECTION_BITMAP_BYTES / 8];
};

static_assert(offsetof(struct ivl_section_hdr, heap_off) == 16, "abi");
static_assert(offsetof(struct ivl_section_hdr, bitmap) == 64, "abi");
static_assert(sizeof(struct ivl_section_hdr) == IVL_SECTION_HDR_SIZE, "abi");

#ifdef __cplusplus
}
#endif
#endif /* IVLINK_LAYOUT_H */
