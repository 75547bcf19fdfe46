"""Serve optuna-dashboard on a study's storage, on loopback unless told otherwise."""

from __future__ import annotations

from pathlib import Path

from hpsearch.errors import UsageError, arg
from hpsearch.storages._artifacts import open_store
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
