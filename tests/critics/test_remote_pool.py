"""The remote client's keep-alive pool replaces a connection the server dropped with a newly opened one."""
from __future__ import annotations

import http.server
import threading

import pytest

from primo_loop.critics.remote_http import ConnectionPool


class _Hello(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):  # noqa: N802 - http.server's name
        body = b"hello"
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


class _Dropped:
    """An idle connection the server has closed meanwhile: using it resets."""

    sock = None
    timeout = None

    def __init__(self):
        self.closed = False

    def request(self, *args, **kwargs):
        raise ConnectionResetError("connection reset by peer")

    def close(self):
        self.closed = True


@pytest.fixture
def server():
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Hello)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()
    srv.server_close()


def test_a_dropped_idle_connection_is_replaced_by_a_new_one_even_when_others_are_stale_too(server):
    pool = ConnectionPool(server, size=4)
    stale = [_Dropped(), _Dropped()]
    pool._idle.extend(stale)  # two idle connections the server has closed
    status, ctype, body = pool.request("GET", "/x", None, {}, timeout_s=5.0)
    assert (status, body) == (200, b"hello") and ctype == "text/plain"
    assert stale[1].closed and pool.opened == 1  # the retry opened a connection instead of taking another idle one
    pool.close()
