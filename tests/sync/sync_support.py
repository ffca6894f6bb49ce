"""Helpers shared by the sync suites (importable: pytest puts this directory on sys.path)."""

from __future__ import annotations

from http.server import SimpleHTTPRequestHandler


class Quiet(SimpleHTTPRequestHandler):
    """A static file server that keeps the test output clean."""

    def log_message(self, *args):
        pass
