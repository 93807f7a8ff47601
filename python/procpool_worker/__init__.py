"""procpool_worker: the Python worker SDK for procpool, and an example worker.

Write a worker with ``Worker``::

    from procpool_worker import Worker

    worker = Worker()

    @worker.handler("add")
    def add(args):
        return args["a"] + args["b"]

    worker.run()

This module imports nothing until a name is used: ``python3 -m procpool_worker`` runs it
before ``__main__`` takes its t_main_ns stamp, which should miss as little as possible.
"""

__all__ = ["FramingError", "KnobError", "Knobs", "Worker", "read_frame", "write_frame"]

_HOMES = {
    "Worker": "worker",
    "Knobs": "knobs",
    "KnobError": "knobs",
    "read_frame": "framing",
    "write_frame": "framing",
    "FramingError": "framing",
}


def __getattr__(name):
    if name not in _HOMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib
    return getattr(importlib.import_module(f".{_HOMES[name]}", __name__), name)


def __dir__():
    return sorted(list(globals()) + __all__)
