"""A peer whose clock is off: answers `GET /api/ping` like the generic connectors' peers, with
its `Date` header OFFSET seconds away from the real time. Run: `python skewed_peer.py PORT
OFFSET` (a real HTTP server in its own process, for `finoa doctor`'s clock check)."""

from __future__ import annotations

import sys
import time
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class SkewedPing(BaseHTTPRequestHandler):
    offset = 0.0

    def date_time_string(self, timestamp: float | None = None) -> str:
        return formatdate(time.time() + self.offset, usegmt=True)

    def do_GET(self) -> None:  # noqa: N802 - the http.server hook's name
        known = self.path == "/api/ping"
        body = b'{"ok": true}' if known else b'{"title": "Not Found"}'
        self.send_response(200 if known else 404)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        """Quiet: the test reads the doctor's output, not the peer's."""


if __name__ == "__main__":
    SkewedPing.offset = float(sys.argv[2])
    ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), SkewedPing).serve_forever()
