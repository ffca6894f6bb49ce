"""Fixtures for the fleet-side (collector) tests: one private PostgreSQL server per session,
a fresh database per test, and both databases as one parameter (``db_url``)."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "telemetry"))  # telemetry_net (the ack-cutting proxy)


@pytest.fixture(scope="session")
def pg_server():
    """Started once per session (initdb + postgres take a few seconds), stopped at the end."""
    pytest.importorskip("psycopg", reason="psycopg is not installed (the collector extra)")
    from fleet_pg import PgServer

    try:
        server = PgServer()
    except FileNotFoundError as exc:
        pytest.skip(str(exc))
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def pg_url(pg_server, request) -> str:
    """A fresh, empty database for this test."""
    name = re.sub(r"[^a-z0-9_]", "_", request.node.name.lower())[-50:]
    return pg_server.create_db(f"t_{name}")


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request, tmp_path) -> str:
    """The same test on a SQLite file and on a PostgreSQL database."""
    if request.param == "sqlite":
        return str(tmp_path / "collector.db")
    return request.getfixturevalue("pg_url")
