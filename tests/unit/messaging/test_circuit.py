"""The circuit breaker against a simulated clock: an outage of any length costs a handful of
probes, and the first answer closes the circuit again."""

from __future__ import annotations

from finoa.messaging.circuit import CircuitBreaker, CircuitState
from finoa.messaging.retry import DeliveryError, ErrorClass, RetryPolicy


class Clock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


def test_it_opens_after_failures_in_a_row_and_a_success_resets_it() -> None:
    clock = Clock()
    breaker = CircuitBreaker(threshold=3, clock=clock)
    for _ in range(2):
        assert breaker.allow()
        breaker.record(False)
    breaker.record(True)  # a success between failures: the count starts again
    for _ in range(2):
        breaker.record(False)
    assert breaker.state is CircuitState.CLOSED
    breaker.record(False)
    assert breaker.state is CircuitState.OPEN
    assert not breaker.allow()
    assert breaker.wait_seconds() == 1.0


def test_half_open_lets_one_probe_through_and_doubles_the_cooldown_on_failure() -> None:
    clock = Clock()
    breaker = CircuitBreaker(threshold=1, base_cooldown_seconds=1.0, clock=clock)
    breaker.record(False)
    clock.now += 1.0
    assert breaker.allow()  # the probe
    assert breaker.state is CircuitState.HALF_OPEN
    assert not breaker.allow()  # only one at a time
    breaker.record(False)
    assert breaker.state is CircuitState.OPEN and breaker.wait_seconds() == 2.0
    clock.now += 2.0
    assert breaker.allow()
    breaker.record(True)
    assert breaker.state is CircuitState.CLOSED and breaker.allow()


def test_a_ten_minute_outage_costs_a_few_probes_and_no_dead_letter() -> None:
    clock = Clock()
    breaker = CircuitBreaker(
        threshold=5, base_cooldown_seconds=1.0, max_cooldown_seconds=60.0, clock=clock
    )
    policy = RetryPolicy()  # the defaults: retry for a day
    error = DeliveryError(ErrorClass.TRANSIENT, "HTTP 503", outcome_unknown=True)
    started, sends, attempts = clock.now, 0, 0
    while clock.now - started < 600:  # the ERP is down for ten minutes
        if breaker.allow():
            sends += 1
            attempts += 1
            breaker.record(False)
            assert policy.next_step(error, attempts, failing_for=clock.now - started) is not None
        clock.now += 0.5  # the dispatcher looks twice a second
    assert sends <= 20  # 5 before opening, then probes 1, 2, 4, ... 60 s apart
    assert breaker.state is CircuitState.OPEN
    clock.now += breaker.wait_seconds()
    assert breaker.allow()
    breaker.record(True)  # the ERP is back: the next probe closes the circuit
    assert breaker.state is CircuitState.CLOSED


def test_the_retry_budget_is_time_not_attempts() -> None:
    policy = RetryPolicy(retry_for_seconds=3600)
    transient = DeliveryError(ErrorClass.TRANSIENT, "down")
    assert policy.next_step(transient, 10_000, failing_for=3599) is not None
    assert policy.next_step(transient, 2, failing_for=3600) is None
    assert policy.next_step(DeliveryError(ErrorClass.PERMANENT, "no"), 1) is None
    assert RetryPolicy(max_attempts=3).next_step(transient, 3) is None
