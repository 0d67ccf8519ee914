import pytest

from helpers import TRANSPORTS


@pytest.fixture(params=TRANSPORTS)
def transport(request):
    return request.param
