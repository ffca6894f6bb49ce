"""A private PostgreSQL server for tests and benchmarks: initdb into a temporary directory,
``postgres`` on 127.0.0.1:<free port> with its socket in that directory, stopped on close.

initdb refuses to run as root, so as root both run as the unprivileged ``postgres`` user
(Debian's package creates it; ``subprocess``'s ``user=`` drops privileges like ``runuser -u``,
and signals then reach the server itself).
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Optional


def pg_bin(name: str) -> Optional[str]:
    found = shutil.which(name)
    if found:
        return found
    cands = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return cands[-1] if cands else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PgServer:
    def __init__(self, *, fsync: bool = False):
        initdb, postgres = pg_bin("initdb"), pg_bin("postgres")
        if not initdb or not postgres:
            raise FileNotFoundError("PostgreSQL is not installed "
                                    "(scripts/setup.d/65-postgresql.sh installs it)")
        user = None
        if os.geteuid() == 0:
            user = "postgres"
            try:
                pw = pwd.getpwnam(user)
            except KeyError:
                raise FileNotFoundError("running as root needs the 'postgres' user "
                                        "(scripts/setup.d/65-postgresql.sh)") from None
        # not under pytest's basetemp: that is 0700 root, which the postgres user cannot enter
        self.dir = Path(tempfile.mkdtemp(prefix="edgert-pg-"))
        data = self.dir / "data"
        if user:
            os.chown(self.dir, pw.pw_uid, pw.pw_gid)
        kw = {"user": user, "group": pw.pw_gid} if user else {}
        env = {"PATH": os.environ.get("PATH", ""), "LC_ALL": "C", "LANG": "C"}
        subprocess.run([initdb, "-D", str(data), "-U", "edgert", "-A", "trust", "-E", "UTF8",
                        "--locale=C", "--no-sync"], check=True, env=env, cwd=self.dir,
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, **kw)
        self.port = _free_port()
        args = [postgres, "-D", str(data), "-k", str(self.dir), "-p", str(self.port),
                "-c", "listen_addresses=127.0.0.1", "-c", "max_connections=200"]
        if not fsync:  # tests: durability of the test cluster itself does not matter
            args += ["-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off"]
        self._log = open(self.dir / "server.log", "wb")  # noqa: SIM115 - close() closes it
        self.proc = subprocess.Popen(args, env=env, cwd=self.dir, stdout=self._log,
                                     stderr=subprocess.STDOUT, **kw)
        self.url = f"postgresql://edgert@127.0.0.1:{self.port}/postgres"
        self._wait()

    def _wait(self, timeout: float = 30.0) -> None:
        import psycopg

        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"postgres exited: {(self.dir / 'server.log').read_text()[-2000:]}")
            try:
                psycopg.connect(self.url, connect_timeout=2).close()
                return
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

    def create_db(self, name: str) -> str:
        """A fresh, empty database on this server; returns its URL."""
        import psycopg

        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
            conn.execute(f'CREATE DATABASE "{name}"')
        return f"postgresql://edgert@127.0.0.1:{self.port}/{name}"

    def close(self) -> None:
        self.proc.send_signal(signal.SIGINT)  # "fast" shutdown: disconnects leftover clients
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._log.close()
        shutil.rmtree(self.dir, ignore_errors=True)
