"""Sparing an OA app's quota: reads shared by the callers that ask at once, one pacer per
app in a process, and callbacks that wait for a creation's answer instead of asking the OA."""

from __future__ import annotations

import asyncio

import pytest

from finoa.connectors.created_here import Created
from finoa.connectors.pacing import SLOWDOWN, Pacer, ReadOnce, app_pacer, each_call
from finoa.messaging.retry import DeliveryError, ErrorClass


def test_callers_that_ask_at_once_share_one_read_and_a_failed_read_is_not_kept() -> None:
    reads: list[str] = []
    gate = asyncio.Event()

    async def read(key: str) -> str:
        reads.append(key)
        await gate.wait()
        if key == "bad":
            raise RuntimeError("vendor said no")
        return key.upper()

    async def scenario() -> list[str]:
        once = ReadOnce(read)
        waiting = [asyncio.ensure_future(once.get("u1")) for _ in range(5)]
        await asyncio.sleep(0)
        gate.set()
        values = await asyncio.gather(*waiting)
        assert await once.get("u1") == "U1"  # kept: no second read
        for _ in range(2):
            with pytest.raises(RuntimeError, match="vendor said no"):
                await once.get("bad")
        return values

    assert asyncio.run(scenario()) == ["U1"] * 5
    assert reads == ["u1", "bad", "bad"]


def test_an_apps_calls_share_one_pacer_in_a_process() -> None:
    assert app_pacer(50, "dingtalk", "http://a", "app") is app_pacer(
        50, "dingtalk", "http://a", "app"
    )
    assert app_pacer(50, "dingtalk", "http://a", "app") is not app_pacer(
        50, "dingtalk", "http://a", "other"
    )


def test_a_callback_waits_for_a_creation_in_flight_and_not_otherwise() -> None:
    async def scenario() -> tuple[str | None, str | None, str | None]:
        created = Created()
        assert await created.lookup("SP-1", wait=30) is None  # nothing in flight: at once
        answered = asyncio.Event()

        async def create() -> None:
            with created.creating():
                await answered.wait()  # the OA has not answered yet
                created.remember("SP-1", "CL-1")

        creation = asyncio.ensure_future(create())
        await asyncio.sleep(0)
        waiting = asyncio.ensure_future(created.lookup("SP-1", wait=30))
        other = asyncio.ensure_future(created.lookup("SP-9", wait=30))
        await asyncio.sleep(0)
        assert not waiting.done() and not other.done()
        answered.set()
        await creation
        # SP-1 is known now; SP-9 is not, and nothing is in flight: neither waits on
        return await waiting, await other, created.get("SP-1")

    assert asyncio.run(scenario()) == ("CL-1", None, "CL-1")


def test_a_chunks_calls_go_a_few_at_a_time_and_answer_in_order() -> None:
    running: list[int] = []
    answered: list[int] = []
    gates = {n: asyncio.Event() for n in range(10)}
    most = 0

    async def call(item: int) -> str:
        nonlocal most
        running.append(item)
        most = max(most, len(running))
        await gates[item].wait()  # the vendor answers when the test says so
        running.remove(item)
        answered.append(item)
        return f"answer {item}"

    async def scenario() -> list[str]:
        chunk = asyncio.ensure_future(each_call(list(range(10)), call, at_once=3))
        while not chunk.done():
            await asyncio.sleep(0)  # let the calls that can start, start
            if running and len(running) == min(3, 10 - len(answered)):
                gates[max(running)].set()  # the newest call is answered first
        return await chunk

    answers = asyncio.run(scenario())
    assert answers == [f"answer {n}" for n in range(10)]  # in the chunk's order
    assert answered != sorted(answered)  # although the vendor answered in another
    assert most == 3


def test_a_refusal_for_frequency_slows_the_pacer_and_calls_that_go_through_bring_it_back() -> None:
    now = [100.0]
    pacer = Pacer(10, clock=lambda: now[0])
    assert pacer.rate == pytest.approx(10)
    limited = DeliveryError(ErrorClass.RATE_LIMITED, "QpsLimit", retry_after=2.0)
    assert pacer.heard(limited) is limited
    assert pacer.rate == pytest.approx(10 / SLOWDOWN)
    # the calls in flight when the quota ran out are refused too: one slowdown, not four
    for _ in range(3):
        pacer.heard(DeliveryError(ErrorClass.RATE_LIMITED, "QpsLimit"))
    assert pacer.rate == pytest.approx(10 / SLOWDOWN) and pacer.refusals == 4
    pacer.heard(DeliveryError(ErrorClass.TRANSIENT, "busy"))  # not about frequency
    assert pacer.refusals == 4

    slept: list[float] = []

    async def next_slot() -> None:
        original = asyncio.sleep

        async def record(seconds: float) -> None:
            slept.append(seconds)
            await original(0)

        asyncio.sleep = record  # type: ignore[assignment]
        try:
            await pacer.slot()
        finally:
            asyncio.sleep = original

    asyncio.run(next_slot())
    assert slept == [pytest.approx(2.0)]  # nothing goes before the Retry-After
    now[0] = 103.0  # after the pause, a refusal slows it down again
    pacer.refused()
    assert pacer.rate == pytest.approx(10 / SLOWDOWN**2)
    for _ in range(200):
        pacer.answered()
    assert pacer.rate == pytest.approx(10)  # back at the configured rate, never above
