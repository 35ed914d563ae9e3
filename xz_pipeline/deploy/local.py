"""Throwaway PostgreSQL and Redis servers on loopback, for the integration tests and the benches.

Each lives in a temporary directory on a free 127.0.0.1 port and is stopped (and its directory removed) when
its `with` block ends, failure or not. `initdb` refuses to run as root, so as root the cluster belongs to
`nobody`; Debian's `postgresql` and `redis-server` packages provide the binaries (`make test-integration`
installs them).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

PG_BIN_DIRS = sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)  # the newest major first
START_TIMEOUT = 60.0


class MissingServer(RuntimeError):
    """A server binary is not installed."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _pg_tool(name: str) -> str:
    for directory in PG_BIN_DIRS:
        if (directory / name).exists():
            return str(directory / name)
    found = shutil.which(name)
    if not found:
        raise MissingServer(
            f"{name} not found: install Debian's postgresql package (make test-integration does)"
        )
    return found


@dataclass(frozen=True)
class Postgres:
    """A running throwaway cluster: `url` is a SQLAlchemy/psycopg2 URL of its `dagster` database."""

    url: str
    port: int
    data: Path

    def query(self, sql: str, params: tuple = (), database: str = "dagster") -> list[tuple]:
        import psycopg2

        with contextlib.closing(psycopg2.connect(self.database_url(database))) as con, con.cursor() as cur:
            cur.execute(sql, params)
            return cur.fetchall()

    def database_url(self, name: str) -> str:
        return f"{self.url.rsplit('/', 1)[0]}/{name}"

    def create_database(self, name: str) -> str:
        """A new empty database (one per test keeps their runs apart); returns its URL."""
        import psycopg2

        with contextlib.closing(psycopg2.connect(self.database_url("postgres"))) as con:
            con.autocommit = True
            with con.cursor() as cur:
                cur.execute(f'create database "{name}"')
        return self.database_url(name)


@contextlib.contextmanager
def postgres(user: str = "nobody") -> Iterator[Postgres]:
    """initdb, pg_ctl start on a free loopback port (trust auth, no unix socket outside the temp dir), a
    `dagster` database; pg_ctl stop (immediate) and the directory removed at the end."""
    initdb, pg_ctl = _pg_tool("initdb"), _pg_tool("pg_ctl")
    as_user = ["runuser", "-u", user, "--"] if os.geteuid() == 0 else []
    root = Path(tempfile.mkdtemp(prefix="xz-pg-"))
    data, port = root / "data", free_port()
    if as_user:
        shutil.chown(root, user)
    run = dict(cwd=root, check=True, capture_output=True, text=True)  # noqa: C408
    started = False
    try:
        subprocess.run([*as_user, initdb, "-D", str(data), "-U", "xz", "--auth=trust", "-E", "UTF8",
                        "--no-instructions"], **run)  # fmt: skip
        options = f"-c listen_addresses=127.0.0.1 -p {port} -k {root} -c fsync=off"
        subprocess.run([*as_user, pg_ctl, "-D", str(data), "-o", options, "-l", str(root / "server.log"),
                        "-w", "-t", str(int(START_TIMEOUT)), "start"], **run)  # fmt: skip
        started = True
        server = Postgres(f"postgresql://xz@127.0.0.1:{port}/dagster", port, data)
        server.create_database("dagster")
        yield server
    except subprocess.CalledProcessError as exc:
        raise RuntimeError(f"{Path(exc.cmd[len(as_user)]).name} failed: {exc.stderr.strip()[-400:]}") from exc
    finally:
        if started:
            subprocess.run([*as_user, pg_ctl, "-D", str(data), "-m", "immediate", "-w", "stop"],
                           cwd=root, capture_output=True, check=False)  # fmt: skip
        shutil.rmtree(root, ignore_errors=True)


@dataclass(frozen=True)
class Redis:
    url: str
    port: int
    pid: int


@contextlib.contextmanager
def redis() -> Iterator[Redis]:
    """redis-server on a free loopback port, nothing saved to disk; SIGTERM (then SIGKILL) at the end."""
    binary = shutil.which("redis-server")
    if not binary:
        raise MissingServer(
            "redis-server not found: install Debian's redis-server package (make test-integration does)"
        )
    root = Path(tempfile.mkdtemp(prefix="xz-redis-"))
    port = free_port()
    proc = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
         "--dir", str(root), "--logfile", str(root / "redis.log")],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                s.sendall(b"PING\r\n")
                if s.recv(16).startswith(b"+PONG"):
                    break
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"redis-server did not start: see {root / 'redis.log'}")
            time.sleep(0.05)
        yield Redis(f"redis://127.0.0.1:{port}/0", port, proc.pid)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        shutil.rmtree(root, ignore_errors=True)
