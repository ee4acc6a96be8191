"""A deadline for a block of a test: a run that never ends fails instead of hanging the
suite."""

import contextlib
import signal


@contextlib.contextmanager
def within(seconds):
    """Fail with TimeoutError if the block runs longer than ``seconds`` (SIGALRM: the main
    thread of a POSIX process)."""
    def interrupt(signum, frame):
        raise TimeoutError(f"the run did not end within {seconds} s")

    previous = signal.signal(signal.SIGALRM, interrupt)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
