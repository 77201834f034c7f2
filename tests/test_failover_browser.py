"""Issue 21, failover, with the shipped page: kill -9 of the process hosting the consultation, behind
`serve --workers 2` or behind deploy/nginx.conf in front of two `serve` processes — both Chromium pages decode
video again within 3 s, without showing the other person leave and come back (bench/failover.py measures
the median of five). Its own module: the module-scoped Chromium (tests/conftest.py `browser`) runs
Playwright's sync API, which must not share a module with the asyncio tests of tests/test_failover.py.
"""

from __future__ import annotations

import pytest

from bench.failover import check, one_run, redis_server


@pytest.mark.browser
@pytest.mark.parametrize("proxy", ["workers", "nginx"])
def test_both_pages_see_each_other_again_within_3_s_after_kill_9(browser, tmp_path, proxy):
    """The shipped page on Redis (a throwaway redis-server when none runs), behind `serve --workers 2`
    (its first process relays to the second, which is killed) or behind deploy/nginx.conf in front of
    two `serve` processes (the one hosting the room is killed)."""
    with redis_server() as redis_url:
        run = one_run(browser, redis_url, tmp_path, proxy=proxy)
    print(
        f"behind {proxy}: both pages decode video again {run['seconds']} s after kill -9 ({run['per_page']})"
    )
    assert check(run) == [], run
    assert not run["page_errors"], run["page_errors"]
    assert run["seconds"] < 3.0, run


@pytest.mark.browser
def test_a_chat_message_its_node_never_stored_is_kept_once_after_the_move(browser, tmp_path):
    """The citizen writes just before the kill -9, while the store takes no write (Redis paused): the
    advisor sees it live, the citizen's page marks it "wird gesendet …"; after the move the page sends
    it again by itself, the server keeps it, and each page shows it exactly once."""
    with redis_server() as redis_url:
        run = one_run(browser, redis_url, tmp_path, proxy="workers", chat=True)
    print(f"chat across the kill: {run['chat']}")
    assert check(run) == [], run
    assert not run["page_errors"], run["page_errors"]
    assert run["chat"]["pending_before_kill"] == 1, run["chat"]
    assert run["chat"]["pending_after"] == 0, run["chat"]
    assert run["chat"]["shown"] == {"citizen": 1, "advisor": 1}, run["chat"]
    assert run["chat"]["stored"] == 1, run["chat"]
