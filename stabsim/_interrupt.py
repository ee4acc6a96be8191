"""Ctrl-C between the chunks of a compiled loop.

A compiled (Numba) kernel cannot be interrupted: Python delivers a ``KeyboardInterrupt``
only once the kernel returns, at a point of the wrapper nobody chose, so the wrapper
could neither tell how far the kernel got nor return what it computed. Wrappers that run
their kernel in chunks of well under a second therefore enter :func:`deferred_interrupt`:
inside it, a first Ctrl-C only sets ``requested``, which the wrapper reads between chunks
and answers by returning the part done with status INTERRUPTED; a second Ctrl-C raises
``KeyboardInterrupt`` as usual (the default handler is back once the first was seen).

The handler is installed only from the main thread and only over Python's default one: in
a worker thread, under an application's own SIGINT handler, or nested inside another
chunked loop (which then shares its flag), SIGINT is left as it is.
"""

from __future__ import annotations

import contextlib
import signal
import threading


class Interrupt:
    """The SIGINT handler of :func:`deferred_interrupt`: records a Ctrl-C in ``requested``."""

    def __init__(self):
        self.requested = False

    def __call__(self, signum, frame):
        self.requested = True
        signal.signal(signal.SIGINT, signal.default_int_handler)  # a second Ctrl-C raises


@contextlib.contextmanager
def deferred_interrupt():
    """Within the block, a Ctrl-C sets ``requested`` of the yielded :class:`Interrupt`."""
    if threading.current_thread() is not threading.main_thread():
        yield Interrupt()  # signals go to the main thread: this flag is never set
        return
    current = signal.getsignal(signal.SIGINT)
    if isinstance(current, Interrupt):  # inside another chunked loop: one Ctrl-C stops both
        yield current
        return
    if current is not signal.default_int_handler:  # an application's handling: leave it
        yield Interrupt()
        return
    interrupt = Interrupt()
    signal.signal(signal.SIGINT, interrupt)
    try:
        yield interrupt
    finally:
        if signal.getsignal(signal.SIGINT) is interrupt:
            signal.signal(signal.SIGINT, current)
