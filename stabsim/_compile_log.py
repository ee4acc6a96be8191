"""Messages about Numba compiling kernels: a notice when the first one compiles, and (at debug
level) each compilation with its time, through the ``stabsim`` logger.

Numba's ``numba:compile`` event fires only when a function is compiled, not when it is loaded
from the disk cache: the first one is the notice that compiling has begun, so a run whose
kernels are all cached does no work here at all.
"""

from __future__ import annotations

import contextlib
import logging
import time

from numba.core import event

log = logging.getLogger("stabsim")

NOTICE = "compiling kernels, first run only…"

_active = []  #: the listeners registered by :func:`compile_notice` and not yet removed


class _CompileNotice(event.Listener):
    def __init__(self):
        self.noticed = False
        self.started = []  # compilations nest (a kernel compiles the functions it calls)

    def on_start(self, event):
        if not self.noticed:
            self.noticed = True
            # "once": where several processes log into one (the demo's experiments side
            # by side), the notice is shown for the first of them only
            log.info(NOTICE, extra={"once": True})
        self.started.append(time.perf_counter())

    def on_end(self, event):
        seconds = time.perf_counter() - self.started.pop()
        log.debug("compiled %s in %.1f s", event.data["dispatcher"].py_func.__qualname__,
                  seconds)


@contextlib.contextmanager
def compile_notice():
    """Log the notice (and, at debug level, each compilation) while the block runs."""
    listener = _register()
    try:
        yield listener
    finally:
        _active.remove(listener)
        event.unregister("numba:compile", listener)


def notice_from_now_on() -> None:
    """Log the notice and the compilations for the rest of this process (a worker's)."""
    _register()


def _register():
    listener = _CompileNotice()
    event.register("numba:compile", listener)
    _active.append(listener)
    return listener


def notice_active() -> bool:
    """Whether a :func:`compile_notice` block is running in this process."""
    return bool(_active)
