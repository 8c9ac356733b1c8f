"""The lab's HTTP server class: client hang-ups are quiet, real handler errors are not, and a
busy port is one clear input error."""

from __future__ import annotations

import socket
import urllib.request
from http.server import BaseHTTPRequestHandler

import pytest

from opslab import httpserver
from opslab.errors import InputError


class _Hello(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = b"hello\n"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format, *args):
        pass


def _raise_and_report(server: httpserver.LabHTTPServer, exc: BaseException) -> None:
    try:
        raise exc
    except BaseException:  # handle_error reads the exception being handled, as socketserver calls it
        server.handle_error(None, ("127.0.0.1", 1))


def test_client_hangups_are_quiet_and_other_errors_are_not(capsys):
    server = httpserver.bind("127.0.0.1", 0, _Hello, "pick another")
    try:
        _raise_and_report(server, BrokenPipeError(32, "Broken pipe"))
        _raise_and_report(server, ConnectionResetError(104, "Connection reset by peer"))
        assert capsys.readouterr().err == ""
        _raise_and_report(server, ValueError("a real bug"))
        assert "ValueError: a real bug" in capsys.readouterr().err
    finally:
        server.server_close()


@pytest.mark.parametrize("host", ["127.0.0.1", "::1"])
def test_serves_on_loopback_v4_and_v6(host):
    import threading

    if host == "::1" and not socket.has_ipv6:
        pytest.skip("this machine has no IPv6 loopback")
    server = httpserver.bind(host, 0, _Hello, "pick another")
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = httpserver.url(server)
        assert url.startswith("http://[::1]:" if host == "::1" else "http://127.0.0.1:")
        with urllib.request.urlopen(url, timeout=10) as resp:
            assert resp.read() == b"hello\n"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


def test_a_busy_port_is_one_input_error():
    first = httpserver.bind("127.0.0.1", 0, _Hello, "pick another")
    try:
        port = first.server_address[1]
        with pytest.raises(InputError, match=rf"^--port {port}: cannot listen on 127.0.0.1 \(.+\); pick another$"):
            httpserver.bind("127.0.0.1", port, _Hello, "pick another")
    finally:
        first.server_close()


@pytest.mark.parametrize("port", [-1, 65536])
def test_a_port_out_of_range_is_one_input_error(port):
    with pytest.raises(InputError, match=rf"^--port {port}: out of range \(0-65535\)$"):
        httpserver.bind("127.0.0.1", port, _Hello, "pick another")
