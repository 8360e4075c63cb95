"""The in-flight window: priority and FIFO order of waiters, the limit under load, cancellation, AIMD."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Coroutine
from typing import Any, TypeVar

import pytest

from generator.teachers.window import Window, merge_reports

T = TypeVar("T")


def run(coro: Coroutine[Any, Any, T]) -> T:
    """asyncio.run with a deadline: a window that loses a slot fails the test instead of hanging it."""
    return asyncio.run(asyncio.wait_for(coro, timeout=10))


async def settle() -> None:
    """Let every ready task run until it blocks again."""
    for _ in range(5):
        await asyncio.sleep(0)


async def order_served(window: Window, priorities: list[int]) -> list[int]:
    """Index of each waiter in the order it got a slot; a holder keeps the window full meanwhile."""
    served: list[int] = []
    release = asyncio.Event()

    async def hold() -> None:
        async with window.slot(0):
            await release.wait()

    async def wait(i: int, priority: int) -> None:
        async with window.slot(priority):
            served.append(i)
            await asyncio.sleep(0)

    holders = [asyncio.create_task(hold()) for _ in range(window.current)]
    await settle()
    waiters = []
    for i, p in enumerate(priorities):
        waiters.append(asyncio.create_task(wait(i, p)))
        await settle()  # arrival order is creation order
    assert served == [], "the window is full: nobody gets in before a release"
    release.set()
    await asyncio.gather(*holders, *waiters)
    return served


def test_waiters_are_served_lowest_priority_first():
    served = run(order_served(Window(1), [2, 0, 3, 1]))
    assert served == [1, 3, 0, 2]  # the waiters of priority 0, 1, 2, 3


def test_ties_are_served_in_arrival_order():
    assert run(order_served(Window(1), [0] * 6)) == [0, 1, 2, 3, 4, 5]
    assert run(order_served(Window(2), [1, 0, 1, 0, 1])) == [1, 3, 0, 2, 4]


def test_limit_is_respected_under_load():
    window = Window(5)
    inside = peak = 0

    async def one(i: int) -> None:
        nonlocal inside, peak
        async with window.slot(i % 3):
            inside += 1
            peak = max(peak, inside)
            await asyncio.sleep(random.choice([0, 0, 0.001]))
            inside -= 1

    async def go() -> None:
        await asyncio.gather(*(one(i) for i in range(300)))

    run(go())
    assert peak == 5
    assert window.inside == 0 and not window._waiters


def test_cancelled_waiter_neither_leaks_nor_steals_a_slot():
    async def go() -> None:
        window = Window(1)
        release = asyncio.Event()
        served: list[str] = []

        async def hold() -> None:
            async with window.slot(0):
                await release.wait()

        async def wait(name: str, priority: int) -> None:
            async with window.slot(priority):
                served.append(name)

        holder = asyncio.create_task(hold())
        await settle()
        first = asyncio.create_task(wait("first", 0))
        second = asyncio.create_task(wait("second", 1))
        await settle()
        first.cancel()  # cancelled while waiting: its place goes to the next waiter
        await settle()
        assert first.cancelled() and window.inside == 1
        release.set()
        await asyncio.gather(holder, second)
        assert served == ["second"] and window.inside == 0 and not window._waiters

    run(go())


@pytest.mark.parametrize(
    "cancel_while_held",
    [
        pytest.param(False, id="cancelled-as-it-is-handed-the-slot-passes-it-on"),
        pytest.param(True, id="cancelled-while-the-slot-frees-is-skipped"),
    ],
)
def test_first_of_two_waiters_cancelled_around_a_release(cancel_while_held: bool):
    """Cancelled after the holder leaves (the slot was handed to `first` on the way out, before it could
    run), or before it leaves (not yet told the slot frees): either way the slot goes to `second`."""

    async def go() -> None:
        window = Window(1)
        served: list[str] = []

        async def wait(name: str) -> None:
            async with window.slot(0):
                served.append(name)

        async with window.slot(0):
            first = asyncio.create_task(wait("first"))
            second = asyncio.create_task(wait("second"))
            await settle()
            if cancel_while_held:
                first.cancel()
        if not cancel_while_held:
            first.cancel()
        await asyncio.gather(first, second, return_exceptions=True)
        assert first.cancelled() and served == ["second"]
        assert window.inside == 0 and not window._waiters

    run(go())


def test_cancelled_holder_gives_its_slot_back():
    async def go() -> None:
        window = Window(2)

        async def hold() -> None:
            async with window.slot(0):
                await asyncio.sleep(10)

        tasks = [asyncio.create_task(hold()) for _ in range(5)]
        await settle()
        assert window.inside == 2
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        assert window.inside == 0 and not window._waiters
        async with window.slot(0):  # and the window still works
            assert window.inside == 1

    run(go())


def test_window_made_outside_a_loop_works_in_several():
    window = Window(1)

    async def go() -> None:
        await asyncio.gather(*(one() for _ in range(3)))

    async def one() -> None:
        async with window.slot(0):
            await asyncio.sleep(0)

    run(go())
    run(go())
    assert window.inside == 0


def test_429_halves_the_window_once_per_burst():
    window = Window(16, floor=3)
    window.rate_limited()
    assert window.current == 8 and window.decreases == 1
    for _ in range(10):  # the rest of the same burst: sent under the old window of 16
        window.rate_limited()
    assert window.current == 8 and window.decreases == 1
    for _ in range(5):  # 1 + 10 + 5 = the 16 answers sent before the cut
        window.succeeded(0.1)
    window.rate_limited()  # a new burst
    assert window.current == 4 and window.decreases == 2
    for _ in range(7):
        window.rate_limited()
    window.rate_limited()
    assert window.current == 3, "never below the floor"
    assert window.report() == {
        "limit": 16,
        "current": 3,
        "lowest": 3,
        "decreases": 3,
        "increases": 0,
        "rate_limited": 20,
    }


def test_rate_limited_counts_every_429_of_an_answer():
    window = Window(8)
    window.rate_limited(3)
    assert window.current == 4 and window.decreases == 1 and window.report()["rate_limited"] == 3


def test_successes_grow_the_window_back_to_the_ceiling():
    window = Window(8)
    window.rate_limited()
    assert window.current == 4
    for _ in range(7):  # the rest of the old window's answers: they say nothing about the new one
        window.succeeded(0.1)
    assert window.current == 4
    for expected in (5, 6, 7, 8):
        for _ in range(window.current - 1):
            window.succeeded(0.1)
        assert window.current == expected - 1, "one window's worth of successes, not fewer"
        window.succeeded(0.1)
        assert window.current == expected
    for _ in range(100):
        window.succeeded(0.1)
    assert window.current == 8 and window.increases == 4 and window.lowest == 4


def test_growth_wakes_waiters():
    async def go() -> None:
        window = Window(2)
        window.rate_limited()  # 2 -> 1
        got_in = asyncio.Event()

        async def wait() -> None:
            async with window.slot(0):
                got_in.set()

        async with window.slot(0):
            waiter = asyncio.create_task(wait())
            await settle()
            assert not got_in.is_set()
            window.succeeded(0.1)  # the other request sent under the window of 2
            window.succeeded(0.1)  # a window's worth of 1: grow to 2
            await settle()
            assert got_in.is_set() and window.current == 2
        await waiter

    run(go())


def test_no_growth_while_latency_is_above_twice_the_lowest():
    window = Window(4)
    for _ in range(4):
        window.succeeded(1.0)  # at the ceiling: sets the lowest latency, nothing to grow
    window.rate_limited()  # 4 -> 2
    for _ in range(3 + 2):  # 3 answers left from the window of 4, then a window's worth of 2
        window.succeeded(1.0)
    assert window.current == 3  # latency holds: grow
    for _ in range(30):
        window.succeeded(2.5)  # the server is queueing: hold
    assert window.current == 3
    for _ in range(3):
        window.succeeded(1.9)  # within twice the lowest
    assert window.current == 4


def test_one_slow_answer_does_not_stop_growth():
    window = Window(4)
    for _ in range(4):
        window.succeeded(1.0)
    window.rate_limited()  # 4 -> 2
    for _ in range(3):
        window.succeeded(1.0)
    window.succeeded(1.0)  # a window's worth of 2 with a long answer in it: the mean still holds
    window.succeeded(2.5)
    assert window.current == 3


def test_fixed_window_never_changes():
    window = Window(6, adaptive=False)
    for _ in range(20):
        window.rate_limited()
    for _ in range(100):
        window.succeeded(0.1)
    assert window.report() == {
        "limit": 6,
        "current": 6,
        "lowest": 6,
        "decreases": 0,
        "increases": 0,
        "rate_limited": 20,
    }


def test_reports_merge_by_summing():
    a, b = Window(8), Window(4)
    a.rate_limited(2)
    for _ in range(7 + 3):  # 4 successes would grow it
        a.succeeded(0.1)
    b.rate_limited()
    merged = merge_reports([a.report(), b.report()])
    assert merged == {
        "limit": 12,
        "current": 4 + 2,
        "lowest": 4 + 2,
        "decreases": 2,
        "increases": 0,
        "rate_limited": 3,
    }
    assert merge_reports([]) == dict.fromkeys(merged, 0)


def test_bad_limits_are_refused():
    with pytest.raises(ValueError):
        Window(0)
    with pytest.raises(ValueError):
        Window(4, floor=0)
    assert Window(2, floor=5).floor == 2
