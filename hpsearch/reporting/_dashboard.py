"""Serve optuna-dashboard on a study's storage, on loopback unless told otherwise."""

from __future__ import annotations

import socket
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
    """Block serving the dashboard until Ctrl-C; every stored study, per-trial attrs included."""
    from optuna_dashboard import wsgi

    storage = open_storage(storage_url, create=False)
    server = _bind(host, port, f"pick another {arg('port')}")  # before the banner: one line
    try:
        store = open_store(artifacts) if artifacts is not None and artifacts.is_dir() else None
        server.set_app(wsgi(storage, artifact_store=store))
        url = f"http://{host}:{port}/dashboard/"
        print(f"optuna-dashboard on {url} for {masked(storage_url)}", flush=True)
        server.serve_forever()
    except KeyboardInterrupt:
        pass  # Ctrl-C is how a dashboard is stopped
    finally:
        server.server_close()


class Alongside:
    """optuna-dashboard in a background thread of a run: bound at once, served once stored.

    Binding first makes a taken port one line before any trial or file; serving waits for the
    run's storage to exist, and `close` stops it with the run.
    """

    def __init__(self, port: int, host: str = "127.0.0.1") -> None:
        self.host, self.port = host, port
        self.server = _bind(host, port, f"pick another {arg('port')} or drop {arg('dashboard')}")
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


def _bind(host: str, port: int, fix: str) -> _QuietServer:
    """A threading WSGI server bound to host:port (IPv4 or IPv6), or one line with `fix`."""
    try:
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
        kind = _QuietServer6 if family == socket.AF_INET6 else _QuietServer
        return kind((host, port), _QuietHandler)
    except socket.gaierror as exc:
        raise UsageError(
            f"cannot use {arg('host')} {host}: {exc.strerror}; e.g. 127.0.0.1"
        ) from None
    except OSError as exc:
        raise UsageError(
            f"cannot serve the dashboard on {host}:{port}: {exc.strerror}; {fix}"
        ) from None


class _QuietServer(ThreadingMixIn, WSGIServer):
    """One thread per request, so a slow page never blocks the next; none outlives the run."""

    daemon_threads = True


class _QuietServer6(_QuietServer):
    """The same on an IPv6 address (--host ::1)."""

    address_family = socket.AF_INET6


class _QuietHandler(WSGIRequestHandler):
    """No access log: its lines would break the run's progress line."""

    def log_message(self, format: str, *args: Any) -> None:
        """Drop the line."""
