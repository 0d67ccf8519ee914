"""Addresses (spec section 3): URLs parsed, and the ``:authority`` a client sends."""

from __future__ import annotations

import pytest

from libchan.address import authority_of, parse_url


@pytest.mark.parametrize(
    ("url", "authority", "shown"),
    [
        ("tcp://127.0.0.1:9323", "127.0.0.1:9323", "tcp://127.0.0.1:9323"),
        ("tls://example.org:443", "example.org:443", "tls://example.org:443"),
        ("tcp://[::1]:9323", "[::1]:9323", "tcp://[::1]:9323"),
        ("unix:///tmp/chan.sock", "localhost", "unix:///tmp/chan.sock"),
    ],
)
def test_authority_as_spec_3_writes_it(url, authority, shown):
    address = parse_url(url)
    assert authority_of(address) == authority
    assert str(address) == shown


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("http://h:1", "unsupported URL scheme"),
        ("tcp://h", "needs a host and a port"),
        ("tcp://h:x", "bad port"),
        ("unix://", "needs a path"),
    ],
)
def test_bad_urls_say_what_is_wrong(url, message):
    with pytest.raises(ValueError, match=message):
        parse_url(url)
