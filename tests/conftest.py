import pytest

import libchan.peerlog

from helpers import TRANSPORTS
from interop.recordings import RecordingError


@pytest.fixture(autouse=True)
def _fresh_peer_log_windows():
    """Each test sees every peer-log line it provokes (the rate limit is process-wide)."""
    libchan.peerlog.reset()
    yield


@pytest.fixture(params=TRANSPORTS)
def transport(request):
    return request.param


@pytest.fixture(params=["h2", "spdy"])
def profile(request):
    """The wire profile: HTTP/2 + CBOR, or SPDY/3.1 + msgpack (Go libchan's)."""
    return request.param


def _recording_error(exc: BaseException) -> RecordingError | None:
    if isinstance(exc, RecordingError):
        return exc
    if isinstance(exc, BaseExceptionGroup):  # raised inside a trio nursery
        for sub in exc.exceptions:
            found = _recording_error(sub)
            if found is not None:
                return found
    return None


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item):
    """A recording the harness cannot interpret fails with a message that says so (file, line)."""
    try:
        return (yield)
    except BaseException as exc:
        found = _recording_error(exc)
        if found is None:
            raise
    pytest.fail(str(found), pytrace=False)  # outside the except: no chained traceback through the harness
