"""A TCP proxy on 127.0.0.1 that a test can cut, black-hole and restore, to take a real server
"down" for one client without touching the server other tests use.

* :meth:`TcpProxy.cut` refuses: open connections are closed, new ones too (a refused store).
* :meth:`TcpProxy.blackhole` is a silent network partition: nothing is forwarded any more in
  either direction and nothing is answered, no FIN and no RST; new connections are accepted
  by the kernel and then hear nothing (so a client's connect timeout is what ends them).
* :meth:`TcpProxy.restore` heals either. Connections that lived through a black hole lost
  data, so they are reset (RST), as a server that forgot them answers the first packet that
  gets through; new connections work again.

Userspace cannot withhold TCP acknowledgements (the kernel sends them), so a black hole here
does not trigger a client's ``tcp_user_timeout`` or keepalive failure: only application-level
deadlines end a call that hangs on it.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import threading


def _reset(s: socket.socket) -> None:
    """Close with RST (linger 0); the shutdown first wakes the thread blocked reading it."""
    with contextlib.suppress(OSError):
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    with contextlib.suppress(OSError):
        s.shutdown(socket.SHUT_RDWR)
    s.close()


class TcpProxy:
    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(128)
        self.port = self._listener.getsockname()[1]
        self._mode = "up"  # up | cut | blackhole
        self._lock = threading.Lock()
        self._sockets: set[socket.socket] = set()
        #: Sockets that saw a black hole: reset on restore.
        self._poisoned: set[socket.socket] = set()
        self._closing = False
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    @property
    def mode(self) -> str:
        return self._mode

    def _accept(self) -> None:
        while not self._closing:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            with self._lock:
                mode = self._mode
            if mode == "cut":
                client.close()
                continue
            if mode == "blackhole":  # hold it, say nothing
                with self._lock:
                    self._sockets.add(client)
                    self._poisoned.add(client)
                threading.Thread(target=self._swallow, args=(client,), daemon=True).start()
                continue
            try:
                upstream = socket.create_connection(self.target, timeout=3)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            with self._lock:
                self._sockets.update((client, upstream))
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    def _swallow(self, source: socket.socket) -> None:
        try:
            while source.recv(65536):
                pass
        except OSError:
            pass
        finally:
            source.close()
            with self._lock:
                self._sockets.discard(source)
                self._poisoned.discard(source)

    def _pipe(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while True:
                data = source.recv(65536)
                if not data:
                    break
                with self._lock:
                    dropped = self._mode == "blackhole" or source in self._poisoned
                    if dropped:
                        self._poisoned.update((source, sink))
                if not dropped:
                    sink.sendall(data)
        except OSError:
            pass
        finally:
            for s in (source, sink):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
                s.close()
            with self._lock:
                for s in (source, sink):
                    self._sockets.discard(s)
                    self._poisoned.discard(s)

    def cut(self) -> None:
        """Refuse new connections and break the open ones."""
        with self._lock:
            self._mode = "cut"
            sockets = list(self._sockets)
        for s in sockets:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            s.close()

    def blackhole(self) -> None:
        """Stop forwarding and answering anything, silently (a network partition)."""
        with self._lock:
            self._mode = "blackhole"
            self._poisoned.update(self._sockets)

    def restore(self) -> None:
        with self._lock:
            self._mode = "up"
            poisoned = list(self._poisoned)
            self._poisoned.clear()
        for s in poisoned:
            _reset(s)

    def close(self) -> None:
        self._closing = True
        self.cut()
        self._listener.close()
