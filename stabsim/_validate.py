"""Argument checks shared by the Python wrappers.

Each check raises ``ValueError`` (a value of the right kind out of range) or ``TypeError``
(a value of the wrong kind: a complex number, a non-boolean flag, an unhashable option)
naming the offending argument, before any compilation or allocation happens.
"""

from __future__ import annotations

import math
import numbers
import os
import tempfile
from pathlib import Path

import numpy as np

_INT64_MAX = 2**63 - 1


def positive_float(name: str, value) -> float:
    """Return ``value`` as a float, or raise if it is not finite and > 0."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{name} must be a positive real number, got {value!r}")
    value = float(value)
    if not math.isfinite(value) or value <= 0.0:
        raise ValueError(f"{name} must be finite and > 0, got {value!r}")
    return value


def positive_or_inf(name: str, value) -> float:
    """Return ``value`` as a float, or raise if it is not > 0 (``inf`` allowed)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{name} must be a positive real number or inf, got {value!r}")
    value = float(value)
    if not value > 0.0:  # also rejects NaN
        raise ValueError(f"{name} must be > 0 (or inf), got {value!r}")
    return value


def nonempty_axes(**axes) -> None:
    """Raise ``ValueError`` naming an empty axis of a grid (a sweep of no cells)."""
    for name, values in axes.items():
        if len(values) == 0:
            raise ValueError(f"{name} is empty: a sweep needs at least one value of each "
                             "axis")


def finite_float(name: str, value) -> float:
    """Return ``value`` as a float, or raise if it is not a finite real."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{name} must be a real number, got {value!r}")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value!r}")
    return value


def nonnegative_int(name: str, value, minimum: int = 0) -> int:
    """Return ``value`` as an int, or raise if it is not an integer >= ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value!r}")
    if value > _INT64_MAX:  # every integer argument ends up in a compiled int64
        raise ValueError(f"{name} must be at most 2**63 - 1, got {value!r}")
    return int(value)


def budget(name: str, value) -> int | None:
    """Return the budget ``value`` (of evaluations, say) as an int ≥ 1, or None (no budget),
    or raise naming ``name``."""
    return None if value is None else nonnegative_int(name, value, minimum=1)


def unit_interval(name: str, value, *, closed_right: bool = False) -> float:
    """Return ``value`` as a float in [0, 1) (or [0, 1]), or raise."""
    value = finite_float(name, value)
    upper_ok = value <= 1.0 if closed_right else value < 1.0
    if value < 0.0 or not upper_ok:
        bound = "]" if closed_right else ")"
        raise ValueError(f"{name} must lie in [0, 1{bound}, got {value!r}")
    return value


def fraction(name: str, value) -> float:
    """Return ``value`` as a float in (0, 1] (a fraction of something, never none of it), or
    raise."""
    value = positive_float(name, value)
    if value > 1.0:
        raise ValueError(f"{name} must lie in (0, 1], got {value!r}")
    return value


def real_array(name: str, value, *, shape=None, ndim=None) -> np.ndarray:
    """Return ``value`` as a C-contiguous float64 array (NaN and inf allowed), or raise.

    Parameters
    ----------
    shape : tuple of int or None, optional
        Required shape; ``None`` entries match any length.
    ndim : int, optional
        Required number of dimensions (when ``shape`` is not given).
    """
    if value is None or isinstance(value, (str, bytes, bool, np.bool_)) or (
            isinstance(value, np.ndarray) and value.dtype == np.bool_):
        raise TypeError(f"{name} must be an array of real numbers, got {value!r}")
    if _holds_complex(value):
        # NumPy would drop the imaginary part with only a warning
        raise TypeError(f"{name} must be real, got complex values")
    try:
        given = value if isinstance(value, np.ndarray) else np.asarray(value)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be an array of real numbers (not ragged): {exc}") from None
    if not _holds_real_numbers(given):  # NumPy would parse strings and make None NaN
        raise TypeError(f"{name} must be an array of real numbers, got {value!r}")
    array = np.ascontiguousarray(given, dtype=np.float64)  # a 0-d array becomes shape (1,)
    if shape is not None:
        ok = array.ndim == len(shape) and all(
            want is None or want == got for want, got in zip(shape, array.shape, strict=True)
        )
        if not ok:
            raise ValueError(f"{name} must have shape {shape_text(shape)}, got {given.shape}")
    elif ndim is not None and array.ndim != ndim:
        raise ValueError(f"{name} must be {ndim}-dimensional, got shape {given.shape}")
    return array


def _holds_real_numbers(array: np.ndarray) -> bool:
    """Whether ``array`` holds integers or floats (an object array: real numbers only)."""
    if array.dtype.kind in "iuf":
        return True
    if array.dtype.kind != "O":
        return False
    return all(isinstance(x, numbers.Real) and not isinstance(x, (bool, np.bool_))
               for x in array.flat)


def shape_text(shape) -> str:
    """A wanted shape as NumPy prints one, ``None`` entries as "any": (3,), (any, 4)."""
    entries = ["any" if n is None else str(n) for n in shape]
    return "(" + ", ".join(entries) + ("," if len(entries) == 1 else "") + ")"


def finite_array(name: str, value, *, shape=None, ndim=None) -> np.ndarray:
    """:func:`real_array`, also refusing NaN and inf."""
    array = real_array(name, value, shape=shape, ndim=ndim)
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name} contains NaN or inf")
    return array


def _holds_complex(value) -> bool:
    """True if ``value`` (a scalar or nested sequence, possibly ragged) holds a complex number."""
    if isinstance(value, (complex, np.complexfloating)):
        return True
    if isinstance(value, np.ndarray):
        return np.iscomplexobj(value)
    if isinstance(value, (list, tuple)):
        return any(_holds_complex(v) for v in value)
    return False


def memory_bytes() -> int:
    """Physical memory of this machine in bytes (8 GiB where the system does not say)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 8 * 2**30


def affordable(nbytes: int, what: str, remedy: str) -> None:
    """Raise ``ValueError`` if ``nbytes`` is over half of this machine's memory.

    ``what`` says what would take the memory (naming the arguments that size it) and
    ``remedy`` which knob to turn.
    """
    limit = memory_bytes() // 2
    if nbytes > limit:
        raise ValueError(f"{what} would take {nbytes / 2**30:.3g} GiB, over half of this "
                         f"machine's memory ({2 * limit / 2**30:.3g} GiB); {remedy}")


def record_rows(steps: int, stride: int, *, width: int) -> int:
    """The number of records of a map run of ``steps`` updates that records every
    ``stride``-th step: ``steps // stride + 1`` (step 0 and the multiples of ``stride``),
    one more when ``stride`` does not divide ``steps`` (the last step, in a row of its own).
    ``width`` floats per record are checked against the memory (:func:`affordable`), the
    check :func:`record_times` makes for the flows.
    """
    n = steps // stride + 1 + (1 if steps % stride else 0)
    affordable(8 * n * width, f"the records of steps = {steps} at stride = {stride}",
               "raise `stride` or lower `steps`")
    return n


def symmetric(name: str, array: np.ndarray) -> np.ndarray:
    """``array`` made exactly symmetric in its last two axes, or ``ValueError`` if it is not.

    Symmetric means equal to its transpose within 1e-12 times its largest entry (at least 1):
    the round-off of a matrix built as a sum of products. The result is (A + Aᵀ)/2, a new
    array, so kernels may read one triangle.
    """
    swapped = np.swapaxes(array, -1, -2)
    scale = max(1.0, float(np.abs(array).max())) if array.size else 1.0
    if not np.allclose(array, swapped, rtol=0.0, atol=1e-12 * scale):
        where = " in its last two axes" if array.ndim > 2 else ""
        raise ValueError(f"{name} must be symmetric{where}")
    return 0.5 * (array + swapped)


def choice(name: str, value, options) -> str:
    """Return ``value`` if it is one of the strings ``options``, or raise listing them."""
    if not isinstance(value, str):
        raise TypeError(f"{name} must be one of the strings {sorted(options)}, "
                        f"got {type(value).__name__} {value!r}")
    if value not in options:
        raise ValueError(f"{name} must be one of {sorted(options)}, got {value!r}")
    return value


def seed(name: str, value):
    """A seed of ``numpy.random.default_rng``: None, a Generator, or an integer ≥ 0."""
    if value is None or isinstance(value, np.random.Generator):
        return value
    return nonnegative_int(name, value)


def boolean(name: str, value) -> bool:
    """Return ``value`` as a bool, or raise ``TypeError`` unless it is ``True`` or ``False``.

    A NumPy scalar bool is accepted; 0, 1, strings and arrays are not (``"no"`` is truthy).
    """
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False, got {type(value).__name__} {value!r}")
    return bool(value)


#: the integrators of ``scipy.integrate.solve_ivp``
SOLVERS = ("RK23", "RK45", "DOP853", "Radau", "BDF", "LSODA")


def eval_times(name: str, value, end: float, end_name: str):
    """Return ``value`` as increasing finite times in [0, ``end``] (None stays None), or raise.

    ``name`` is the public argument (``t_eval``, ``tau_eval``) and ``end_name`` its horizon.
    """
    if value is None:
        return None
    times = finite_array(name, value, ndim=1)
    if times.size == 0:
        raise ValueError(f"{name} must hold at least one time (or be None), got an empty array")
    if np.any(np.diff(times) <= 0.0) or times[0] < 0.0 or times[-1] > end:
        raise ValueError(f"{name} must be increasing and lie in [0, {end_name}] = "
                         f"[0, {end:g}]")
    return times


def solver_options(rtol, atol, integrator) -> dict:
    """Check the ``solve_ivp`` options every flow passes through and return them as a dict
    (keys ``rtol``, ``atol``, ``integrator``: the keywords of
    :func:`stabsim.flows.solve_flow`).

    0 < rtol < 1: a relative tolerance of 1 or more lets a step's error be as large as the
    state itself, so every trial step is accepted (gradient flow of the minimalist loss from
    (3, 0.2), η = 0.1, at rtol = 2 turned NaN within 10 steps); atol > 0.
    """
    rtol = positive_float("rtol", rtol)
    if rtol >= 1.0:
        raise ValueError(f"rtol must lie in (0, 1), got {rtol!r}")
    return {"rtol": rtol, "atol": positive_float("atol", atol),
            "integrator": choice("integrator", integrator, SOLVERS)}


def record_times(stride, steps: float, *, width: int = 1):
    """The times at which a flow saves its state: the multiples of ``stride`` in
    [0, ``steps``] and ``steps`` itself (None when ``stride`` is None: the integrator's
    own steps).

    ``k·stride`` for k = 0 … ⌊steps/stride⌋, clipped to ``steps`` (k·stride can round one
    ulp past it), then ``steps`` unless it is already the last one. ``width`` floats per
    record are checked against the memory (:func:`affordable`).
    """
    if stride is None:
        return None
    stride = positive_float("stride", stride)
    n = int(np.floor(steps / stride)) + 1
    affordable(8 * (n + 1) * width, f"saving every {stride:g} of steps = {steps:g}",
               "raise `stride` or lower `steps`")
    times = np.minimum(stride * np.arange(n, dtype=float), steps)
    if times[-1] < steps:
        times = np.append(times, steps)
    return np.unique(times)


def existing_ancestor(path) -> Path:
    """``path`` itself or its nearest ancestor that exists."""
    path = Path(path)
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def writable_in(what: str, directory) -> None:
    """Raise ``ValueError`` naming ``what`` unless a file can be made in ``directory``
    (probed by making and deleting one: read-only and virtual file systems such as
    ``/proc`` fail it, as does a ``directory`` that is a file)."""
    try:
        with tempfile.TemporaryFile(dir=directory):
            pass
    except OSError as exc:
        raise ValueError(f"cannot write {what}: {exc.strerror or exc} (in {directory})") \
            from None


def writable_directory(what: str, path) -> Path:
    """``Path(path)``, a directory that exists or can be made and that takes new files;
    ``ValueError`` naming ``what`` otherwise. Checked before work that writes there."""
    path = Path(path)
    existing = existing_ancestor(path)
    if not existing.is_dir():
        raise ValueError(f"{what} {path} cannot be made: {existing} is a file")
    writable_in(f"{what} {path}", existing)
    return path
