// SPDX-License-Identifier: MIT
// ivlink-ring-bench: Boost.Lockfree's spsc_queue as a peer, a compile-time
// capacity of RB_PEER_SLOTS messages of RB_PEER_MSG bytes, behind the C
// interface of peer_queue.h. The only C++ file of the tree: CMake enables
// the language for it alone, and only when Boost's headers are found.
#include <boost/lockfree/spsc_queue.hpp>

#include <cerrno>
#include <new>

#include "peer_queue.h"

namespace
{

using queue = boost::lockfree::spsc_queue<rb_peer_msg, boost::lockfree::capacity<RB_PEER_SLOTS>>;

void *boost_create()
{
	return new (std::nothrow) queue();
}

void boost_destroy(void *q)
{
	delete static_cast<queue *>(q);
}

int boost_send(void *q, const rb_peer_msg *m)
{
	return static_cast<queue *>(q)->push(*m) ? 0 : -EAGAIN;
}

int boost_recv(void *q, rb_peer_msg *m)
{
	return static_cast<queue *>(q)->pop(*m) ? 0 : -EAGAIN;
}

} // namespace

extern "C" const struct rb_queue_ops rb_boost_ops = {
    "boost_spsc", "Boost.Lockfree spsc_queue", nullptr, boost_create, boost_destroy, boost_send,
    boost_recv,
};
