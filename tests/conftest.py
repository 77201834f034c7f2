from __future__ import annotations

import logging

import pytest

from sprechstunde.web.core.app import create_app
from sprechstunde.web.core.config import Config
from sprechstunde.web.core.services import SERVICES
from tests.browser_support import launched_browser, running_server


@pytest.fixture(autouse=True)
def root_logging_kept():
    """A test that runs `main(["serve", …])` in this process sets up `serve`'s root logging: a handler on
    the stderr pytest captured for that test, and level INFO. Left behind, every later INFO record (aioice
    logs each ICE check) failed to write to the closed capture and printed a stack trace instead, for the
    rest of the suite. What a test added is taken away again (pytest's own capture handlers stay)."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in list(root.handlers):
        if type(handler) is logging.StreamHandler and handler not in handlers:
            root.removeHandler(handler)
    root.setLevel(level)


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
