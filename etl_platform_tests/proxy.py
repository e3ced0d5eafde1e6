"""A TCP proxy the tests can cut, to stop "the server" in the middle of an upload, or slow down.

The server itself (moto) keeps its data in memory, so stopping it would also lose the previous
version; cutting the only network path to it is what a client sees when a server goes away.
``reply_delay`` holds each of the server's replies that long: a slow network in front of a real server.
"""

from __future__ import annotations

import socket
import threading
import time


class CuttableProxy:
    def __init__(self, target_port: int):
        self.target_port = target_port
        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(64)
        self.port = self.listener.getsockname()[1]
        self.up = True
        self.cut_after_bytes: int | None = None  # cut every connection once this many bytes went upstream
        self.upstream_bytes = 0
        self.refused = 0  # connections closed at once while down
        self.reply_delay = 0.0  # seconds each chunk from the server waits before it goes to the client
        self.lock = threading.Lock()
        self.sockets: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if not self.up:
                client.close()
                self.refused += 1
                continue
            upstream = socket.create_connection(("127.0.0.1", self.target_port))
            with self.lock:
                self.sockets += [client, upstream]
            threading.Thread(target=self._pipe, args=(client, upstream, True), daemon=True).start()
            threading.Thread(target=self._pipe, args=(upstream, client, False), daemon=True).start()

    def _pipe(self, source: socket.socket, sink: socket.socket, upstream: bool) -> None:
        try:
            while chunk := source.recv(65536):
                if upstream:
                    with self.lock:
                        self.upstream_bytes += len(chunk)
                        over = self.cut_after_bytes is not None and self.upstream_bytes > self.cut_after_bytes
                    if over:
                        self.down()
                        return
                elif self.reply_delay:
                    time.sleep(self.reply_delay)
                sink.sendall(chunk)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def down(self) -> None:
        """The server is gone: open connections are reset and new ones refused."""
        self.up = False
        with self.lock:
            sockets, self.sockets = self.sockets, []
        for sock in sockets:
            try:
                sock.shutdown(socket.SHUT_RDWR)
                sock.close()
            except OSError:
                pass

    def restore(self) -> None:
        self.cut_after_bytes = None
        self.up = True

    def close(self) -> None:
        self.down()
        self.listener.close()
