"""Serve optuna-dashboard on a study's storage, on loopback unless told otherwise."""

from __future__ import annotations

import sys
import threading
from pathlib import Path
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer

from hpsearch.errors import UsageError, arg
from hpsearch.storages._artifacts import open_store, store_for
from hpsearch.storages._rdb import masked, open_storage


def serve(
    storage_url: str, host: str = "127.0.0.1", port: int = 8080, artifacts: Path | None = None
) -> None:
    """Block serving the dashboard; every stored study is browsable, per-trial attrs included."""
    from optuna_dashboard import run_server

    storage = open_storage(storage_url, create=False)
    check_listen(host, port)  # before the server's banner, so a bad address is one line
    print(
        f"optuna-dashboard on http://{host}:{port}/dashboard/ for {masked(storage_url)}", flush=True
    )
    try:
        store = open_store(artifacts) if artifacts is not None and artifacts.is_dir() else None
        run_server(storage, host=host, port=port, artifact_store=store)
    except OSError as exc:  # taken between the check and the server's bind
        raise UsageError(
            f"cannot listen on {host}:{port}: {exc.strerror}; pick another {arg('port')}"
        ) from None


def check_listen(host: str, port: int) -> None:
    """Bind the address once, so a bad --host or a taken --port gets the right fix."""
    import socket

    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    except socket.gaierror as exc:
        raise UsageError(
            f"cannot use {arg('host')} {host}: {exc.strerror}; e.g. 127.0.0.1"
        ) from None
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the server does
        try:
            probe.bind(address)
        except OSError as exc:
            raise UsageError(
                f"cannot listen on {host}:{port}: {exc.strerror}; pick another {arg('port')}"
            ) from None


class Alongside:
    """optuna-dashboard in a background thread of a run: bound at once, served once stored.

    Binding first makes a taken port one line before any trial or file; serving waits for the
    run's storage to exist, and `close` stops it with the run.
    """

    def __init__(self, port: int, host: str = "127.0.0.1") -> None:
        self.host, self.port = host, port
        self.server = _bind(host, port)
        self.thread: threading.Thread | None = None

    def start(self, storage_url: str, artifacts: Path) -> None:
        """Serve the run's storage (and its weights) until `close`."""
        from optuna_dashboard import wsgi

        store = store_for(artifacts)
        self.server.set_app(wsgi(open_storage(storage_url, create=False), artifact_store=store))
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        print(f"optuna-dashboard on {self.address} until the run ends", file=sys.stderr, flush=True)

    @property
    def address(self) -> str:
        """The dashboard's URL."""
        return f"http://{self.host}:{self.port}/dashboard/"

    def close(self) -> None:
        """Stop serving and free the port."""
        if self.thread is not None:
            self.server.shutdown()
            self.thread.join()
        self.server.server_close()


def _bind(host: str, port: int) -> _QuietServer:
    """A threading WSGI server bound to host:port, or one line saying the port is taken."""
    try:
        return _QuietServer((host, port), _QuietHandler)
    except OSError as exc:
        raise UsageError(
            f"cannot serve the dashboard on {host}:{port}: {exc.strerror}; pick another "
            f"{arg('port')} or drop {arg('dashboard')}"
        ) from None


class _QuietServer(ThreadingMixIn, WSGIServer):
    """One thread per request, so a slow page never blocks the next; none outlives the run."""

    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    """No access log: its lines would break the run's progress line."""

    def log_message(self, format: str, *args: Any) -> None:
        """Drop the line."""
