"""The BLAS under compiled kernels, made single-threaded where kernels run threads of their own.

Numba's ``np.dot`` calls the BLAS that ``scipy.linalg.cython_blas`` is linked to (OpenBLAS in
the SciPy wheels). When a kernel's own parallel blocks (``prange``) each call a BLAS that
starts threads of its own, the threads outnumber the cores, and OpenBLAS's waiting threads
spin on them: a network's GD step with two parallel blocks took 171 ms on two cores against
7.6 ms with one BLAS thread per block (d = 9473). :data:`blas_threads_here` is OpenBLAS's
``openblas_set_num_threads_local`` (≥ 0.3.27; it returns the previous setting). In the
SciPy wheel's OpenBLAS measured here the setting is *not* confined to the calling thread (a
new thread reads the value another thread set), so a kernel calls ``blas_threads_here(1)``
once before its parallel blocks and restores the previous setting once after them, in the
calling thread (blocks that each set and restored it could race and leave it at one). Other
BLAS libraries get a function that does nothing (parallel blocks then share the cores with
the BLAS's threads).

The function is reached by a symbol name registered here, not by an address compiled into
the kernels, so kernels that call it are cached on disk like the others.
"""

from __future__ import annotations

import ctypes

import llvmlite.binding as llvm
import scipy.linalg.cython_blas
from numba import cfunc, types

_SYMBOL = "stabsim_blas_threads_here"
_OPENBLAS_NAMES = ("openblas_set_num_threads_local", "scipy_openblas_set_num_threads_local")


def _unchanged(threads):
    """Stand-in for a BLAS with no per-thread setting: changes nothing, returns 0."""
    return 0


def _per_thread_setter() -> int:
    """Address of the BLAS's per-thread thread-count setter, or of :func:`_unchanged`."""
    try:
        library = ctypes.CDLL(scipy.linalg.cython_blas.__file__)
    except OSError:
        library = None
    for name in _OPENBLAS_NAMES:
        function = getattr(library, name, None)  # dlsym also searches the BLAS it links
        if function is not None:
            return ctypes.cast(function, ctypes.c_void_p).value
    return cfunc(types.intc(types.intc), cache=True)(_unchanged).address


llvm.add_symbol(_SYMBOL, _per_thread_setter())

#: ``blas_threads_here(n) -> previous``: the BLAS threads of the calling thread (kernels only)
blas_threads_here = types.ExternalFunction(_SYMBOL, types.intc(types.intc))
