#!/usr/bin/env python3
"""Wait until the database in HPSEARCH_STORAGE accepts TCP connections, then exit 0.

Why: `hpsearch create` and `hpsearch dashboard` fail at once when the database is not up yet,
and in a Job with `restartPolicy: Never` a failed init container fails the whole pod (one try
of `backoffLimit` spent on PostgreSQL still starting). This init container runs first and
waits instead. A TCP answer means the real server is up: during its first-start
initialisation the postgres image listens on its socket only. Credentials are not checked
here (a wrong password is `hpsearch create`'s clear one-line error) and never printed.

Environment: HPSEARCH_STORAGE (a SQLAlchemy URL), WAIT_SECONDS (default 600).
"""

from __future__ import annotations

import os
import socket
import sys
import time
from urllib.parse import urlsplit

DEFAULT_PORTS = {"postgresql": 5432, "mysql": 3306, "mariadb": 3306}


def address(url: str) -> tuple[str, int]:
    """(host, port) of a SQLAlchemy URL, never its credentials."""
    parts = urlsplit(url)
    backend = parts.scheme.split("+")[0]
    if not parts.hostname:
        raise ValueError(f"HPSEARCH_STORAGE names no database host (a {backend or '?'} URL)")
    return parts.hostname, parts.port or DEFAULT_PORTS.get(backend, 5432)


def wait(host: str, port: int, seconds: float, pause: float = 2.0) -> bool:
    """True as soon as host:port accepts a connection, False after `seconds` without one."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            socket.create_connection((host, port), timeout=min(pause, 5.0)).close()
            return True
        except OSError:  # refused, unreachable, or a name not resolved yet
            if time.monotonic() + pause > deadline:
                return False
            time.sleep(pause)


def main() -> int:
    """Exit status 0 once the database answers, 1 with one line when it never does."""
    try:
        host, port = address(os.environ.get("HPSEARCH_STORAGE", ""))
        seconds = float(os.environ.get("WAIT_SECONDS", "600"))
    except ValueError as exc:
        print(f"wait-for-database: {exc}", file=sys.stderr)
        return 1
    print(f"wait-for-database: waiting for {host}:{port}", flush=True)
    if wait(host, port, seconds):
        print(f"wait-for-database: {host}:{port} answers", flush=True)
        return 0
    print(
        f"wait-for-database: {host}:{port} did not answer within {seconds:g} s; check the "
        "database pod (kubectl get pods) and the host in the Secret's url",
        file=sys.stderr,
    )
    return 1


if __name__ == "__main__":
    sys.exit(main())
