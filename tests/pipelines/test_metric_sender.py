"""The metric sender: batches leave in order, a failing server is retried until it takes them, the queue
is bounded with what it drops counted, and close() says whether everything went."""

from __future__ import annotations

import threading
import time

from pipelines.tracking.metric_sender import MetricSender


class Server:
    """Takes batches, refusing while ``down`` (as a restarting tracking server would)."""

    def __init__(self, down: bool = False) -> None:
        self.down, self.got, self.refused = down, [], 0
        self.lock = threading.Lock()

    def send(self, batch):
        with self.lock:
            if self.down:
                self.refused += 1
                raise ConnectionError("connection refused")
            self.got.append(list(batch))


def test_batches_arrive_in_order_and_flush_waits_for_them():
    server = Server()
    sender = MetricSender(server.send)
    for i in range(50):
        sender.put([("m", i)])
    assert sender.flush(timeout_s=5)
    assert [b[0][1] for b in server.got] == list(range(50))
    assert sender.pending == 0 and sender.lost == 0
    assert sender.close(timeout_s=1)


def test_an_outage_costs_the_caller_nothing_and_loses_nothing():
    server = Server(down=True)
    errors = []
    sender = MetricSender(server.send, backoff_s=(0.01, 0.05), on_error=errors.append)
    t0 = time.perf_counter()
    for i in range(200):
        sender.put([("loss", i), ("q", i)])
    assert time.perf_counter() - t0 < 0.5  # put never waits for the server
    time.sleep(0.2)
    assert server.refused >= 2 and not server.got and sender.pending == 400
    assert isinstance(errors[0], ConnectionError)
    server.down = False  # the server is back
    assert sender.flush(timeout_s=5)
    assert [b[0][1] for b in server.got] == list(range(200))  # every batch, once, in order
    assert sender.lost == 0 and sender.failures == server.refused
    sender.close(timeout_s=1)


def test_a_full_queue_drops_the_oldest_and_counts_them():
    server = Server(down=True)
    sender = MetricSender(server.send, max_pending=10, backoff_s=(0.01, 0.01))
    for i in range(8):
        sender.put([("m", i), ("n", i)])  # 16 values against room for 10
    time.sleep(0.05)
    # one batch is in flight (retried), at most 10 values wait; the oldest waiting ones were dropped
    assert sender.pending <= 10 + 2 and sender.lost >= 4
    server.down = False
    assert sender.flush(timeout_s=5)
    sent = [b[0][1] for b in server.got]
    assert sent == sorted(sent) and sent[-1] == 7  # the newest survive, in order
    assert 2 * len(sent) + sender.lost == 16  # every value either sent or counted lost
    sender.close(timeout_s=1)


def test_close_gives_up_after_its_deadline_and_counts_what_was_left():
    server = Server(down=True)
    sender = MetricSender(server.send, backoff_s=(0.01, 0.02))
    sender.put([("m", 1), ("m", 2), ("m", 3)])
    t0 = time.perf_counter()
    assert not sender.close(timeout_s=0.3)
    assert time.perf_counter() - t0 < 3
    assert sender.lost == 3 and sender.pending == 0


def test_a_server_that_holds_a_call_is_reported_once_it_has_waited_too_long():
    """MLflow's client retries inside one call while the server is away: nothing raises, so the wait
    itself is what gets reported (from the caller's next put)."""
    release = threading.Event()
    slow = []
    sender = MetricSender(lambda batch: release.wait(5), on_slow=lambda s, n: slow.append((s, n)), slow_s=0.1)
    sender.put([("m", 1)])
    time.sleep(0.05)
    sender.put([("m", 2)])
    assert slow == []  # not yet too long
    time.sleep(0.15)
    sender.put([("m", 3)])
    assert slow and slow[0][0] > 0.1 and slow[0][1] == 3  # waited, and how much waits
    release.set()
    assert sender.close(timeout_s=5)


def test_coalescing_sends_what_queued_up_as_one_call_in_order():
    """Rows logged every few ms go out as one call per interval (each call costs the server a
    transaction), in order, none lost; flush does not wait for the interval."""
    server = Server()
    sender = MetricSender(server.send, coalesce=1000, min_interval_s=0.5)
    for i in range(30):
        sender.put([("loss", i), ("q", i)])
        time.sleep(0.01)
    t0 = time.perf_counter()
    assert sender.flush(timeout_s=5)
    assert time.perf_counter() - t0 < 0.4  # a flush sends now
    sent = [v for b in server.got for k, v in b if k == "loss"]
    assert sent == list(range(30))
    assert len(server.got) <= 3  # 0.3 s of rows: the first row alone, then one or two calls
    sender.put([("loss", 30)] * 600)
    sender.put([("loss", 31)] * 600)  # together past the cap: two calls
    assert sender.close(timeout_s=5)
    assert [len(b) for b in server.got[-2:]] == [600, 600]
