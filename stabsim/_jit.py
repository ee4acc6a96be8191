"""The package's Numba flags, in one place.

Every compiled kernel in stabsim is decorated with :func:`jit`, so the caching and
error-model policy is set here and nowhere else.

- ``cache=True``: compiled machine code is written next to the module and reused by
  later processes (compile time is part of speed).
- ``error_model="numpy"``: a division by zero gives ``inf``/``nan`` instead of raising, so
  kernels never raise; they report a status code that the Python wrapper turns into a
  message.
- no ``fastmath``: it would let the compiler assume that no value is NaN, and detecting
  divergence is part of every kernel's job. Kernels that never test for NaN may opt into
  :data:`ARITH_FASTMATH` (reassociation and fused multiply-add only).
"""

from __future__ import annotations

import types

import numba

JIT_FLAGS = {"cache": True, "nogil": True, "error_model": "numpy"}
ARITH_FASTMATH = {"contract", "reassoc"}


def jit(func=None, *, parallel=False, fastmath=False):
    """Compile ``func`` with the package-wide flags (usable bare or with options)."""

    def wrap(f):
        flags = dict(JIT_FLAGS, parallel=parallel)
        if fastmath:
            flags["fastmath"] = ARITH_FASTMATH
        return numba.njit(**flags)(f)

    return wrap if func is None else wrap(func)


def rebind(kernel, **replacements):
    """Recompile a kernel with some of the global names it calls replaced.

    This is how one kernel body serves both the built-in losses (module-level dispatch
    functions, compiled once and cached) and user-defined losses (the user's njit
    functions swapped in for the dispatch functions). Numba cannot cache a kernel built
    this way, because its globals are no longer those of a module file.

    Parameters
    ----------
    kernel : numba.core.registry.CPUDispatcher
        A kernel made by :func:`jit`.
    **replacements
        Global names of ``kernel`` and what they should mean in the copy.
    """
    py_func = kernel.py_func
    missing = set(replacements) - set(py_func.__code__.co_names)
    if missing:
        raise ValueError(f"kernel {py_func.__name__} does not use the names {sorted(missing)}")
    namespace = dict(py_func.__globals__)
    namespace.update(replacements)
    copy = types.FunctionType(py_func.__code__, namespace, py_func.__name__,
                              py_func.__defaults__, py_func.__closure__)
    flags = dict(kernel.targetoptions)
    flags.pop("cache", None)  # a rebound kernel has dynamic globals: it cannot be cached
    flags.pop("nopython", None)  # implied by njit
    return numba.njit(**flags)(copy)
