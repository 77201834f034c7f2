from __future__ import annotations

import pytest

from sprechstunde.web.core.app import create_app
from sprechstunde.web.core.config import Config
from sprechstunde.web.core.services import SERVICES
from tests.browser_support import launched_browser, running_server


@pytest.fixture
def config(tmp_path) -> Config:
    return Config(data_dir=tmp_path / "data", media_addresses=["127.0.0.1"], demo=False)


@pytest.fixture
async def client(aiohttp_client, config):
    return await aiohttp_client(create_app(config))


@pytest.fixture
def services(client):
    return client.app[SERVICES]


@pytest.fixture
async def room_links(services):
    """A fresh room's links (advisor_url, citizen_url, …) as `room create` prints them."""
    room = await services.rooms.create("vhs", 3600)
    return services.rooms.links(room, "http://test").as_json()


def token_of(url: str) -> str:
    return url.rsplit("/join/", 1)[1]


@pytest.fixture(scope="module")
def browser():
    """Headless chromium shared by the tests of one module (tests/browser_support.py)."""
    with launched_browser() as browser:
        yield browser


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """`sprechstunde serve` as a real process, shared by the tests of one module."""
    with running_server(tmp_path_factory.mktemp("server")) as server:
        yield server
