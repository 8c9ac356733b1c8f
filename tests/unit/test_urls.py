"""The probe's loopback URL contract: every refused form exits 2 before any socket exists."""

from __future__ import annotations

import socket

import pytest

from opslab import urls
from opslab.errors import InputError

ACCEPTED = {
    "http://127.0.0.1": ("127.0.0.1", 80, "/"),
    "http://127.0.0.1:8080/api/v3/ping": ("127.0.0.1", 8080, "/api/v3/ping"),
    "https://localhost:8443/x?y=1&z=a@b": ("127.0.0.1", 8443, "/x?y=1&z=a@b"),
    "http://[::1]:9/": ("::1", 9, "/"),
    "http://localhost?q=1": ("127.0.0.1", 80, "/?q=1"),
}

REFUSED = [
    "http://example.com/", "http://10.0.0.1/", "http://192.168.1.1/", "http://8.8.8.8/",
    "http://user@127.0.0.1/", "http://127.0.0.1@example.com/", "http://user:pw@localhost/",
    "http://2130706433/", "http://0177.0.0.1/", "http://0x7f.0.0.1/", "http://0x7f000001/", "http://127.1/", "http://127.0.1/",
    "http://127.000.000.001/", "http://127.0.0.2/", "http://[::ffff:127.0.0.1]/", "http://[0:0:0:0:0:0:0:1]/", "http://[::1%25eth0]/",
    "ftp://127.0.0.1/", "file:///etc/passwd", "gopher://127.0.0.1/", "HTTP://127.0.0.1/", "//127.0.0.1/", "127.0.0.1:80",
    "http://127.0.0.1 /", " http://127.0.0.1/", "http://127.0.0.1/\n", "http://127.0.0.1/a\tb", "http://127.0.0.1/\x00",
    "http://127.0.0.1\\@example.com/", "http://127.0.0.1/#@example.com", "http://127.0.0.1#.example.com",
    "http://127.0.0.1.example.com/", "http://localhost.example.com/", "http://localhost:0/", "http://localhost:65536/",
    "http://localhost:99999/", "http://127.0.0.1:/", "http://127.0.0.1:08080/", "http://127.0.0.1//example.com/",
    "http://ｌocalhost/", "http://127.0.0.1/é", "",
]


@pytest.mark.parametrize("url", sorted(ACCEPTED))
def test_accepted(url):
    parsed = urls.parse(url)
    assert (parsed.address, parsed.port, parsed.path) == ACCEPTED[url]


@pytest.mark.parametrize("url", REFUSED)
def test_refused_before_any_socket(url, monkeypatch):
    def no_network(*args, **kwargs):
        raise AssertionError("a socket was created while validating a URL")

    monkeypatch.setattr(socket, "socket", no_network)
    monkeypatch.setattr(socket, "getaddrinfo", no_network)
    with pytest.raises(InputError) as err:
        urls.parse(url)
    assert str(err.value).startswith("--url: ") and "\n" not in str(err.value)


def test_cli_refuses_before_reading_the_spec(lab, tmp_path):
    result = lab("connectivity", "probe", "--spec", str(tmp_path / "missing.yaml"), "--url", "http://example.com/")
    assert result.code == 2 and result.err.startswith("error: --url: 'http://example.com/'") and result.err.count("\n") == 1
    assert not lab.root.exists()
