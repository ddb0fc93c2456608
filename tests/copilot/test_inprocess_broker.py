"""The embedded default's broker delivers like kombu's memory transport and lets a stopping
worker go at once, where the memory transport held it for the rest of a 2-second poll."""

from __future__ import annotations

import threading
import time

import pytest
from kombu import Connection, Exchange, Queue

from copilot.inprocess_broker import Transport

pytestmark = pytest.mark.timeout(30)


@pytest.fixture
def queue() -> Queue:
    name = f"broker-test-{time.monotonic_ns()}"
    return Queue(name, Exchange(name), routing_key=name)


def test_the_embedded_broker_is_the_in_process_transport(settings) -> None:
    if settings.REDIS_URL:
        pytest.skip("with REDIS_URL the broker is Redis")
    with Connection(settings.CELERY_BROKER_URL) as connection:
        assert isinstance(connection.transport, Transport)


def test_a_message_published_while_a_consumer_waits_is_delivered_before_the_timeout(
    queue: Queue,
) -> None:
    received: list[str] = []
    with (
        Connection("inprocess://") as consumer_side,
        Connection("inprocess://") as producer,
        consumer_side.Consumer(queue, callbacks=[lambda body, msg: received.append(body)]),
    ):
        publish = threading.Timer(
            0.2, producer.Producer().publish, ["hello"],
            {"declare": [queue], "routing_key": queue.routing_key},
        )  # fmt: skip
        publish.start()
        started = time.monotonic()
        consumer_side.drain_events(timeout=10)
        publish.join()
    assert received == ["hello"]
    assert time.monotonic() - started < 5  # delivered, not timed out


def test_a_wait_ends_as_soon_as_its_connection_is_closed(queue: Queue) -> None:
    connection = Connection("inprocess://")
    transport = connection.transport
    outcome: list[BaseException] = []

    def drain() -> None:
        try:
            transport.drain_events(connection.connection, timeout=60)
        except BaseException as exc:  # the outcome is what the test reads
            outcome.append(exc)

    with connection.Consumer(queue, callbacks=[lambda body, msg: None]):
        waiting = threading.Thread(target=drain)
        waiting.start()
        time.sleep(0.2)
        closed_at = time.monotonic()
        connection.close()
        waiting.join(10)
    assert not waiting.is_alive()
    assert time.monotonic() - closed_at < 5  # the memory transport waited out all 60 s
    assert len(outcome) == 1 and isinstance(outcome[0], TimeoutError)
