"""Run the trainer app on a background thread (the CLI, the tests and the benchmark):
uvicorn serving :func:`needleguide.app.server.create_app` on ``host:port`` (port 0: any
free port, see :attr:`AppServer.port`)."""

from __future__ import annotations

import secrets
import threading
import time

from needleguide.app.server import create_app
from needleguide.app.store import SessionStore
from needleguide.errors import UserError


class AppServer:
    """``start()`` returns once the socket listens; ``url`` carries the token."""

    def __init__(self, host: str = "127.0.0.1", port: int = 8765, token: str | None = None,
                 store: SessionStore | None = None, fps: float = 25.0):
        import uvicorn

        self.host = host
        self.token = token or secrets.token_urlsafe(24)
        self.store = store if store is not None else SessionStore()
        self.app = create_app(self.token, self.store, fps=fps)
        cfg = uvicorn.Config(self.app, host=host, port=int(port), log_level="warning",
                             ws="websockets-sansio", lifespan="on", access_log=False)
        self.server = uvicorn.Server(cfg)
        self._thread: threading.Thread | None = None
        self.port = int(port)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/?token={self.token}"

    def start(self, timeout_s: float = 20.0) -> AppServer:
        self._thread = threading.Thread(target=self.server.run, name="needleguide-app",
                                        daemon=True)
        self._thread.start()
        t_end = time.monotonic() + timeout_s
        while not self.server.started:
            if not self._thread.is_alive():
                raise UserError(f"--port: could not listen on {self.host}:{self.port} "
                                "(in use?)")
            if time.monotonic() > t_end:
                raise TimeoutError("the app server did not start")
            time.sleep(0.02)
        sock = self.server.servers[0].sockets[0]
        self.port = int(sock.getsockname()[1])
        return self

    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def stop(self) -> None:
        self.server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10.0)
        self.store.close_all()
