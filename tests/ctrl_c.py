"""A Ctrl-C sent once a compiled loop is running.

A timer that fires a fixed time after the call begins races the wrapper's setup (checks,
allocations: tens of milliseconds, more on a loaded machine): fired before the wrapper
enters :func:`stabsim._interrupt.deferred_interrupt`, the SIGINT raises
``KeyboardInterrupt`` where no part done exists yet, which is Python's answer, not the one
under test.
"""

import contextlib
import os
import signal
import threading
import time

import pytest

from stabsim._interrupt import Interrupt

#: how long to wait for the loop to begin before giving up (no signal is sent then)
LOOP_START_SECONDS = 60.0


@contextlib.contextmanager
def ctrl_c_in_loop(after):
    """Within the block, send one SIGINT to this process ``after`` seconds once the main
    thread is inside a chunked loop (its SIGINT handler is an :class:`Interrupt`).

    Yields a list that receives the ``time.perf_counter()`` of the send. A
    ``KeyboardInterrupt`` out of the block fails the test: the loop was to return the part
    done.
    """
    sent = []
    done = threading.Event()

    def send():
        deadline = time.perf_counter() + LOOP_START_SECONDS
        while not isinstance(signal.getsignal(signal.SIGINT), Interrupt):
            if done.wait(0.001) or time.perf_counter() > deadline:
                return
        if not done.wait(after):
            sent.append(time.perf_counter())
            os.kill(os.getpid(), signal.SIGINT)

    thread = threading.Thread(target=send)
    thread.start()
    try:
        yield sent
    except KeyboardInterrupt:
        pytest.fail("a Ctrl-C inside the loop raised KeyboardInterrupt: the part done was lost")
    finally:
        done.set()
        thread.join()


def ctrl_c_at_chunk(monkeypatch, at):
    """Make the sweep's chunk number ``at`` raise ``KeyboardInterrupt`` when it is computed
    (the other chunks as usual): a Ctrl-C between chunks, at a known place."""
    import stabsim.sweep.backends as backends

    real = backends.compute_chunk

    def compute(config, index):
        if index == at:
            raise KeyboardInterrupt
        return real(config, index)

    monkeypatch.setattr(backends, "compute_chunk", compute)
