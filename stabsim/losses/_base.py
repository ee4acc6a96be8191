"""The :class:`Loss` every engine takes: a family's parameter record and a dimension."""

from __future__ import annotations

import functools
import hashlib
import numbers
import os

import numpy as np
from numba.core.dispatcher import Dispatcher

from .._validate import boolean, finite_array, finite_float, nonnegative_int, shape_text
from ._protocol import _FAMILIES, WHAT_A_LOSS_IS, Family, family_of

#: a dense d × d request larger than this fraction of the available memory is refused
DENSE_MEMORY_FRACTION = 0.5


def _available_memory() -> int:
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):  # not a POSIX system: assume 4 GiB
        return 4 << 30


def check_dense_memory(dim: int, what: str = "a dense Hessian", count: int = 1) -> None:
    """Refuse ``count`` float64 d × d arrays that would not fit in memory.

    Raises
    ------
    ValueError
        Naming d and the bytes the arrays would take, when they exceed
        :data:`DENSE_MEMORY_FRACTION` of the memory available now.
    """
    dim = nonnegative_int("dim", dim, minimum=1)
    count = nonnegative_int("count", count, minimum=1)
    needed = count * dim * dim * 8
    available = _available_memory()
    if needed > DENSE_MEMORY_FRACTION * available:
        raise ValueError(
            f"{what} at dim = {dim} takes {needed:,} bytes, more than half of the "
            f"{available:,} bytes available; use the matrix-free path (Hessian-vector "
            "products: eigensolver='lanczos')"
        )


def _normalise_field(record_name: str, field: str, value):
    """A record field as stored: a C-contiguous, writable float64 array of the loss's own (a
    copy wherever it would share memory with ``value``: an array the caller changes later
    must not change the loss), or a float."""
    if isinstance(value, np.ndarray) and value.ndim == 0 and value.dtype.kind in "iuf":
        value = value.item()  # a number given as a 0-d array
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        return finite_float(f"{record_name}.{field}", value)
    array = finite_array(f"{record_name}.{field}", value)  # TypeError for the wrong kind
    # a view (of the caller's array or buffer) or the caller's array itself; a read-only
    # array too, which Numba types apart from writable ones (one compile for all)
    if array is value or not array.flags.owndata or not array.flags.writeable:
        array = array.copy()
    return array


def example_indices(name: str, indices, n_examples: int) -> np.ndarray:
    """``indices`` as a non-empty int64 array of example indices in [0, ``n_examples``), or
    raise ``ValueError`` naming the argument."""
    array = np.asarray(indices)
    if array.ndim != 1 or array.size == 0 or not np.issubdtype(array.dtype, np.integer):
        raise ValueError(f"{name} must be a non-empty 1-D array of integer example indices, "
                         f"got {indices!r}")
    if array.min() < 0 or array.max() >= n_examples:
        raise ValueError(f"{name} must lie in [0, {n_examples}) (the number of examples), "
                         f"got values from {array.min()} to {array.max()}")
    return np.ascontiguousarray(array, dtype=np.int64)


def require_loss(loss, name: str = "loss") -> None:
    """Raise ``TypeError`` saying what a loss is unless ``loss`` is a constructed :class:`Loss`
    (and what to make of what was given: a record, its class, a function)."""
    if not isinstance(loss, Loss):
        if type(loss) in _FAMILIES:
            given = (f"a record of the registered family {type(loss).__name__}: pass "
                     "stabsim.losses.Loss(record, dim)")
        elif isinstance(loss, type) and loss in _FAMILIES:
            given = (f"the record class {loss.__name__}: pass stabsim.losses.Loss("
                     f"{loss.__name__}(...), dim), with the family's parameters")
        elif isinstance(loss, Dispatcher):
            given = ("a Numba-compiled function: give it to stabsim.losses.register_family "
                     "as a family's value, with grad, hvp and d3")
        elif callable(loss) and not isinstance(loss, type):
            given = (f"a {type(loss).__name__}: a Python function of θ is a loss through "
                     "stabsim.from_jax(f, dim) (written with jax.numpy)")
        else:
            given = type(loss).__name__
        raise TypeError(f"{name} must be a stabsim.losses.Loss, got {given}. {WHAT_A_LOSS_IS}")
    family_of(getattr(loss, "params", None))


class Loss:
    """A C³ loss L: R^d → R with exact derivatives, given by a registered family.

    Parameters
    ----------
    params : NamedTuple
        An instance of a record class registered with
        :func:`~stabsim.losses.register_family`; its fields are stored as C-contiguous
        float64 arrays (numbers as floats).
    dim : int
        Dimension d of θ.
    min_value : float, optional
        The infimum of L when it is known (used by GD on sqrt(L − min L)).
    check : bool
        Check the family's derivatives against finite differences at a few seeded points
        (:func:`~stabsim.losses.check_derivatives`); a mismatch raises ``ValueError`` naming
        the derivative. stabsim's own families skip it (their tests check them).
    check_points : array_like, shape (k, d), optional
        Where to check (default: three seeded points of norm about 1).

    Raises
    ------
    TypeError
        If ``params`` is not an instance of a registered record class.
    ValueError
        If a field is not finite, has the wrong shape for ``dim``, or a derivative disagrees
        with finite differences.
    """

    name = "loss"
    min_value: float | None = None

    def __init__(self, params, dim, *, min_value=None, check=True, check_points=None):
        family = family_of(params)
        dim = nonnegative_int("dim", dim, minimum=1)
        record = type(params)
        fields = {f: _normalise_field(record.__name__, f, getattr(params, f))
                  for f in record._fields}
        _check_shapes(family, fields, dim)
        self.family: Family = family
        self.params = record(**fields)
        self.dim = dim
        if min_value is not None:
            self.min_value = finite_float("min_value", min_value)
        check = boolean("check", check)
        if check:
            from ._check import check_derivatives

            check_derivatives(self, points=check_points)

    def __repr__(self) -> str:
        if type(self) is Loss:
            return f"Loss({self.family.name}, dim={self.dim})"
        return f"{type(self).__name__}(dim={self.dim})"

    @functools.cached_property
    def provenance(self) -> str:
        """How a result's ``parameters`` name the loss: its ``repr`` and a digest of its
        family and parameter record, ``"Quadratic(dim=2) sha256:3f…"`` (16 hex digits), so
        that two losses a ``repr`` does not tell apart (a network's data, a quadratic's
        matrix) are told apart, and a loss made again with the same parameters is named the
        same. Computed once a loss (the record is the loss's own: about 0.1 s for the
        80 MB of a regression model's Q at d = 1000)."""
        digest = hashlib.sha256(self.family.name.encode())
        for part in self._provenance_parts():
            digest.update(part)
        return f"{self!r} sha256:{digest.hexdigest()[:16]}"

    def _provenance_parts(self):
        """The bytes :attr:`provenance` digests: the record's fields, in order."""
        for field in self.params:
            value = np.asarray(field, dtype=np.float64)
            yield repr(value.shape).encode()
            yield value.tobytes()

    @property
    def finite_sum(self) -> bool:
        """Whether L = (1/N) Σ_i ℓ_i is a mean over examples that :meth:`batch` can select."""
        return self.family.finite_sum

    @property
    def n_examples(self) -> int | None:
        """N, the number of examples of a finite-sum loss (None for the others)."""
        if not self.finite_sum:
            return None
        return int(self.family.examples(self.params))

    def batch(self, indices) -> Loss:
        """The loss L_B(θ) = (1/|B|) Σ_{i∈B} ℓ_i(θ) on the examples ``indices``.

        A repeated index counts as many times as it appears. The result is a :class:`Loss`
        of the same family and dimension, from the family's compiled ``subset``.

        Raises
        ------
        TypeError
            If the loss is not a finite sum (its family registered no ``subset``).
        ValueError
            If ``indices`` is empty or holds a value outside 0 ≤ i < N.
        """
        if not self.finite_sum:
            raise TypeError(f"{self!r} is not a finite sum: its family "
                            f"{self.family.name} registered no subset(p, indices)")
        indices = example_indices("indices", indices, self.n_examples)
        record = self.family.functions["subset"](self.params, indices)
        return Loss(record, self.dim, check=False)

    @property
    def factor_rows(self) -> int:
        """Rows of the factor F that ``hessian_parts`` leaves out of the dense Hessian."""
        return int(self.family.factor_rows(self.params))

    def check_point(self, theta, name: str = "theta") -> np.ndarray:
        """Return ``theta`` as a finite float64 vector of length ``dim``, or raise."""
        return finite_array(name, theta, shape=(self.dim,))

    def _fn(self, name):
        return self.family.functions[name]

    def value(self, theta) -> float:
        """L(θ)."""
        return self._value(self.check_point(theta))

    def grad(self, theta) -> np.ndarray:
        """∇L(θ), shape (d,)."""
        return self._grad(self.check_point(theta))

    def hvp(self, theta, v) -> np.ndarray:
        """∇²L(θ) v, shape (d,)."""
        return self._hvp(self.check_point(theta), self.check_point(v, "v"))

    # The unchecked forms below are for stabsim's own inner loops (flows, projections,
    # eigensolvers), whose points were checked once at their public entry: each argument is
    # the caller's promise of a real vector of length d (made a C-contiguous float64 array
    # here, which costs nothing for one). A NaN argument gives a NaN result, which those
    # loops report. The checks of the public methods took 30% of a θ† and central-flow
    # comparison on the two-scale regression model (d = 6).

    def _value(self, theta) -> float:
        """:meth:`value` of an unchecked θ (see above)."""
        return float(self._fn("value")(_vector(theta), self.params))

    def _grad(self, theta) -> np.ndarray:
        """:meth:`grad` of an unchecked θ (see above)."""
        out = np.empty(self.dim)
        self._fn("grad")(_vector(theta), self.params, out)
        return out

    def _hvp(self, theta, v) -> np.ndarray:
        """:meth:`hvp` of an unchecked θ and v (see above)."""
        out = np.empty(self.dim)
        self._fn("hvp")(_vector(theta), self.params, _vector(v), out)
        return out

    def _hvp_at(self, theta):
        """v ↦ ∇²L(θ) v for the many products of an iterative solver at one unchecked θ (see
        above), each v only flattened (a float64 vector of length d is the caller's promise;
        the per-product checks of :meth:`hvp` cost more than the product on small models)."""
        theta = _vector(theta).copy()  # a state is of one θ: keep ours unchanged
        params, dim = self.params, self.dim
        if "linearise" in self.family.functions:  # the work products at θ share, done once
            kernel = functools.partial(self._fn("hvp_linearised"), theta, params,
                                       self._fn("linearise")(theta, params))
        else:
            kernel = functools.partial(self._fn("hvp"), theta, params)

        def product(v):
            out = np.empty(dim)
            kernel(np.ascontiguousarray(np.ravel(v), dtype=np.float64), out)
            return out

        return product

    def hessian(self, theta) -> np.ndarray:
        """∇²L(θ), shape (d, d): the family's ``hess``, or d Hessian-vector products at θ.

        Raises
        ------
        ValueError
            When the d × d array would not fit in memory (:func:`check_dense_memory`).
        """
        return self._hessian(self.check_point(theta))

    def _hessian(self, theta) -> np.ndarray:
        """:meth:`hessian` of an unchecked θ (see above)."""
        theta = _vector(theta)
        check_dense_memory(self.dim)
        out = np.empty((self.dim, self.dim))
        if "hess" in self.family.functions:
            self._fn("hess")(theta, self.params, out)
            return out
        product = self._hvp_at(theta)  # the work the d products share, done once
        unit = np.zeros(self.dim)
        for j in range(self.dim):
            unit[j] = 1.0
            out[:, j] = product(unit)
            unit[j] = 0.0
        return out

    def d3(self, theta, u, v) -> np.ndarray:
        """∇³L(θ)[u, v], the vector with entries Σ_jk ∂³L/∂θ_i∂θ_j∂θ_k u_j v_k."""
        return self._d3(self.check_point(theta), self.check_point(u, "u"),
                        self.check_point(v, "v"))

    def _d3(self, theta, u, v) -> np.ndarray:
        """:meth:`d3` of an unchecked θ, u and v (see above)."""
        out = np.empty(self.dim)
        self._fn("d3")(_vector(theta), self.params, _vector(u), _vector(v), out)
        return out


def _vector(x) -> np.ndarray:
    """``x`` as a C-contiguous float64 array (itself where it is one)."""
    return np.ascontiguousarray(x, dtype=np.float64)


def _check_shapes(family: Family, fields: dict, dim: int) -> None:
    """Refuse fields whose shapes disagree with ``family.shapes`` and ``dim``, array fields
    the family gives no shape for, and a ``dim`` other than ``family.dim_of`` says."""
    record = family.name
    lengths = {"d": dim}  # each named axis, bound by the first field that has it
    binders = {"d": None}
    for field, value in fields.items():
        got = np.shape(value)
        shape = family.shapes.get(field)
        if shape is None:
            if got:
                raise ValueError(
                    f"{record}.{field} is an array of shape {shape_text(got)}, and its family "
                    f"gives no shape for it, so Loss cannot check it against dim: register "
                    f"{record} with shapes={{{field!r}: (...)}}, one entry per axis: an "
                    "int, 'd' for the dimension, a name shared with other fields' axes, or "
                    "None for any length")
            continue
        ok = len(got) == len(shape)
        for axis, length in zip(shape, got, strict=True) if ok else ():
            if isinstance(axis, str):
                binders.setdefault(axis, field)
                ok = ok and lengths.setdefault(axis, length) == length
            elif axis is not None:
                ok = ok and axis == length
        if not ok:
            want = tuple(lengths.get(axis, axis) if isinstance(axis, str) else axis
                         for axis in shape)
            bound = "".join(f", {axis} = {lengths[axis]} (from {binders[axis]})"
                            for axis in dict.fromkeys(shape)
                            if isinstance(axis, str) and binders.get(axis) not in (None, field))
            raise ValueError(f"{record}.{field} must have shape {shape_text(want)} for "
                             f"dim = {dim}{bound}, got {got}")
    if family.dim_of is not None:
        implied = family.dim_of(family.record(**fields))
        if implied != dim:
            raise ValueError(f"the parameters of this {record} make a loss of dimension "
                             f"{implied}, got dim = {dim}")
