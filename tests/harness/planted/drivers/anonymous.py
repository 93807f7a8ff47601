"""What the planted drivers that hide their workers share: completions without a worker pid,
and event sinks that drop "worker" events (all events, or all but "pool" samples)."""


def without_worker_pid(complete):
    """Wraps a completion callback so that its done line names no worker (worker_pid 0)."""

    def anonymous(outcome):
        if isinstance(outcome, dict):
            outcome = dict(outcome, worker_pid=0)
        complete(outcome)

    return anonymous


class EventFilter:
    """An event sink passing on only the events named in ``keep`` (none by default)."""

    def __init__(self, events, keep=()):
        self._events = events
        self._keep = set(keep)

    def emit(self, event):
        if event.get("event") in self._keep:
            self._events.emit(event)
