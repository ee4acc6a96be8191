"""Ctrl-C is answered within a second.

``run_reduced`` runs in chunks of ``CHUNK_STEPS`` steps and returns the part done with
status INTERRUPTED; ``run_reduced_ensemble`` runs in calls over chunks of trajectories and
of steps and raises ``KeyboardInterrupt`` between them.
"""

import os
import signal
import threading
import time

import numba
import numpy as np
import pytest
from ctrl_c import ctrl_c_in_loop
from numba.core.compiler_lock import global_compiler_lock
from numba.extending import overload

import stabsim.demo as demo
import stabsim.maps._reduced_ensemble as _reduced_ensemble
import stabsim.maps.reduced as reduced
from stabsim import Status
from stabsim._interrupt import Interrupt, deferred_interrupt, prompt_interrupt
from stabsim.losses import Quadratic
from stabsim.maps import run_gd, run_reduced, run_reduced_ensemble

START = (0.1, 0.0, 0.01, 1.0, 1.0)  # x0, y0, eta, alpha, beta: cycles at the edge
#: the period-2 orbit x = ±δ (δ² = 2α/β = 1), y = 0, where the y-step is exactly 0: it runs
#: for ever (START's orbit spirals out until x underflows, at step 40,372)
ORBIT = (1.0, 0.0, 0.01, 1.0, 2.0)
# one trajectory runs at about 10^8 steps/s here: 10^9 steps (10 s) are far more than the
# wait before the interrupt, and bound the test's time if the interrupt were lost
LONG = 10**9
#: how long an answer to Ctrl-C may take (the issue's bound)
ANSWER_SECONDS = 1.0

with_python_sigint = pytest.mark.usefixtures("python_sigint")


def _interrupt_after(seconds):
    timer = threading.Timer(seconds, os.kill, (os.getpid(), signal.SIGINT))
    timer.start()
    return timer


def _fields(result):
    c = result.cycles
    return (result.step, result.x, result.y, result.phase, result.status, result.stop_step,
            result.x_final, result.y_final, c.n_boundaries, c.boundary_step, c.boundary_H,
            c.cycle_length, c.cycle_mean_x2, c.y_max, c.y_min, c.max_abs_x, c.first_blowup)


def _assert_same(a, b):
    for u, v in zip(_fields(a), _fields(b), strict=True):
        np.testing.assert_array_equal(u, v)


@pytest.mark.parametrize(("start", "kwargs"), [
    (START, {"stride": 3}),
    (START, {"stride": 5, "cycles": 3}),  # stops at its third boundary, part-way in a chunk
    ((0.1, 0.0, 0.3, 1.0, 1.0), {}),  # leaves the domain
    ((1e150, 0.0, 0.01, 1.0, 1.0), {}),  # overflows: NONFINITE
])
def test_chunks_give_the_numbers_of_one_call(monkeypatch, start, kwargs):
    # the map is a function of the state (x, y) alone and the summaries are carried in the
    # state vector, so cutting the run into 7-step chunks changes no bit
    whole = run_reduced(*start, 2000, **kwargs)
    monkeypatch.setattr(reduced, "CHUNK_STEPS", 7)
    _assert_same(run_reduced(*start, 2000, **kwargs), whole)


@with_python_sigint
def test_ctrl_c_returns_the_part_done():
    run_reduced(*ORBIT, 10)  # load the compiled kernel first
    with ctrl_c_in_loop(0.2) as sent:
        result = run_reduced(*ORBIT, LONG, stride=LONG // 10)
    assert sent, "the run ended before the Ctrl-C"
    assert time.perf_counter() - sent[0] < ANSWER_SECONDS
    assert result.status is Status.INTERRUPTED
    # the loop had run 0.2 s when the Ctrl-C came, and it is read between chunks only
    assert 0 < result.stop_step < LONG
    # the part done is exactly the run of that many steps (its last chunk included)
    done = run_reduced(*ORBIT, result.stop_step, stride=LONG // 10)
    assert (done.x_final, done.y_final) == (result.x_final, result.y_final)
    assert done.cycles.n_boundaries == result.cycles.n_boundaries
    np.testing.assert_array_equal(done.x, result.x)
    # SIGINT is Python's own again
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


@with_python_sigint
def test_ctrl_c_stops_an_ensemble_between_chunks():
    n = 4 * 10**5  # 4·10^5 trajectories of 10^5 steps: 10 s of work here, in 0.1 s chunks
    run_reduced_ensemble(np.full(10, 0.1), *START[1:], 10)
    timer = _interrupt_after(0.2)
    began = time.perf_counter()
    with pytest.raises(KeyboardInterrupt):
        run_reduced_ensemble(np.linspace(0.01, 0.5, n), *START[1:], 10**5)
    waited = time.perf_counter() - began - 0.2
    timer.join()
    assert waited < ANSWER_SECONDS


@pytest.mark.parametrize("stats", [False, True])
@pytest.mark.parametrize("steps", [500, 5000])
def test_calls_over_chunks_give_the_numbers_of_one_call(monkeypatch, stats, steps):
    # the smallest calls: one block per thread, MIN_SPAN = 1024 steps (5000 steps: five
    # calls in time, whose ends fall between the saved states of stride 7)
    monkeypatch.setattr(reduced, "ENSEMBLE_CHUNK_WORK", 1)
    x0 = np.linspace(0.01, 0.5, 2 * reduced._chunk_shape(10**6, steps)[0] + 5)
    x0[::97] = 1e160  # some overflow at their first step
    eta = np.where(np.arange(x0.size) % 89 == 0, 0.3, START[2])  # some leave the domain
    kwargs = {"stats": stats, "stride": 7, "cycles": 5 if stats else None}
    chunked = run_reduced_ensemble(x0, START[1], eta, *START[3:], steps, **kwargs)
    monkeypatch.setattr(reduced, "ENSEMBLE_CHUNK_WORK", 10**15)  # one call
    assert reduced._chunk_shape(x0.size, steps)[1] >= steps
    whole = run_reduced_ensemble(x0, START[1], eta, *START[3:], steps, **kwargs)
    assert set(whole.status_codes) >= {Status.NONFINITE, Status.LEFT_DOMAIN}
    for name in ("x_final", "y_final", "status_codes", "stop_step", "x", "y"):
        np.testing.assert_array_equal(getattr(chunked, name), getattr(whole, name))
    if stats:
        for name in ("n_boundaries", "boundary_step", "boundary_H", "cycle_length",
                     "cycle_mean_x2", "y_max", "y_min", "max_abs_x", "first_blowup"):
            np.testing.assert_array_equal(getattr(chunked.cycles, name),
                                          getattr(whole.cycles, name))
    # both calls ran one compiled kernel: the layout of the record arrays and read-only
    # inputs do not change the argument types (each new type is another compilation)
    kernel = _reduced_ensemble.ensemble_stats if stats else _reduced_ensemble.ensemble_final
    assert len(kernel.signatures) == 1, kernel.signatures
    # and one trajectory of the chunked ensemble is the reference path's, bit for bit
    one = run_reduced(x0[1], START[1], eta[1], *START[3:], steps, stride=7,
                      cycles=kwargs["cycles"])
    assert (chunked.x_final[1], chunked.y_final[1]) == (one.x_final, one.y_final)


@with_python_sigint
def test_ctrl_c_stops_one_long_ensemble_trajectory():
    # one trajectory of 10^9 steps (seconds of work) is split in time too
    run_reduced_ensemble(np.full(10, 1.0), *ORBIT[1:], 10)
    timer = _interrupt_after(0.2)
    began = time.perf_counter()
    with pytest.raises(KeyboardInterrupt):
        run_reduced_ensemble([1.0], *ORBIT[1:], LONG, stats=True)
    waited = time.perf_counter() - began - 0.2
    timer.join()
    assert waited < ANSWER_SECONDS


@with_python_sigint
def test_ctrl_c_in_run_gd_returns_the_part_done():
    loss = Quadratic([1.0])
    run_gd(loss, [1.0], 0.1, 10)
    with ctrl_c_in_loop(0.2) as sent:
        # 10^9 steps of GD on one parameter: far longer than the wait for the interrupt
        result = run_gd(loss, [1.0], 0.1, LONG, stride=LONG, find_crossing=False)
    assert sent, "the run ended before the Ctrl-C"
    assert time.perf_counter() - sent[0] < ANSWER_SECONDS
    assert result.status is Status.INTERRUPTED
    assert 0 < result.counters["steps"] < LONG


def _long_gd(out=None):
    """10^9 steps of GD on one parameter: seconds of work, in chunks of well under one."""
    run_gd(Quadratic([1.0]), [1.0], 0.1, LONG, stride=LONG, find_crossing=False)
    return [], []


def _in_a_prompt_block():
    with prompt_interrupt():
        _long_gd()


@with_python_sigint
@pytest.mark.parametrize("work", [_in_a_prompt_block, lambda: demo._timed(_long_gd, None)],
                         ids=["prompt block", "demo experiment"])
def test_the_first_ctrl_c_stops_run_gd_and_raises(work):
    # not the engine's own answer (the part done, status INTERRUPTED, and a demo going on
    # with a cut trajectory): the work stops
    run_gd(Quadratic([1.0]), [1.0], 0.1, 10)
    timer = _interrupt_after(0.2)
    began = time.perf_counter()
    try:
        with pytest.raises(KeyboardInterrupt):
            work()
    finally:
        timer.join()
    assert time.perf_counter() - began - 0.2 < ANSWER_SECONDS
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


@with_python_sigint
def test_a_demo_worker_starts_no_experiment_after_a_ctrl_c(monkeypatch):
    monkeypatch.setattr(demo, "_worker_stopped", False)
    run_gd(Quadratic([1.0]), [1.0], 0.1, 10)
    timer = _interrupt_after(0.2)
    try:
        with pytest.raises(KeyboardInterrupt):
            demo._timed_in_worker(_long_gd, None)
    finally:
        timer.join()
    started = []
    with pytest.raises(KeyboardInterrupt):
        demo._timed_in_worker(started.append, None)
    assert started == []


@with_python_sigint
def test_a_ctrl_c_while_compiling_is_raised_when_a_compilation_ends():
    # raised inside Numba's compiler it could land in an LLVM callback that swallows it;
    # holding the compiler lock is what compiling is, for the handler, and each release
    # ends the compilation of a function (here the inner one, of a function the outer calls)
    reached = []
    with pytest.raises(KeyboardInterrupt), prompt_interrupt():
        with global_compiler_lock:
            with global_compiler_lock:
                os.kill(os.getpid(), signal.SIGINT)
                reached.append("inner")
            reached.append("outer")
    assert reached == ["inner"]
    assert not global_compiler_lock.is_locked()
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def _plus_one(x):
    raise NotImplementedError("kernels only")


#: a Ctrl-C to send while a caller of _plus_one is being typed, taken by the first typing
_CTRL_C_WHILE_TYPING = []


@overload(_plus_one)
def _plus_one_typed(x):
    if _CTRL_C_WHILE_TYPING:
        _CTRL_C_WHILE_TYPING.pop()
        os.kill(os.getpid(), signal.SIGINT)
    return lambda x: x + 1.0


@with_python_sigint
def test_a_kernel_whose_compilation_a_ctrl_c_stopped_compiles_when_called_again():
    @numba.njit
    def kernel(x):
        return 2.0 * _plus_one(x)

    _CTRL_C_WHILE_TYPING[:] = ["Ctrl-C"]
    with pytest.raises(KeyboardInterrupt), prompt_interrupt():
        kernel(1.0)  # raised once a function it calls (_plus_one's implementation) compiled
    assert not kernel.signatures
    assert not _CTRL_C_WHILE_TYPING
    assert kernel(1.0) == 4.0


@with_python_sigint
def test_a_second_ctrl_c_while_compiling_raises_at_once():
    reached = []
    with pytest.raises(KeyboardInterrupt), prompt_interrupt():
        with global_compiler_lock:
            os.kill(os.getpid(), signal.SIGINT)
            reached.append("first")
            os.kill(os.getpid(), signal.SIGINT)
            reached.append("second")
    assert reached == ["first"]
    assert not global_compiler_lock.is_locked()


def test_a_prompt_block_leaves_other_handlers_and_threads_alone():
    def own(signum, frame):
        pass

    previous = signal.signal(signal.SIGINT, own)
    try:
        with prompt_interrupt():
            assert signal.getsignal(signal.SIGINT) is own
    finally:
        signal.signal(signal.SIGINT, previous)
    seen = []

    def in_thread():
        with prompt_interrupt():  # signal.signal would raise ValueError outside the main thread
            seen.append(signal.getsignal(signal.SIGINT))

    thread = threading.Thread(target=in_thread)
    thread.start()
    thread.join()
    assert seen == [signal.getsignal(signal.SIGINT)]


def test_a_second_ctrl_c_raises():
    flag = Interrupt()
    previous = signal.signal(signal.SIGINT, flag)
    try:
        flag(signal.SIGINT, None)
        assert flag.requested
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    finally:
        signal.signal(signal.SIGINT, previous)


def test_an_application_handler_is_left_alone():
    def own(signum, frame):
        pass

    previous = signal.signal(signal.SIGINT, own)
    try:
        with deferred_interrupt() as interrupt:
            assert signal.getsignal(signal.SIGINT) is own
            assert not interrupt.requested
    finally:
        signal.signal(signal.SIGINT, previous)


@with_python_sigint
def test_nested_loops_share_one_flag():
    with deferred_interrupt() as outer:
        with deferred_interrupt() as inner:
            assert inner is outer
        assert signal.getsignal(signal.SIGINT) is outer
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
