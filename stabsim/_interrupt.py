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

A caller that abandons its work on Ctrl-C rather than keeping the part done (``stabsim
demo``) runs it inside :func:`prompt_interrupt`: there the first Ctrl-C raises
``KeyboardInterrupt`` as soon as control is back in Python (after the running chunk), since
the chunked loops inside find a handler that is not Python's default and leave it alone
(while a kernel compiles, the function being compiled is finished first:
:class:`PromptInterrupt`).
"""

from __future__ import annotations

import contextlib
import signal
import threading

from numba.core import event
from numba.core.compiler_lock import global_compiler_lock


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


class PromptInterrupt(event.Listener):
    """The SIGINT handler of :func:`prompt_interrupt`, and a listener to Numba's compiler lock.

    A Ctrl-C raises ``KeyboardInterrupt`` at once, unless this thread is compiling: raised
    inside Numba's compiler, it can land in one of LLVM's ctypes callbacks, which swallow it
    and leave the function half-built (an error, not an interrupt, follows). Then it is
    raised at the next release of the compiler lock, when the function being compiled (the
    kernel or one of the functions it calls) is done and no callback runs, or at once on a
    second Ctrl-C. The compilations finished by then are kept (and cached); the kernel the
    interrupted one was for compiles afresh when it is next called.
    """

    def __init__(self):
        self.pending = False

    def __call__(self, signum, frame):
        if global_compiler_lock.is_locked() and not self.pending:
            self.pending = True
            return
        self.pending = False
        raise KeyboardInterrupt

    def on_start(self, event):
        pass

    def on_end(self, event):
        # a release of the compiler lock: a function's compilation is done
        if self.pending and threading.current_thread() is threading.main_thread():
            self.pending = False
            raise KeyboardInterrupt


@contextlib.contextmanager
def prompt_interrupt():
    """Within the block, the first Ctrl-C raises ``KeyboardInterrupt``, also inside the
    chunked loops of :func:`deferred_interrupt` (they do not defer it) and, once the function
    being compiled is done, inside a kernel's first call (:class:`PromptInterrupt`).

    Installed under the same conditions as :func:`deferred_interrupt`: from the main thread
    over Python's default handler; elsewhere SIGINT is left as it is.
    """
    if (threading.current_thread() is not threading.main_thread()
            or signal.getsignal(signal.SIGINT) is not signal.default_int_handler):
        yield
        return
    handler = PromptInterrupt()
    with event.install_listener("numba:compiler_lock", handler):
        signal.signal(signal.SIGINT, handler)
        try:
            yield
        finally:
            if signal.getsignal(signal.SIGINT) is handler:
                signal.signal(signal.SIGINT, signal.default_int_handler)
