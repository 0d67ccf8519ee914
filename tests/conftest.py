import pytest

from helpers import TRANSPORTS


@pytest.fixture(params=TRANSPORTS)
def transport(request):
    return request.param


@pytest.fixture(params=["h2", "spdy"])
def profile(request):
    """The wire profile: HTTP/2 + CBOR, or SPDY/3.1 + msgpack (Go libchan's)."""
    return request.param
