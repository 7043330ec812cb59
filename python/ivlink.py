# SPDX-License-Identifier: MIT
"""ivlink: the native API of libivlink.so for Python, through ctypes.

No compiled extension: the module loads libivlink.so.0 at the first use,
from $IVLINK_LIB (a path), else wherever ctypes.util.find_library("ivlink")
finds it, else the library directory an installed copy was configured with,
or, for the copy in the source tree, the build tree next to it
(build/guest-lib, as `make build` makes it).

    import ivlink
    with ivlink.Endpoint(uri="host:/run/ivlink/ivlinkd.sock", name="west") as ep:
        east = next(p.id for p in ep.peers() if p.name == "east")
        with ep.channel("bulk", east, timeout=5) as ch:
            ch.sendall(b"hello")
            ch.shutdown(ivlink.SHUT_WR)
            print(ch.recv(65536))

Errors are OSError with the errno of the C call (the subclasses Python
picks from it: ConnectionResetError, BrokenPipeError, TimeoutError, ...);
ivlink.h lists them per call. A call on a closed endpoint or channel raises
OSError(EBADF), as a closed socket does. Timeouts are in seconds (float);
None blocks forever, 0 never blocks. ctypes releases the GIL during every
call, so other threads run while one blocks in recv(); a blocking call is
not interrupted by Ctrl-C (use timeouts).

Thread safety is the library's (ivlink.h): one thread at a time per side
of a channel; send and recv of one channel may run concurrently.
"""

import ctypes
import ctypes.util
import errno as _errno
import os
import threading
import weakref
from collections import namedtuple

__all__ = [
    "Endpoint", "Channel", "PeerInfo", "library_path",
    "MODE_STREAM", "MODE_MESSAGE", "SHUT_RD", "SHUT_WR", "SHUT_RDWR",
    "DONTWAIT", "WAITALL", "MORE",
    "POLLIN", "POLLOUT", "POLLHUP", "POLLERR",
    "PEER_FREE", "PEER_UP", "PEER_GONE",
]

# include/ivlink/layout.h and ivlink.h.
MODE_STREAM = 1
MODE_MESSAGE = 2
SHUT_RD, SHUT_WR, SHUT_RDWR = 0, 1, 2
MORE = 0x1
DONTWAIT = 0x100
WAITALL = 0x200
POLLIN, POLLOUT, POLLHUP, POLLERR = 0x1, 0x2, 0x4, 0x8
PEER_FREE, PEER_UP, PEER_GONE = 0, 1, 2
_PEER_NAME_MAX = 32
_NAME_MAX = 48

# Filled in by CMake in the installed copy (configure_file); the "@"
# placeholder means "not installed".
_INSTALLED_LIBDIR = "@CMAKE_INSTALL_FULL_LIBDIR@"
_SONAME = "libivlink.so.0"

_LOG_FN = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_int, ctypes.c_char_p)


class _EndpointOpts(ctypes.Structure):
    _fields_ = [
        ("uri", ctypes.c_char_p),
        ("name", ctypes.c_char_p),
        ("spin_ns", ctypes.c_int64),
        ("connect_timeout_ns", ctypes.c_int64),
        ("log", _LOG_FN),
        ("log_ctx", ctypes.c_void_p),
        ("reserved", ctypes.c_uint64 * 4),
    ]


class _ChannelOpts(ctypes.Structure):
    _fields_ = [
        ("mode", ctypes.c_uint32),
        ("ring_size", ctypes.c_uint32),
        ("max_record", ctypes.c_uint32),
        ("reserved0", ctypes.c_uint32),
        ("reserved", ctypes.c_uint64 * 4),
    ]


class _PeerInfo(ctypes.Structure):
    _fields_ = [
        ("id", ctypes.c_uint32),
        ("state", ctypes.c_uint32),
        ("epoch", ctypes.c_uint32),
        ("pid", ctypes.c_uint32),
        ("backend", ctypes.c_uint32),
        ("self_pid", ctypes.c_uint32),
        ("joined_unix_ns", ctypes.c_uint64),
        ("left_unix_ns", ctypes.c_uint64),
        ("name", ctypes.c_char * _PEER_NAME_MAX),
        ("is_self", ctypes.c_int),
    ]


class _ChannelStats(ctypes.Structure):
    _fields_ = [(n, ctypes.c_uint64) for n in (
        "tx_bytes", "tx_msgs", "rx_bytes", "rx_msgs",
        "kicks_sent", "kicks_suppressed", "sleeps")] + [
        (n, ctypes.c_uint32) for n in (
            "tx_ring_size", "rx_ring_size", "tx_fill", "rx_fill", "remote_peer",
            "remote_epoch", "slot", "rx_vector", "mode", "reserved0")]


PeerInfo = namedtuple("PeerInfo", "id state epoch pid backend self_pid "
                      "joined_unix_ns left_unix_ns name is_self")
PeerInfo.__doc__ = "One peer-table entry (struct ivl_peer_info); name is a str."

_lib_lock = threading.Lock()
_lib = None
_lib_path = None


def _candidates():
    env = os.environ.get("IVLINK_LIB")
    if env:
        # An explicit choice: no fallback that would hide a wrong path.
        return [env]
    found = []
    name = ctypes.util.find_library("ivlink")
    if name:
        found.append(name)
    if not _INSTALLED_LIBDIR.startswith("@"):
        found.append(os.path.join(_INSTALLED_LIBDIR, _SONAME))
    else:
        # The source checkout's python/ivlink.py: the default build tree
        # (make build) next to it.
        here = os.path.dirname(os.path.abspath(__file__))
        found.append(os.path.normpath(os.path.join(here, os.pardir, "build", "guest-lib",
                                                   _SONAME)))
    return found


def _load():
    global _lib, _lib_path
    with _lib_lock:
        if _lib is not None:
            return _lib
        tried = []
        for path in _candidates():
            if os.sep in path and not os.path.exists(path):
                tried.append(path + " (missing)")
                continue
            try:
                lib = ctypes.CDLL(path, use_errno=False)
            except OSError as e:
                tried.append("%s (%s)" % (path, e))
                continue
            _declare(lib)
            _lib, _lib_path = lib, path
            return lib
        raise OSError(_errno.ENOENT, "libivlink.so.0 not found (set IVLINK_LIB); tried: "
                      + ", ".join(tried))


def library_path():
    """The path (or soname) of the libivlink loaded, loading it if needed."""
    _load()
    return _lib_path


def _declare(lib):
    vp, i32, u32, i64, sz = (ctypes.c_void_p, ctypes.c_int, ctypes.c_uint32,
                             ctypes.c_int64, ctypes.c_size_t)
    sigs = {
        "ivl_endpoint_open": (i32, [ctypes.POINTER(vp), ctypes.POINTER(_EndpointOpts)]),
        "ivl_endpoint_close": (None, [vp]),
        "ivl_endpoint_id": (u32, [vp]),
        "ivl_endpoint_peers": (i32, [vp, ctypes.POINTER(_PeerInfo), sz]),
        "ivl_endpoint_peer": (i32, [vp, u32, ctypes.POINTER(_PeerInfo)]),
        "ivl_endpoint_fd": (i32, [vp]),
        "ivl_endpoint_process": (i32, [vp]),
        "ivl_channel_open": (i32, [vp, ctypes.c_char_p, u32, ctypes.POINTER(_ChannelOpts),
                                   i64, ctypes.POINTER(vp)]),
        "ivl_channel_close": (i32, [vp]),
        "ivl_channel_shutdown": (i32, [vp, i32]),
        "ivl_channel_set_timeouts": (None, [vp, i64, i64]),
        "ivl_channel_poll": (ctypes.c_uint, [vp, ctypes.c_uint]),
        "ivl_channel_stats": (i32, [vp, ctypes.POINTER(_ChannelStats)]),
        "ivl_send": (ctypes.c_ssize_t, [vp, vp, sz, ctypes.c_uint]),
        "ivl_recv": (ctypes.c_ssize_t, [vp, vp, sz, ctypes.c_uint]),
    }
    for name, (res, args) in sigs.items():
        fn = getattr(lib, name)
        fn.restype = res
        fn.argtypes = args


def _check(rc, what):
    """rc >= 0 passes through; -errno becomes OSError(errno)."""
    if rc < 0:
        err = -rc
        raise OSError(err, "%s: %s" % (what, os.strerror(err)))
    return rc


def _ns(seconds):
    """Seconds (None: forever) to the library's nanoseconds (< 0: forever)."""
    if seconds is None:
        return -1
    if seconds < 0:
        raise ValueError("timeout must be None or >= 0")
    return int(seconds * 1e9)


def _closed(what):
    return OSError(_errno.EBADF, "%s: %s" % (what, os.strerror(_errno.EBADF)))


class Endpoint:
    """One peer of an ivlink region (ivl_endpoint_open).

    uri: "host:/path/to/ivlinkd.sock", "vfio:", "poll:", "auto"; None:
    $IVLINK_ENDPOINT, else "auto". name: the peer-table name (str).
    spin_ns: spin budget of blocking calls (0: the default). connect_timeout:
    seconds for the daemon handshake (None: the library's 5 s). log: a
    callable(level, message) for the library's messages (level 0 error ..
    3 debug); it may run on any thread that calls into the library.
    """

    def __init__(self, uri=None, name=None, spin_ns=0, connect_timeout=None, log=None):
        lib = _load()
        opts = _EndpointOpts()
        opts.uri = uri.encode() if uri is not None else None
        opts.name = name.encode() if name is not None else None
        opts.spin_ns = spin_ns
        opts.connect_timeout_ns = 0 if connect_timeout is None else max(1, _ns(connect_timeout))
        self._log = None
        if log is not None:
            def trampoline(ctx, level, msg, _log=log):
                _log(level, msg.decode(errors="replace"))
            self._log = _LOG_FN(trampoline)  # must outlive the endpoint
            opts.log = self._log
        ep = ctypes.c_void_p()
        _check(lib.ivl_endpoint_open(ctypes.byref(ep), ctypes.byref(opts)), "ivl_endpoint_open")
        self._lib = lib
        self._ep = ep
        self._channels = weakref.WeakSet()

    def _handle(self, what):
        if self._ep is None:
            raise _closed(what)
        return self._ep

    @property
    def id(self):
        """This peer's id in the region."""
        return self._lib.ivl_endpoint_id(self._handle("id"))

    @staticmethod
    def _peer(info):
        return PeerInfo(info.id, info.state, info.epoch, info.pid, info.backend,
                        info.self_pid, info.joined_unix_ns, info.left_unix_ns,
                        info.name.decode(errors="replace"), bool(info.is_self))

    def peers(self):
        """The live (UP) peers, this one included, as PeerInfo, in id order."""
        ep = self._handle("peers")
        n = 16
        while True:
            arr = (_PeerInfo * n)()
            got = _check(self._lib.ivl_endpoint_peers(ep, arr, n), "ivl_endpoint_peers")
            if got <= n:
                return [self._peer(arr[i]) for i in range(got)]
            n = got

    def peer(self, peer_id):
        """One peer-table entry whatever its state (PEER_FREE/UP/GONE)."""
        info = _PeerInfo()
        _check(self._lib.ivl_endpoint_peer(self._handle("peer"), peer_id, ctypes.byref(info)),
               "ivl_endpoint_peer")
        return self._peer(info)

    def fileno(self):
        """A pollable fd (ivl_endpoint_fd); call process() when readable."""
        return _check(self._lib.ivl_endpoint_fd(self._handle("fileno")), "ivl_endpoint_fd")

    def process(self):
        """Handles pending daemon messages and doorbells; the event count."""
        return _check(self._lib.ivl_endpoint_process(self._handle("process")),
                      "ivl_endpoint_process")

    def channel(self, name, remote, **kw):
        """Channel(self, name, remote, **kw)."""
        return Channel(self, name, remote, **kw)

    def close(self):
        """Closes the channels still open, then detaches. Idempotent."""
        if self._ep is None:
            return
        for ch in list(self._channels):
            ch.close()
        self._lib.ivl_endpoint_close(self._ep)
        self._ep = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        if getattr(self, "_ep", None) is not None:
            self.close()


class Channel:
    """A channel named name with peer id remote (ivl_channel_open).

    The remote must open the same name (and mode) towards this peer; the
    call waits up to timeout seconds (None: forever) for it. mode is
    MODE_STREAM (a byte stream) or MODE_MESSAGE (records kept whole);
    ring_size is this side's ring (a power of two >= 4096; 0: 1 MiB).
    send_timeout and recv_timeout apply to the data calls (None: block).
    """

    def __init__(self, endpoint, name, remote, mode=MODE_STREAM, ring_size=0, max_record=0,
                 timeout=None, send_timeout=None, recv_timeout=None):
        ep = endpoint._handle("ivl_channel_open")
        opts = _ChannelOpts(mode=mode, ring_size=ring_size, max_record=max_record)
        ch = ctypes.c_void_p()
        bname = name.encode() if isinstance(name, str) else bytes(name)
        _check(endpoint._lib.ivl_channel_open(ep, bname, remote, ctypes.byref(opts),
                                              _ns(timeout), ctypes.byref(ch)),
               "ivl_channel_open")
        self._lib = endpoint._lib
        self._ch = ch
        self.endpoint = endpoint  # keeps the endpoint alive as long as the channel
        self.name = name
        self.remote = remote
        self.mode = mode
        endpoint._channels.add(self)
        self.set_timeouts(send_timeout, recv_timeout)

    def _handle(self, what):
        if self._ch is None:
            raise _closed(what)
        return self._ch

    def set_timeouts(self, send=None, recv=None):
        """Timeouts of the blocking send and recv calls, in seconds."""
        self._lib.ivl_channel_set_timeouts(self._handle("set_timeouts"), _ns(send), _ns(recv))

    def send(self, data, flags=0):
        """Sends bytes-like data; returns the count sent (ivl_send)."""
        ch = self._handle("send")
        ptr, n, keep = _address(data)
        return _check(self._lib.ivl_send(ch, ptr, n, flags), "ivl_send")

    def sendall(self, data, flags=0):
        """Sends all of data (stream mode), looping over partial sends."""
        ch = self._handle("sendall")
        ptr, n, keep = _address(data)
        off = 0
        while off < n:
            off += _check(self._lib.ivl_send(ch, ptr + off, n - off, flags), "ivl_send")

    def recv(self, bufsize, flags=0):
        """Up to bufsize bytes (stream; b"" at end of stream) or one record."""
        ch = self._handle("recv")
        buf = ctypes.create_string_buffer(bufsize)
        n = _check(self._lib.ivl_recv(ch, buf, bufsize, flags), "ivl_recv")
        return buf.raw[:n]

    def recv_into(self, buffer, nbytes=0, flags=0):
        """Receives into a writable buffer; returns the byte count."""
        ch = self._handle("recv_into")
        mv = memoryview(buffer).cast("B")
        if mv.readonly:
            raise TypeError("recv_into needs a writable buffer")
        n = nbytes or len(mv)
        if n > len(mv):
            raise ValueError("nbytes is larger than the buffer")
        if n == 0:
            return 0
        cbuf = (ctypes.c_char * len(mv)).from_buffer(mv)
        return _check(self._lib.ivl_recv(ch, cbuf, n, flags), "ivl_recv")

    def shutdown(self, how):
        """SHUT_WR: end of stream after the data sent; SHUT_RD; SHUT_RDWR."""
        _check(self._lib.ivl_channel_shutdown(self._handle("shutdown"), how),
               "ivl_channel_shutdown")

    def poll(self, events=POLLIN | POLLOUT):
        """Non-blocking readiness bits (POLLIN, POLLOUT, POLLHUP, POLLERR)."""
        return self._lib.ivl_channel_poll(self._handle("poll"), events)

    def stats(self):
        """The channel's counters (struct ivl_channel_stats) as a dict."""
        st = _ChannelStats()
        _check(self._lib.ivl_channel_stats(self._handle("stats"), ctypes.byref(st)),
               "ivl_channel_stats")
        return {n: getattr(st, n) for n, _ in _ChannelStats._fields_ if n != "reserved0"}

    def close(self):
        """Closes (the remote reads what is left, then EOF). Idempotent."""
        if self._ch is None:
            return
        ch, self._ch = self._ch, None
        self.endpoint._channels.discard(self)
        self._lib.ivl_channel_close(ch)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        if getattr(self, "_ch", None) is not None:
            self.close()


def _address(data):
    """(address, length, keep-alive) of a bytes-like object, without a copy
    for bytes and writable buffers."""
    if isinstance(data, bytes):
        return ctypes.cast(ctypes.c_char_p(data), ctypes.c_void_p).value or 0, len(data), data
    mv = memoryview(data).cast("B")
    if mv.readonly:
        data = mv.tobytes()
        return ctypes.cast(ctypes.c_char_p(data), ctypes.c_void_p).value or 0, len(data), data
    if len(mv) == 0:
        return 0, 0, mv
    cbuf = (ctypes.c_char * len(mv)).from_buffer(mv)
    return ctypes.addressof(cbuf), len(mv), cbuf
