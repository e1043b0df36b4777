"""A TCP proxy in front of the test PostgreSQL that can stop answering, as a paused server or a
network that silently drops packets would: connections are still accepted and what clients send
is read, but nothing is forwarded either way until :meth:`PausableProxy.resume`. It can also go
down (:meth:`PausableProxy.cut`): every connection is closed and new ones are closed at once, as
while the server restarts."""

from __future__ import annotations

import socket
import threading
from urllib.parse import urlsplit

__all__ = ("PausableProxy",)


class PausableProxy:
    """Forwards ``127.0.0.1:<port>`` to the server of ``url``; :attr:`url` names the same
    database through the proxy. Counts the connections it accepted."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        assert parts.hostname is not None
        assert parts.port is not None
        self.target = (parts.hostname, parts.port)
        self.flowing = threading.Event()
        self.flowing.set()
        self.accepted = 0
        self.down = False
        self._closed = False
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self.listener.getsockname()[1]
        self.url = url.replace(f":{parts.port}/", f":{self.port}/", 1)
        threading.Thread(target=self._accept, daemon=True).start()

    def pause(self) -> None:
        """Stop answering (nothing is forwarded; new connections get no reply)."""
        self.flowing.clear()

    def resume(self) -> None:
        """Deliver what was held (unless cut) and answer again."""
        self.down = False
        self.flowing.set()

    def cut(self) -> None:
        """Go down: close every connection; new ones are closed at once until :meth:`resume`."""
        self.down = True
        with self._lock:
            sockets, self._sockets = self._sockets, []
        for sock in sockets:
            _shut(sock)
            sock.close()

    def _keep(self, sock: socket.socket) -> None:
        with self._lock:
            self._sockets.append(sock)

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            self.accepted += 1
            if self.down:
                _shut(client)
                client.close()
                continue
            self._keep(client)
            threading.Thread(target=self._connect, args=(client,), daemon=True).start()

    def _connect(self, client: socket.socket) -> None:
        self.flowing.wait()  # paused: the client's connection is accepted, and nothing more
        if self._closed or self.down:
            _shut(client)
            client.close()
            return
        try:
            server = socket.create_connection(self.target)
        except OSError:
            client.close()
            return
        self._keep(server)
        threading.Thread(target=self._pump, args=(client, server), daemon=True).start()
        threading.Thread(target=self._pump, args=(server, client), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                self.flowing.wait()
                dst.sendall(data)
        except OSError:
            pass
        for sock in (src, dst):
            _shut(sock)

    def close(self) -> None:
        """Stop accepting and cut every connection (their server sessions end)."""
        self._closed = True
        self.listener.close()
        self.flowing.set()
        with self._lock:
            sockets, self._sockets = self._sockets, []
        for sock in sockets:
            _shut(sock)
            sock.close()


def _shut(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
