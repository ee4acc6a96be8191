"""The loss protocol: what a loss family is, and how compiled kernels reach it.

A *family* is a parameter record (a :class:`typing.NamedTuple` class whose fields are
float64 arrays and numbers) plus Numba-compiled functions of ``(theta, p, ...)`` where ``p``
is an instance of the record:

================================================  ================================================
``value(theta, p) -> float``                       L(θ)
``grad(theta, p, out)``                            out ← ∇L(θ)
``hvp(theta, p, v, out)``                          out ← ∇²L(θ) v
``d3(theta, p, u, v, out)``                        out_i ← Σ_jk ∂³L/∂θ_i∂θ_j∂θ_k u_j v_k
``hess(theta, p, out)`` (optional)                 out ← ∇²L(θ), shape (d, d)
``value_grad(theta, p, out) -> float`` (optional)  L(θ) and out ← ∇L(θ), sharing work
``hessian_parts(theta, p, g, h, f) -> float``      L(θ), g ← ∇L(θ) and ∇²L(θ) = h + fᵀf with
(optional)                                         ``f`` of :attr:`Family.factor_rows` rows,
                                                   ``h`` by its upper triangle (j ≥ i)
``hessian_parts_within(theta, p, g, h, f, a)``     as ``hessian_parts``, but ``h`` may be left
(optional) ``-> (float, float)``                   out where ‖h‖₂ ≤ b < a: returns (L(θ), b)
                                                   then, (L(θ), −1) where ``h`` was written
``hessian_drift(theta, p, anchor, limit)``          a bound b ≥ ‖∇²L(θ) − ∇²L(anchor)‖₂, or
(optional) ``-> float``                             any number above ``limit`` once b exceeds it
``hessian_frobenius(theta, p) -> float``            a bound F ≥ ‖∇²L(θ)‖_F, rounding included
(optional)
``linearise(theta, p) -> state`` (optional)        what every Hessian-vector product at θ shares
``hvp_linearised(theta, p, state, v, out)``        out ← ∇²L(θ) v, given ``state`` made at θ
(optional, with ``linearise``)
``value_grad_linearise(theta, p, out)``            (L(θ), ``linearise(theta, p)``) and
(optional, with ``linearise``)                     out ← ∇L(θ), sharing work
``subset(p, indices) -> record`` (optional)        the same family on the examples ``indices``
================================================  ================================================

:func:`register_family` ties a record class to its functions. Kernels call the generic
functions of this module (:func:`value`, :func:`grad`, ...), which Numba resolves at compile
time from the type of ``p`` (``numba.extending.overload``): a kernel is compiled once per
family, and a family's code is found through its record type, never through an integer code
or a packed array. Missing optional functions get generic versions: ``value_grad`` calls
``value`` and ``grad``; ``hess`` fills columns with ``hvp_linearised`` on the unit vectors;
``hessian_parts`` calls ``hess`` and leaves no factor; ``hessian_parts_within`` calls
``hessian_parts`` and leaves nothing out; ``hessian_drift`` and ``hessian_frobenius``
return +∞ (no bound);
``linearise`` returns θ itself and
``hvp_linearised`` calls ``hvp``; ``value_grad_linearise`` calls ``value_grad`` and
``linearise``.

*Products at one point.* An eigensolver takes many Hessian-vector products at one θ. A family
whose product repeats work that depends on θ alone (a network's forward activations and the
real part of its backward pass) may register ``linearise``, which does that work once and
returns it as a 1-D C-contiguous float64 array (the *state*: a matrix is
flattened, and reshaped where it is used), and ``hvp_linearised``, which computes ∇²L(θ) v
from it. Engines call ``linearise`` once per point and ``hvp_linearised`` for each product;
a state is only ever passed back with the θ and the record it was made from. Where the
gradient's pass computes the same work (a network's forward and backward passes in real
numbers), ``value_grad_linearise`` returns the value, the gradient and the state from one
pass: the engines call it at each step whose sharpness they measure on products.

*Finite sums.* A family whose loss is a mean over N examples,

    L(θ) = (1/N) Σ_{i=1}^N ℓ_i(θ),

says so by registering ``subset`` together with ``examples(p) -> int`` (N, a plain Python
function like ``factor_rows``). ``subset(p, indices)`` takes an int64 array of example
indices (repeats allowed) and returns a record *of the same class* of ``len(indices)``
examples as ``examples`` counts them (or of all N, for a record that keeps the whole data
set with the batch as weights on it), whose loss is the mean over those examples,

    L_B(θ) = (1/|B|) Σ_{i∈B} ℓ_i(θ)

(a repeated index counts as many times as it appears); its value, gradient and
Hessian-vector product are those of L_B through the family's own functions. With B = {i}:
ℓ_i; with B = (0, 1, ..., N − 1): L itself, on a record holding the same numbers in the
same order. Stochastic engines
(:func:`stabsim.maps.sgd.run_sgd`) draw batches B and call ``subset`` in compiled code;
there is no default, so a family without it is not a finite sum (``Loss.finite_sum``).
"""

from __future__ import annotations

import dataclasses
import inspect
import numbers
from collections.abc import Callable

import numpy as np
from numba import types
from numba.core.dispatcher import Dispatcher
from numba.extending import overload

from .._jit import JIT_FLAGS, KERNEL_ONLY, inline

#: the protocol's functions: name → (signature, required)
PROTOCOL = {
    "value": ("value(theta, p) -> float", True),
    "grad": ("grad(theta, p, out)", True),
    "hvp": ("hvp(theta, p, v, out)", True),
    "d3": ("d3(theta, p, u, v, out)", True),
    "hess": ("hess(theta, p, out)", False),
    "value_grad": ("value_grad(theta, p, out) -> float", False),
    "hessian_parts": ("hessian_parts(theta, p, grad_out, hess_out, factor_out) -> float", False),
    "hessian_parts_within": ("hessian_parts_within(theta, p, grad_out, hess_out, factor_out, "
                             "allowance) -> (float, float)", False),
    "hessian_drift": ("hessian_drift(theta, p, anchor, limit) -> float", False),
    "hessian_frobenius": ("hessian_frobenius(theta, p) -> float", False),
    "linearise": ("linearise(theta, p) -> state (a 1-D C-contiguous float64 array)", False),
    "hvp_linearised": ("hvp_linearised(theta, p, state, v, out)", False),
    "value_grad_linearise": ("value_grad_linearise(theta, p, out) -> (float, state)", False),
    "subset": ("subset(p, indices) -> record of the same class", False),
}

_IN_KERNELS_ONLY = (
    "{} is resolved inside compiled kernels from the type of p; from Python call the "
    "methods of a stabsim.losses.Loss instead"
)


def value(theta, p):
    """L(θ) for the family of ``p`` (kernels only)."""
    raise TypeError(_IN_KERNELS_ONLY.format("value"))


def grad(theta, p, out):
    """out ← ∇L(θ) (kernels only)."""
    raise TypeError(_IN_KERNELS_ONLY.format("grad"))


def hvp(theta, p, v, out):
    """out ← ∇²L(θ) v (kernels only)."""
    raise TypeError(_IN_KERNELS_ONLY.format("hvp"))


def d3(theta, p, u, v, out):
    """out ← ∇³L(θ)[u, v] (kernels only)."""
    raise TypeError(_IN_KERNELS_ONLY.format("d3"))


def hess(theta, p, out):
    """out ← ∇²L(θ) (kernels only)."""
    raise TypeError(_IN_KERNELS_ONLY.format("hess"))


def value_grad(theta, p, out):
    """L(θ) and out ← ∇L(θ) (kernels only)."""
    raise TypeError(_IN_KERNELS_ONLY.format("value_grad"))


def hessian_parts(theta, p, grad_out, hess_out, factor_out):
    """L(θ), grad_out ← ∇L(θ), ∇²L(θ) = hess_out + factor_outᵀ factor_out, hess_out symmetric
    and given by its upper triangle: the engines never read its entries below the diagonal,
    which a family may leave unwritten (kernels only)."""
    raise TypeError(_IN_KERNELS_ONLY.format("hessian_parts"))


def hessian_parts_within(theta, p, grad_out, hess_out, factor_out, allowance):
    """:func:`hessian_parts`, except that where the family bounds the 2-norm of the dense
    part h by a number b below ``allowance`` it may leave h out (hess_out not written) and
    return (L(θ), b); otherwise it writes h and returns (L(θ), −1). Then ∇²L(θ) = h + fᵀf
    with ‖h‖₂ ≤ b, and an engine may measure fᵀf alone, within b (kernels only)."""
    raise TypeError(_IN_KERNELS_ONLY.format("hessian_parts_within"))


def hessian_drift(theta, p, anchor, limit):
    """An upper bound b on ‖∇²L(θ) − ∇²L(anchor)‖₂, or any number above ``limit`` once the
    family knows that b exceeds it (kernels only)."""
    raise TypeError(_IN_KERNELS_ONLY.format("hessian_drift"))


def hessian_frobenius(theta, p):
    """An upper bound F on ‖∇²L(θ)‖_F, its own rounding included (kernels only)."""
    raise TypeError(_IN_KERNELS_ONLY.format("hessian_frobenius"))


def linearise(theta, p):
    """The state that Hessian-vector products at θ share (kernels only)."""
    raise TypeError(_IN_KERNELS_ONLY.format("linearise"))


def hvp_linearised(theta, p, state, v, out):
    """out ← ∇²L(θ) v given ``state = linearise(theta, p)`` (kernels only)."""
    raise TypeError(_IN_KERNELS_ONLY.format("hvp_linearised"))


def value_grad_linearise(theta, p, out):
    """L(θ), out ← ∇L(θ) and the state of ``linearise(theta, p)`` (kernels only)."""
    raise TypeError(_IN_KERNELS_ONLY.format("value_grad_linearise"))


def subset(p, indices):
    """The record of the same family on the examples ``indices`` (kernels only)."""
    raise TypeError(_IN_KERNELS_ONLY.format("subset"))


_GENERIC = {"value": value, "grad": grad, "hvp": hvp, "d3": d3, "hess": hess,
            "value_grad": value_grad, "hessian_parts": hessian_parts,
            "hessian_parts_within": hessian_parts_within, "hessian_drift": hessian_drift,
            "hessian_frobenius": hessian_frobenius, "linearise": linearise,
            "hvp_linearised": hvp_linearised, "value_grad_linearise": value_grad_linearise,
            "subset": subset}


@inline
def _value_grad_default(theta, p, out):
    grad(theta, p, out)
    return value(theta, p)


@inline
def _hess_default(theta, p, out):
    """Column j of ∇²L is ∇²L e_j: d Hessian-vector products at one point, so the work they
    share is done once (``linearise``; a network's real pass: 2 + 6d units of work per layer
    instead of 8d)."""
    d = theta.shape[0]
    state = linearise(theta, p)
    unit = np.zeros(d)
    column = np.empty(d)
    for j in range(d):
        unit[j] = 1.0
        hvp_linearised(theta, p, state, unit, column)
        unit[j] = 0.0
        for i in range(d):
            out[i, j] = column[i]


@inline
def _hessian_parts_default(theta, p, grad_out, hess_out, factor_out):
    hess(theta, p, hess_out)
    return value_grad(theta, p, grad_out)


@inline
def _hessian_parts_within_default(theta, p, grad_out, hess_out, factor_out, allowance):
    return hessian_parts(theta, p, grad_out, hess_out, factor_out), -1.0


@inline
def _hessian_drift_default(theta, p, anchor, limit):
    return np.inf


@inline
def _hessian_frobenius_default(theta, p):
    return np.inf


@inline
def _linearise_default(theta, p):
    return theta


@inline
def _hvp_linearised_default(theta, p, state, v, out):
    hvp(theta, p, v, out)


@inline
def _value_grad_linearise_default(theta, p, out):
    loss = value_grad(theta, p, out)
    return loss, linearise(theta, p)


_DEFAULTS = {"value_grad": _value_grad_default, "hess": _hess_default,
             "hessian_parts": _hessian_parts_default,
             "hessian_parts_within": _hessian_parts_within_default,
             "hessian_drift": _hessian_drift_default,
             "hessian_frobenius": _hessian_frobenius_default,
             "linearise": _linearise_default,
             "hvp_linearised": _hvp_linearised_default,
             "value_grad_linearise": _value_grad_linearise_default}


@dataclasses.dataclass(frozen=True, eq=False)
class Family:
    """A registered loss family (made by :func:`register_family`).

    Attributes
    ----------
    record : type
        The parameter record class (a ``typing.NamedTuple``).
    functions : dict
        Protocol name → the family's compiled function (optional ones may be absent).
    shapes : dict
        Field name → required shape (a tuple), entries an int, ``"d"`` (the loss's
        dimension), another name (a length shared by every field that names it) or None.
    dim_of : callable or None
        ``dim_of(p) -> int``: the dimension the record's parameters determine, where no
        field's length is ``"d"``; None when the shapes say all there is.
    factor_rows : callable
        ``factor_rows(p) -> int``: rows of the factor ``hessian_parts`` leaves out of the dense
        Hessian (0 when it returns the whole Hessian densely).
    prefers_dense : bool
        Whether engines should form the Hessian as ``hessian_parts`` gives it rather than work
        on Hessian-vector products (true only where a product costs as much as the matrix).
    builtin : bool
        Whether the record class is part of stabsim (kernels share stabsim's own caches).
    examples : callable or None
        ``examples(p) -> int``: N, the number of examples of a finite-sum family (one that
        registered ``subset``); None for the others.
    threaded : bool
        Whether the family's functions run parallel threads of their own (``prange``).
    """

    record: type
    functions: dict
    shapes: dict
    factor_rows: Callable
    prefers_dense: bool
    builtin: bool
    examples: Callable | None = None
    threaded: bool = False
    dim_of: Callable | None = None

    @property
    def finite_sum(self) -> bool:
        """Whether the family is a mean over examples (it registered ``subset``)."""
        return "subset" in self.functions

    @property
    def name(self) -> str:
        return self.record.__name__

    @property
    def qualified_name(self) -> str:
        return f"{self.record.__module__}.{self.record.__qualname__}"

    def __repr__(self) -> str:
        return f"<loss family {self.qualified_name}>"

    def __reduce_ex__(self, protocol):
        """One of stabsim's families pickles as its record class, and is unpickled as the
        family registered for it where it is unpickled: its functions are the module's own,
        which share their kernels with the engines and the on-disk cache. Pickled by value,
        each would be a new dispatcher of its own, compiled again in every process (a
        user's family is pickled so: the process it goes to may not import its module)."""
        if self.builtin:
            return _registered_family, (self.record,)
        return super().__reduce_ex__(protocol)


_FAMILIES: dict[type, Family] = {}


def _registered_family(record: type) -> Family:
    """The family registered for ``record`` (importing it registered it)."""
    return _FAMILIES[record]


def _is_record_class(record) -> bool:
    return isinstance(record, type) and issubclass(record, tuple) and hasattr(record, "_fields")


def _no_factor(p) -> int:
    return 0


def _is_axis(axis) -> bool:
    """Whether ``axis`` is an entry of a field's shape: a length, a name, or None."""
    if isinstance(axis, bool):
        return False
    return axis is None or isinstance(axis, str) and axis != "" or isinstance(
        axis, numbers.Integral) and axis >= 0


def register_family(record, *, value, grad, hvp, d3, hess=None, value_grad=None,
                    hessian_parts=None, hessian_parts_within=None, hessian_drift=None,
                    hessian_frobenius=None, factor_rows=None, shapes=None,
                    prefers_dense=False, linearise=None, hvp_linearised=None,
                    value_grad_linearise=None, subset=None, examples=None,
                    threaded=False, dim_of=None) -> Family:
    """Register a loss family: a parameter record class and its compiled functions.

    After this, ``Loss(record(...), dim)`` is a loss that every engine and sweep accepts, and
    kernels reach its functions through the type of the record (no recompilation of stabsim
    per call; kernels compiled for a family defined outside stabsim are cached on disk beside
    that family's module, see :mod:`stabsim.losses._engines`).

    Parameters
    ----------
    record : NamedTuple class
        The parameter record. Its fields hold float64 arrays or numbers; a ``Loss`` stores
        them as C-contiguous float64 arrays (floats for numbers).
    value, grad, hvp, d3 : numba dispatchers
        The required functions of the protocol (see the module docstring), made with
        ``numba.njit`` (``cache=True`` recommended). Each writes its result into ``out``.
    hess, value_grad, hessian_parts : numba dispatchers, optional
        Optional functions; generic versions are used when they are absent.
    hessian_parts_within : numba dispatcher, optional
        ``hessian_parts_within(theta, p, grad_out, hess_out, factor_out, allowance) ->
        (value, b)``: ``hessian_parts`` for a family that can bound the 2-norm of its dense
        part h cheaply, before forming it. Where that bound b is below ``allowance`` it
        leaves h out (``hess_out`` not written) and returns b; otherwise it writes h (as
        ``hessian_parts``) and returns −1. GD's dense Lanczos measures fᵀf alone where h is
        left out (the regression model near a zero-loss minimiser), and adds b to the
        residual it reports.
    hessian_drift : numba dispatcher, optional
        ``hessian_drift(theta, p, anchor, limit) -> b`` for a family that can bound cheaply
        how far its Hessian moved between two points: b ≥ ‖∇²L(θ) − ∇²L(anchor)‖₂, or any
        number above ``limit`` as soon as the family knows that the bound exceeds it. GD's
        matrix-free Lanczos then leaves out its start mix where Weyl's inequality leaves no
        room for a top eigenvalue the warm start cannot see
        (:func:`stabsim._lanczos.anchored_top_eigenpair`): one product a step near a
        minimiser instead of two or more. Without it (and without ``hessian_frobenius``),
        every matrix-free start is mixed.
    hessian_frobenius : numba dispatcher, optional
        ``hessian_frobenius(theta, p) -> F`` for a family that can bound cheaply the
        Frobenius norm of its Hessian: F ≥ ‖∇²L(θ)‖_F, the rounding of its own arithmetic
        included (+∞ where it has no bound). Where the warm start's first product meets
        the tolerance with a Rayleigh quotient λ and residual ρ such that F < √2 (λ − ρ),
        that product settles GD's matrix-free measurement without the start mix, wherever
        the Hessian moved (:func:`stabsim._lanczos.anchored_top_eigenpair`): then no
        eigenvalue other than the one within ρ of λ reaches λ − ρ in size.
    factor_rows : callable, optional
        ``factor_rows(p) -> int`` for a family whose ``hessian_parts`` leaves a Gauss–Newton
        factor out of the dense part. ``hessian_parts`` need only write the dense part's
        upper triangle (j ≥ i): the engines read nothing below the diagonal.
    shapes : mapping, optional
        Field name → shape tuple, one entry per axis: an int, ``"d"`` for the dimension,
        another name for a length that every field naming it shares (``"n"`` in
        ``{"z": ("n",), "J": ("n", "d")}``), or None for any length. Every field that holds
        an array needs one: a ``Loss`` checks the fields against it and refuses an array
        field with no shape, since the kernels trust the lengths.
    prefers_dense : bool
        Engines form the dense Hessian (with ``hessian_parts``) instead of using products.
    linearise, hvp_linearised : numba dispatchers, optional
        Given together or not at all: the work Hessian-vector products at one θ share, and
        the product that uses it (module docstring).
    value_grad_linearise : numba dispatcher, optional
        Only with ``linearise``: L(θ), ∇L(θ) and the state of ``linearise`` from one pass.
    subset : numba dispatcher, optional
        ``subset(p, indices) -> record`` for a finite-sum family (module docstring): the
        record of the same class on the examples ``indices``.
    examples : callable, optional
        ``examples(p) -> int``, the number N of examples; required with ``subset`` and
        only with it.
    threaded : bool
        The functions run parallel threads of their own (``prange``): a sweep then runs its
        cells one at a time instead of one per thread, which would run the functions'
        threads inside its own.
    dim_of : callable, optional
        ``dim_of(p) -> int``: the dimension that the parameters determine, for a family
        where it is not the length of a field (a network: the number of its weights). A
        ``Loss`` with another ``dim`` is refused. It may raise ``ValueError`` for a record
        whose fields disagree.

    Returns
    -------
    Family

    Raises
    ------
    TypeError
        If ``record`` is not a NamedTuple class, a function is not a Numba dispatcher, the
        record class is registered already, one of ``subset`` and ``examples`` (or of
        ``linearise`` and ``hvp_linearised``) is given without the other,
        ``value_grad_linearise`` without ``linearise``, ``factor_rows``, ``examples`` or
        ``dim_of`` is not callable, or ``shapes`` names a field the record lacks or has an
        entry that is not a shape.
    """
    if not _is_record_class(record):
        raise TypeError(
            "record must be a typing.NamedTuple class holding the family's parameters, got "
            f"{record!r}"
        )
    if record in _FAMILIES:
        raise TypeError(f"{record.__qualname__} is registered already as {_FAMILIES[record]!r}")
    if (subset is None) != (examples is None):
        raise TypeError("subset and examples go together: a finite-sum family registers "
                        "subset(p, indices) -> record and examples(p) -> N, the number of "
                        "examples")
    if (linearise is None) != (hvp_linearised is None):
        raise TypeError("linearise and hvp_linearised go together: linearise(theta, p) -> "
                        "state does the work every Hessian-vector product at theta shares, "
                        "hvp_linearised(theta, p, state, v, out) uses it")
    if value_grad_linearise is not None and linearise is None:
        raise TypeError("value_grad_linearise(theta, p, out) -> (value, state) returns the "
                        "state of the family's linearise(theta, p): register linearise and "
                        "hvp_linearised with it")
    if examples is not None and not callable(examples):
        raise TypeError(f"examples must be a function examples(p) -> int, got {examples!r}")
    if factor_rows is not None and not callable(factor_rows):
        raise TypeError(f"factor_rows must be a function factor_rows(p) -> int (the rows of "
                        f"the factor hessian_parts leaves out of the dense Hessian), got "
                        f"{factor_rows!r}; for a number k write factor_rows=lambda p: k")
    if dim_of is not None and not callable(dim_of):
        raise TypeError(f"dim_of must be a function dim_of(p) -> int, got {dim_of!r}")
    given = {"value": value, "grad": grad, "hvp": hvp, "d3": d3, "hess": hess,
             "value_grad": value_grad, "hessian_parts": hessian_parts,
             "hessian_parts_within": hessian_parts_within, "hessian_drift": hessian_drift,
             "hessian_frobenius": hessian_frobenius, "linearise": linearise,
             "hvp_linearised": hvp_linearised, "value_grad_linearise": value_grad_linearise,
             "subset": subset}
    functions = {}
    for name, fn in given.items():
        if fn is None:
            continue
        if not isinstance(fn, Dispatcher):
            raise TypeError(
                f"{name} must be a Numba-compiled function {PROTOCOL[name][0]}, got "
                f"{type(fn).__name__}; decorate it with @numba.njit"
            )
        functions[name] = fn
    shapes = dict(shapes or {})
    unknown = sorted(set(shapes) - set(record._fields))
    if unknown:
        raise TypeError(f"shapes names fields {unknown} that {record.__name__} does not have "
                        f"(fields: {list(record._fields)})")
    for field, shape in shapes.items():
        if not (isinstance(shape, tuple) and all(_is_axis(axis) for axis in shape)):
            raise TypeError(f"shapes[{field!r}] must be a tuple with one entry per axis (an "
                            f"int, 'd' for the dimension, another name, or None), got "
                            f"{shape!r}")
    module = inspect.getmodule(record)
    builtin = module is not None and module.__name__.split(".")[0] == "stabsim"
    family = Family(record, functions, shapes, factor_rows or _no_factor, bool(prefers_dense),
                    builtin, examples, bool(threaded), dim_of)
    for name in _GENERIC:
        implementation = functions.get(name, _DEFAULTS.get(name))
        if implementation is not None:  # subset has no default: not every family is a sum
            _overload(name, record, implementation, builtin)
    _FAMILIES[record] = family
    return family


# a call of a user's function, with the generic's parameter names (overload needs them)
_CALLERS = {
    "value": lambda f: lambda theta, p: f(theta, p),
    "grad": lambda f: lambda theta, p, out: f(theta, p, out),
    "hvp": lambda f: lambda theta, p, v, out: f(theta, p, v, out),
    "d3": lambda f: lambda theta, p, u, v, out: f(theta, p, u, v, out),
    "hess": lambda f: lambda theta, p, out: f(theta, p, out),
    "value_grad": lambda f: lambda theta, p, out: f(theta, p, out),
    "hessian_parts": lambda f: (
        lambda theta, p, grad_out, hess_out, factor_out: f(theta, p, grad_out, hess_out,
                                                           factor_out)),
    "hessian_parts_within": lambda f: (
        lambda theta, p, grad_out, hess_out, factor_out, allowance: f(
            theta, p, grad_out, hess_out, factor_out, allowance)),
    "hessian_drift": lambda f: lambda theta, p, anchor, limit: f(theta, p, anchor, limit),
    "hessian_frobenius": lambda f: lambda theta, p: f(theta, p),
    "linearise": lambda f: lambda theta, p: f(theta, p),
    "hvp_linearised": lambda f: lambda theta, p, state, v, out: f(theta, p, state, v, out),
    "value_grad_linearise": lambda f: lambda theta, p, out: f(theta, p, out),
    "subset": lambda f: lambda p, indices: f(p, indices),
}


def _overload(name, record, implementation, builtin):
    """Resolve the generic ``name(theta, p, ...)`` to ``implementation`` when p is a ``record``.

    A function of stabsim's own families (and a default) is spliced into the caller as
    written: its Python function, typed there and never compiled alone (:mod:`stabsim._jit`).
    Spliced code is compiled with the caller's options, so a function compiled with
    ``fastmath`` is called through its dispatcher instead, as a user's function is: spliced
    into the engines (which have no fastmath), the regression model's gradient lost its
    vectorised reductions and a GD step that does not measure the sharpness took 42 µs
    instead of 11 (d = 100, n = 10). A user's function is called through its dispatcher,
    compiled as the user made it (object-mode blocks included), from a one-line wrapper
    spliced in the same way.
    """
    generic = _GENERIC[name]
    options = getattr(implementation, "targetoptions", {})
    spliced = builtin and not options.get("fastmath")
    if spliced or not isinstance(implementation, Dispatcher):
        function = getattr(implementation, "py_func", implementation)
        options = {key: value for key, value in options.items()
                   if key not in ("cache", "nopython", "inline", "nogil")}
        options.setdefault("error_model", JIT_FLAGS["error_model"])
    else:
        function = _CALLERS[name](implementation)
        options = dict(KERNEL_ONLY)
    position = list(inspect.signature(generic).parameters).index("p")

    def typer(*args):
        p = args[position]
        if isinstance(p, types.BaseNamedTuple) and p.instance_class is record:
            return function

    typer.__signature__ = inspect.signature(generic)
    overload(generic, jit_options=options, inline="always", strict=False)(typer)


def registers(record_type, name) -> bool:
    """Whether the family of the Numba record type ``record_type`` registered the optional
    function ``name``: for overloads that choose at compile time what a measurement does
    (keep an anchor for ``hessian_drift``, try the bound of ``hessian_frobenius``)."""
    family = _FAMILIES.get(getattr(record_type, "instance_class", None))
    return family is not None and name in family.functions


def family_of(params) -> Family:
    """The registered family of the record instance ``params``.

    Raises
    ------
    TypeError
        If ``params`` is not an instance of a registered record class; the message says what
        a loss is.
    """
    family = _FAMILIES.get(type(params))
    if family is None:
        raise TypeError(f"params must be a record of a registered loss family, got "
                        f"{type(params).__name__}. {WHAT_A_LOSS_IS}")
    return family


#: what messages say a loss is, where something else was given
WHAT_A_LOSS_IS = (
    "A loss is stabsim.losses.Loss(record, dim): record is an instance of a typing.NamedTuple "
    "class registered with stabsim.losses.register_family(record_class, value=..., "
    "grad=..., hvp=..., d3=...), whose functions are Numba-compiled; or, from a JAX "
    "function of θ, stabsim.from_jax(f, dim)")
