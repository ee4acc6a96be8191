"""stabsim._blas: the per-thread BLAS thread setting that parallel network blocks use."""

import ctypes

from stabsim import _blas

SETTER = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_int)


def test_without_a_per_thread_setter_the_stand_in_changes_nothing(monkeypatch):
    # a BLAS without openblas_set_num_threads_local gets a function that returns 0 and does
    # nothing, so kernels that call it still link
    monkeypatch.setattr(_blas, "_OPENBLAS_NAMES", ("no_such_blas_function",))
    stand_in = SETTER(_blas._per_thread_setter())
    assert stand_in(1) == 0 and stand_in(7) == 0
