/* SPDX-License-Identifier: MIT */
/*
 * Private header of bench/ring-bench/: the queue interface of the peers
 * comparison (peers.c), in plain C so that the C++ adapter (Boost) includes
 * it too. Each queue moves RB_PEER_MSG-byte messages between one producer
 * and one consumer thread, copying on both sides (as a socket user does):
 * send copies the caller's message in, recv copies one out.
 */
#ifndef IVLINK_RING_BENCH_PEER_QUEUE_H
#define IVLINK_RING_BENCH_PEER_QUEUE_H

#ifdef __cplusplus
extern "C" {
#endif

#define RB_PEER_MSG   64u	  /* message size of every peer test */
#define RB_PEER_SLOTS 1024u	  /* queue capacity in messages */
#define RB_PEER_RING  (64u << 10) /* ivlink ring bytes: 1024 records' worth */

/* A message. The C++ adapter uses this very type as its queue element, so
 * that its push and pop copy a message once, as the C queues do. */
struct rb_peer_msg {
	unsigned char b[RB_PEER_MSG];
};

struct rb_queue_ops {
	const char *key;     /* JSON key of the row: "boost_spsc" */
	const char *name;    /* row name in the report */
	const char *why_not; /* NULL: built; else why the row is missing */
	/* A new empty queue, NULL on failure. */
	void *(*create)(void);
	void (*destroy)(void *q);
	/* Producer: copies one message in and publishes it. 0, or -EAGAIN
	 * when the queue is full, or another -errno. */
	int (*send)(void *q, const struct rb_peer_msg *msg);
	/* Consumer: copies one message out. 0, or -EAGAIN when empty. */
	int (*recv)(void *q, struct rb_peer_msg *msg);
};

/* Boost.Lockfree spsc_queue (peer_boost.cpp), DPDK rte_ring SP/SC
 * (peer_dpdk.c): defined only when built (IVL_HAVE_BOOST, IVL_HAVE_DPDK). */
extern const struct rb_queue_ops rb_boost_ops;
extern const struct rb_queue_ops rb_dpdk_ops;

#ifdef __cplusplus
}
#endif

#endif /* IVLINK_RING_BENCH_PEER_QUEUE_H */
