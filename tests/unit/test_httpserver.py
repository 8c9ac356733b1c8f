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


def _serving(server: httpserver.LabHTTPServer):
    import threading

    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    return thread


def _closed_by_server(sock: socket.socket) -> bool:
    """True once the server closes SOCK (reads until EOF; the bound only guards against a hang)."""
    sock.settimeout(60)
    try:
        while sock.recv(65536):
            pass
    except TimeoutError:
        return False
    except ConnectionError:
        pass
    return True


class _KeepAlive(_Hello):
    protocol_version = "HTTP/1.1"  # the connection stays open after the answer, as the venue's does


def test_a_real_backlog_an_idle_timeout_and_bounded_connections():
    import threading

    server = httpserver.bind("127.0.0.1", 0, _KeepAlive, "pick another", idle_timeout_s=0.5, max_connections=20)
    assert server.request_queue_size == httpserver.BACKLOG >= 128
    base = threading.active_count()
    thread = _serving(server)
    clients = []
    try:
        for _ in range(200):  # keep-alive clients that ask once, then sit idle
            sock = socket.create_connection(server.server_address[:2], timeout=60)
            sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            clients.append(sock)
        assert threading.active_count() <= base + 1 + 20  # the serving thread and at most max_connections
        answers = [c.recv(65536) for c in clients]
        assert sum(a.startswith(b"HTTP/1.1 200") for a in answers) >= 20  # kept open until idle
        assert any(a.startswith(b"HTTP/1.1 503") for a in answers)  # beyond the bound: refused, not queued forever
        assert all(_closed_by_server(c) for c in clients)  # the idle ones too, after the timeout
        with urllib.request.urlopen(httpserver.url(server) + "/", timeout=60) as fresh:  # the slots came back
            assert fresh.read() == b"hello\n"
    finally:
        for c in clients:
            c.close()
        server.shutdown()
        thread.join(10)
        server.server_close()


def test_a_stalled_half_sent_request_does_not_hold_a_thread():
    import threading

    from opslab.alerts.receiver import Receiver

    receiver = Receiver(__import__("pathlib").Path("/nonexistent-root"), "127.0.0.1", 0)
    server = receiver.server
    server.idle_timeout_s = 0.5
    base = threading.active_count()
    thread = _serving(server)
    try:
        stalled = [socket.create_connection(server.server_address[:2], timeout=60) for _ in range(5)]
        for s in stalled[:3]:
            s.sendall(b"POST /alerts HTTP/1.1\r\nContent-Length: 100\r\n\r\n{\"ver")  # a body that never completes
        for s in stalled[3:]:
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost")  # a request line and half a header
        assert all(_closed_by_server(s) for s in stalled)
        for _ in range(200):  # the handler threads end once their connection is closed
            if threading.active_count() <= base + 1:
                break
            threading.Event().wait(0.05)
        assert threading.active_count() <= base + 1
    finally:
        for s in stalled:
            s.close()
        server.shutdown()
        thread.join(10)
        server.server_close()


def test_bounded_cuts_long_text_and_says_how_long_it_was():
    assert httpserver.bounded("short") == "short"
    long = "x" * 310_000
    cut = httpserver.bounded(long)
    assert cut.startswith("x" * httpserver.ECHO_CHARS) and "310000 characters" in cut and len(cut) < 300
