import pytest

from helpers import TRANSPORTS
from interop.recordings import RecordingError


@pytest.fixture(params=TRANSPORTS)
def transport(request):
    return request.param


@pytest.fixture(params=["h2", "spdy"])
def profile(request):
    """The wire profile: HTTP/2 + CBOR, or SPDY/3.1 + msgpack (Go libchan's)."""
    return request.param


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item):
    """A recording the harness cannot interpret fails with a message that says so (file, line)."""
    try:
        return (yield)
    except RecordingError as exc:
        pytest.fail(str(exc), pytrace=False)
