"""Checks of a loss family's derivatives against finite differences, at construction.

Each derivative is compared with a central difference of the one below it along a seeded
random direction, so the check costs a few calls of O(d) memory each, whatever d:

- ∇L·v against (L(θ + hv) − L(θ − hv)) / 2h;
- ∇²L v against (∇L(θ + hv) − ∇L(θ − hv)) / 2h;
- ∇³L[u, v] against (∇²L(θ + hu) v − ∇²L(θ − hu) v) / 2h;
- the optional functions (dense Hessian, fused value/gradient, Hessian parts, the product
  from a linearisation) against the required ones they must agree with to round-off, and
  the bound ``hessian_parts_within`` gives where it leaves the dense part out against that
  part's 2-norm, the bound ``hessian_drift`` gives against a lower bound of
  ‖∇²L(θ) − ∇²L(θ')‖₂ from products (:func:`_check_drift`), and the bound
  ``hessian_frobenius`` gives against a lower bound of ‖∇²L(θ)‖_F from products
  (:func:`_check_frobenius`);
- a finite sum's ``subset`` and ``examples`` against the identities of a mean over examples
  (:func:`_finite_sum_records`, :func:`_check_finite_sum`), to round-off.

Tolerances (floating point): with h = ε^{1/3} max(1, |θ|) a central difference has truncation
error h² |f'''|/6 ≈ 1e-11 |f'''| and rounding error about ε |f| / h ≈ 4e-11 |f|; the check
allows a relative error of 1e-5 plus 100 times that rounding bound. At a stationary point
(∇L·v = 0 to within h |∇²L v|, as at a minimiser) the difference is its truncation and the
rounding of L's terms, which no tolerance relative to ∇L or L resolves (the Minimalist loss
at (1, 1): 3.4e-14 against 3.4e-19 allowed): a mismatch there within ten times the
truncation error h² |∇³L[v, v, v]|/6 at the smallest step says so, and the check points
should lie away from stationary points (the default ones are random). Allowances for it
were tried and dropped: h |∇²L v| passed a gradient off by a factor 2 beside a direction of
curvature 1e10, and 10 h² |∇³L[v, v, v]|/6 one off by 30% on a loss varying on a length
scale of 1e-5. A loss that varies on a
length scale ℓ much shorter than 1 has a truncation error (h/ℓ)²/6 relative, above 1e-5 for
ℓ below about 1e-3 (cos(kθ) with k = 3000: 5e-5), so a difference that misses the tolerance
is taken again at h/8 and h/64 (truncation 64 and 4096 times smaller, the rounding bound
allowed growing with 1/h), and the derivative passes at the first step that meets it. A wrong
derivative (a sign, a missing term, a zero ∇³L) is wrong by O(1) relative at every step, far
outside it.
"""

from __future__ import annotations

import numbers

import numpy as np

from .._validate import seed as check_seed
from ._base import require_loss

RTOL = 1e-5
#: optional functions must agree with the required ones to round-off (relative)
ROUNDOFF_RTOL = 1e-9
_EPS = np.finfo(np.float64).eps


def _call(loss, name, *args):
    """Run the family's function ``name``; raise ValueError naming it if it fails."""
    fn = loss.family.functions[name]
    try:
        return fn(*args)
    except Exception as exc:  # compilation or runtime failure inside the family's code
        from ._protocol import PROTOCOL

        raise ValueError(
            f"{_name(loss)}: {name} failed; it must follow {PROTOCOL[name][0]} with "
            f"float64 arrays: {type(exc).__name__}: {exc}"
        ) from exc


def _float(loss, name, result):
    """The number the family's function ``name`` returned (its value, as a float); raise
    ValueError naming the function and its signature if it is not one (an array: a value
    written elementwise, ``0.5 * p.c * theta**2`` without a sum)."""
    from ._protocol import PROTOCOL

    if np.ndim(result) == 0:
        try:
            return float(result)
        except (TypeError, ValueError):
            pass
    got = (f"an array of shape {np.shape(result)}" if isinstance(result, np.ndarray)
           else type(result).__name__)
    raise ValueError(
        f"{_name(loss)}: {name} must return the loss as one float, following "
        f"{PROTOCOL[name][0]}; got {got}"
    )


def _vector(loss, name, *args, shape=None):
    out = np.full(shape or (loss.dim,), np.nan)  # an entry left unwritten shows as NaN
    _call(loss, name, *args, out)
    return out


def _state(loss, name, state):
    """The state ``name`` returned (``linearise`` or ``value_grad_linearise``); raise
    ValueError unless it is a 1-D C-contiguous float64 array, which the engines keep it in
    (another passed this check and then failed to compile in ``run_gd``: a Numba
    TypingError)."""
    if (isinstance(state, np.ndarray) and state.ndim == 1 and state.dtype == np.float64
            and state.flags.c_contiguous):
        return state
    got = (f"a {state.ndim}-D {'' if state.flags.c_contiguous else 'non-contiguous '}"
           f"{state.dtype} array of shape {state.shape}" if isinstance(state, np.ndarray)
           else type(state).__name__)
    raise ValueError(
        f"{_name(loss)}: {name} must return the state as a 1-D C-contiguous float64 array, "
        f"which the engines keep it in; got {got}: flatten it (return "
        "np.ascontiguousarray(state).ravel() and reshape it in hvp_linearised, "
        "state.reshape(...))")


def _finite(loss, name, value, k):
    if not np.all(np.isfinite(value)):
        raise ValueError(
            f"{_name(loss)}: {name} gave a non-finite result at check point {k}"
            f"{'' if name == 'value' else ' (does it write every entry of out?)'}; "
            f"{_dim_hint(loss)}pass check_points= where the loss is finite"
        )


def _dim_hint(loss) -> str:
    """For a loss of a registered family (whose functions read a parameter record sized by
    ``dim``): the hint to check ``dim``. A wrong one makes the functions read past the
    record or leave entries of ``out`` unwritten, which gives non-finite results as often as
    disagreeing ones."""
    return (f"check that dim = {loss.dim} matches the parameters, or "
            if type(loss).name == "loss" else "")


def _compare(loss, what, against, exact, approx, noise, k, step=None, rtol=RTOL, hint=None):
    err = float(np.linalg.norm(np.atleast_1d(exact - approx)))
    scale = float(np.linalg.norm(np.atleast_1d(exact)) + np.linalg.norm(np.atleast_1d(approx)))
    if not err <= rtol * scale + noise:
        steps = "" if step is None else f" at step h/64, h = {step:.3g} (h and h/8 missed too)"
        hint = hint or f"check the formula of {what}, and that dim matches the parameters"
        raise ValueError(
            f"{_name(loss)}: {what} disagrees with {against} at check point {k}: "
            f"|difference| = {err:.3g}, |value| = {scale / 2:.3g} (allowed "
            f"{rtol * scale + noise:.3g}){steps}; {hint}"
        )


def _agrees(loss, k, what, against, exact, approx, noise, hint=None):
    """:func:`_compare` of an optional function with the required one it computes another
    way: equal to round-off (:data:`ROUNDOFF_RTOL`), each quantity against its own size (a
    value joined to its gradient had hidden behind it, and the finite differences'
    1e-5 had let a value off by 5e-5 relative through), plus ``noise``: round-off of the
    terms the quantity sums where it is small beside them."""
    _compare(loss, what, against, exact, approx, noise + 1e-300, k, rtol=ROUNDOFF_RTOL,
             hint=hint)


#: the steps of a finite difference, in units of the first (module docstring)
STEP_FRACTIONS = (1.0, 1.0 / 8.0, 1.0 / 64.0)


def _compare_difference(loss, what, exact, name, theta, direction, args, h, k):
    """Compare ``exact`` with the central difference of the family's function ``name``
    (called with ``args`` after θ) along ``direction``, at the steps
    h·:data:`STEP_FRACTIONS`, passing at the first that agrees."""
    for fraction in STEP_FRACTIONS:
        step = h * fraction
        if name == "value":
            plus = _float(loss, name, _call(loss, name, theta + step * direction, *args))
            minus = _float(loss, name, _call(loss, name, theta - step * direction, *args))
            size = abs(plus) + abs(minus)
        else:
            plus = _vector(loss, name, theta + step * direction, *args)
            minus = _vector(loss, name, theta - step * direction, *args)
            size = np.linalg.norm(plus) + np.linalg.norm(minus)
        try:
            _compare(loss, what, f"finite differences of {name}", exact,
                     (plus - minus) / (2 * step), 100 * _EPS * size / step, k, step=h)
            return
        except ValueError:
            if fraction == STEP_FRACTIONS[-1]:
                raise


def _truncation_only(loss, theta, p, v, exact, hv, h) -> bool:
    """Whether a gradient check that missed (:func:`_compare_difference`) missed only by
    what a stationary point explains: ∇L·v = ``exact`` within h |∇²L v| of 0 (``hv`` is
    ∇²L v), and the difference at the smallest step within ten times its truncation error
    step² |∇³L[v, v, v]|/6 plus its rounding bound (module docstring). A mismatch larger
    than that is a wrong gradient, wherever it is."""
    if not abs(exact) <= h * np.linalg.norm(hv):
        return False
    step = h * STEP_FRACTIONS[-1]
    plus = _float(loss, "value", _call(loss, "value", theta + step * v, p))
    minus = _float(loss, "value", _call(loss, "value", theta - step * v, p))
    third = abs(float(v @ _vector(loss, "d3", theta, p, v, v)))
    mismatch = abs(exact - (plus - minus) / (2 * step))
    return mismatch <= 10.0 * step**2 * third / 6.0 + 100 * _EPS * (abs(plus) + abs(minus)) / step


#: a finite sum of at most this many examples is checked on every one of them; a larger one on
#: a seeded sample of this many (0 and N − 1 among them) beside the rest taken as one batch
EXAMPLES_CHECKED = 32

_SUBSET_HINT = (
    "subset(p, indices) must return the record of the batch loss L_B = (1/|B|) Σ_{i∈B} ℓ_i "
    "(a repeated index counting as often as it appears), and examples(p) the N of "
    "L = (1/N) Σ_i ℓ_i: a weight or count the record keeps must be the batch's, not the whole "
    "data set's (docs/stochastic.md)")


def _indices_text(indices) -> str:
    """``indices`` as a message shows them; by NumPy, not a Python list of N ints (it is
    made for every batch checked, and N may be in the hundreds of thousands)."""
    indices = np.asarray(indices)
    if indices.size <= 4:
        return str([int(i) for i in indices])
    first, second, last = int(indices[0]), int(indices[1]), int(indices[-1])
    if np.array_equal(indices, np.arange(first, first + indices.size)):
        return f"[{first}, {second}, …, {last}]"
    return f"[{first}, {second}, … ({indices.size} indices)]"


def _examples_of(loss, record, what: str) -> int:
    """The family's ``examples(record)``, which must be a positive integer."""
    try:
        n = loss.family.examples(record)
    except Exception as exc:  # the family's own Python function
        raise ValueError(f"{_name(loss)}: examples(p) failed on {what}: "
                         f"{type(exc).__name__}: {exc}") from exc
    if isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < 1:
        raise ValueError(f"{_name(loss)}: examples(p) must return N, the number of examples "
                         f"(a positive int), got {n!r} for {what}")
    return int(n)


def _subset(loss, indices):
    """The record ``subset(p, indices)`` returns, as :meth:`Loss.batch` stores it; raise
    ValueError if it is not a record of the family's own class that fits ``dim``."""
    from ._base import Loss

    indices = np.ascontiguousarray(indices, dtype=np.int64)
    what = f"subset(p, {_indices_text(indices)})"
    record = _call(loss, "subset", loss.params, indices)
    if type(record) is not loss.family.record:
        raise ValueError(f"{_name(loss)}: {what} must return a {loss.family.name} record "
                         f"(the class of p), got {type(record).__name__}")
    try:
        return Loss(record, loss.dim, check=False).params
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{_name(loss)}: {what} returned a record that makes no loss of "
                         f"dim = {loss.dim}: {exc}") from exc


def _finite_sum_records(loss, seed: int):
    """The batches that :func:`_check_finite_sum` evaluates, for a finite-sum family (None
    for another): every example in order, each example of a sample S alone, the rest R as
    one batch, and (N − 1, N − 1, 0).

    ``examples`` is checked first on batches of index 0 alone, which any data set holds:
    ``examples(subset(p, [0]))`` must be 1 and ``examples(subset(p, [0, 0]))`` 2, or N for
    both where the batch's record keeps the whole data set (a batch stored as counts or
    weights over it; the value identities below then check those). A wrong N
    (``p.X.size`` for the rows of X: 18 for 6 examples) is refused there, before a batch
    holds an index it claims, which the compiled ``subset`` would read without bounds
    checks (an N compared with a field's length would need to know which axis counts the
    examples, which the protocol does not say). S is every example when N ≤
    :data:`EXAMPLES_CHECKED`, else a seeded sample of that many with 0 and N − 1."""
    if "subset" not in loss.family.functions:
        return None
    n = _examples_of(loss, loss.params, "p")
    for indices in ([0], [0, 0]):
        count = _examples_of(loss, _subset(loss, indices), f"subset(p, {indices})")
        if count not in (len(indices), n):
            raise ValueError(
                f"{_name(loss)}: examples(p) gives {count} for the record of subset(p, "
                f"{indices}), a batch of {len(indices)} (and N = {n} for p): examples(p) "
                "must count the examples L is a mean over (a length such as p.X.shape[0], "
                "not p.X.size), and subset(p, indices) must return the record of the "
                "examples indices, repeats included")
    if n <= EXAMPLES_CHECKED:
        sample = np.arange(n)
    else:
        middle = np.random.default_rng([seed, 1]).choice(np.arange(1, n - 1),
                                                         EXAMPLES_CHECKED - 2, replace=False)
        sample = np.sort(np.concatenate(([0, n - 1], middle)))
    rest = np.setdiff1d(np.arange(n), sample)
    whole = _subset(loss, np.arange(n))
    count = _examples_of(loss, whole, f"subset(p, {_indices_text(np.arange(n))})")
    if count != n:
        raise ValueError(f"{_name(loss)}: examples(p) gives {count} for the record of every "
                         f"example, subset(p, {_indices_text(np.arange(n))}), and {n} for "
                         f"p; {_SUBSET_HINT}")
    return {"n": n, "sample": sample, "rest": rest, "whole": whole,
            "singles": [_subset(loss, [i]) for i in sample],
            "others": _subset(loss, rest) if rest.size else None,
            "repeat": _subset(loss, [n - 1, n - 1, 0])}


def _check_finite_sum(loss, records, theta, k, value, g) -> None:
    """Check the finite-sum identities at θ, values and gradients, to round-off: L on every
    example in order is L; (Σ_{i∈S} L_{[i]} + |R| L_R)/N is L (with S every example:
    mean_i ℓ_i = L); L_{(N−1, N−1, 0)} = (2ℓ_{N−1} + ℓ_0)/3. Round-off is relative to the
    terms summed, (Σ_{i∈S} |ℓ_i| + |R| |L_R|)/N and the same of the gradients' norms (at a
    minimiser of L the ℓ_i and their gradients need not vanish). The cost at each point:
    |S| + 3 evaluations of value and grad (at most :data:`EXAMPLES_CHECKED` + 3) on batches
    of 2N + 3 examples in all: O(N) work."""
    n, sample, rest = records["n"], records["sample"], records["rest"]

    def at(record, what):
        v = _float(loss, "value", _call(loss, "value", theta, record))
        _finite(loss, f"value on the record of {what}", v, k)
        gr = _vector(loss, "grad", theta, record)
        _finite(loss, f"grad on the record of {what}", gr, k)
        return v, gr

    singles = [at(r, f"subset(p, [{i}])") for i, r in zip(sample, records["singles"],
                                                          strict=True)]
    values = np.array([s[0] for s in singles])
    grads = np.array([s[1] for s in singles])
    total_v, total_g = values.sum(), grads.sum(axis=0)
    size_v = np.abs(values).sum()
    size_g = np.linalg.norm(grads, axis=1).sum()
    if records["others"] is not None:
        v_r, g_r = at(records["others"], f"subset(p, {_indices_text(rest)})")
        total_v, total_g = total_v + rest.size * v_r, total_g + rest.size * g_r
        size_v, size_g = size_v + rest.size * abs(v_r), size_g + rest.size * np.linalg.norm(g_r)
    noise_v, noise_g = ROUNDOFF_RTOL * size_v / n, ROUNDOFF_RTOL * size_g / n

    every = f"subset(p, {_indices_text(np.arange(n))}), every example in order,"
    v_w, g_w = at(records["whole"], every)
    _agrees(loss, k, f"value on {every}", "value", value, v_w, noise_v, hint=_SUBSET_HINT)
    _agrees(loss, k, f"grad on {every}", "grad", g, g_w, noise_g, hint=_SUBSET_HINT)
    if rest.size:
        parts = (f"(Σ over {sample.size} examples i of L on subset(p, [i]) + {rest.size} L "
                 f"on the other {rest.size} as one batch)/N, N = {n},")
    else:
        parts = f"the mean over the N = {n} examples i of L on subset(p, [i])"
    _agrees(loss, k, f"{parts} (value)", "value", value, total_v / n, noise_v,
            hint=_SUBSET_HINT)
    _agrees(loss, k, f"{parts} (grad)", "grad", g, total_g / n, noise_g, hint=_SUBSET_HINT)
    last, first = singles[-1], singles[0]  # examples N − 1 and 0
    repeat = f"subset(p, [{n - 1}, {n - 1}, 0])"
    v_3, g_3 = at(records["repeat"], repeat)
    _agrees(loss, k, f"value on {repeat}", f"(2ℓ_{n - 1} + ℓ_0)/3 (a repeated index counts "
            "twice)", (2 * last[0] + first[0]) / 3, v_3,
            ROUNDOFF_RTOL * (2 * abs(last[0]) + abs(first[0])) / 3, hint=_SUBSET_HINT)
    _agrees(loss, k, f"grad on {repeat}", f"(2∇ℓ_{n - 1} + ∇ℓ_0)/3 (a repeated index counts "
            "twice)", (2 * last[1] + first[1]) / 3, g_3,
            ROUNDOFF_RTOL * (2 * np.linalg.norm(last[1]) + np.linalg.norm(first[1])) / 3,
            hint=_SUBSET_HINT)


def _check_parts_within(loss, theta, k, v, hv, value, grad, roundoff) -> None:
    """``hessian_parts_within`` at allowance 0 (nothing is below it: the dense part h is
    written, and h + fᵀf must be the Hessian) and at allowance ∞ (h may be left out: the
    bound b returned must be at least ‖h‖₂, from ``eigvalsh`` of the h written before, less
    round-off, hess_out must be left as it was, and |∇²L v − fᵀf v| = |h v| at most b).
    ``value`` and ``grad`` are (the value or gradient, its round-off)."""
    d, rows, p = loss.dim, loss.factor_rows, loss.params
    name = "hessian_parts_within"
    norm = None
    for allowance in (0.0, np.inf):
        dense = np.full((d, d), np.nan)
        factor = np.full((rows, d), np.nan)
        g5 = np.full(d, np.nan)
        result = _call(loss, name, theta, p, g5, dense, factor, allowance)
        if not (isinstance(result, tuple) and len(result) == 2):
            raise ValueError(f"{_name(loss)}: {name} must return the pair (value, b), got "
                             f"{type(result).__name__}")
        value5 = _float(loss, name, result[0])
        bound = _float(loss, name, result[1])
        _agrees(loss, k, name, "value", value[0], value5, value[1])
        _agrees(loss, k, name, "grad", grad[0], g5, grad[1])
        _finite(loss, name, factor, k)
        if bound == -1.0:
            dense = np.triu(dense) + np.triu(dense, 1).T
            _finite(loss, name, dense, k)
            _agrees(loss, k, name, "hvp", dense @ v + factor.T @ (factor @ v), hv, roundoff)
            norm = float(np.max(np.abs(np.linalg.eigvalsh(dense))))
        elif allowance == 0.0 or not bound >= 0.0:
            raise ValueError(
                f"{_name(loss)}: {name} returned b = {bound!r} at allowance {allowance} "
                f"(point {k}): b must be -1 where the dense part is written, or a bound "
                "0 <= b < allowance on its 2-norm where it is left out")
        elif bound < norm - roundoff:
            raise ValueError(
                f"{_name(loss)}: {name} left the dense part out with the bound b = "
                f"{bound:.6g}, below its 2-norm {norm:.6g} (point {k}): b must bound it")
        elif not np.isnan(dense).all():
            raise ValueError(
                f"{_name(loss)}: {name} left the dense part out (b = {bound:.6g}) but wrote "
                f"into hess_out (point {k}): where it leaves the part out it must not write "
                "it, the engines keep zeros there")
        else:
            # ∇²L v − fᵀf v = h v, and |h v| ≤ ‖h‖₂ ≤ b
            rest = float(np.linalg.norm(hv - factor.T @ (factor @ v)))
            if rest > bound + roundoff:
                raise ValueError(
                    f"{_name(loss)}: {name} left the dense part out with the bound b = "
                    f"{bound:.6g}, but |∇²L v − fᵀf v| = {rest:.6g} for its factor f (point "
                    f"{k}): the factor it writes must be that of hessian_parts")


#: power-iteration steps of :func:`_check_drift`'s lower bound of ‖∇²L(θ) − ∇²L(θ')‖₂
DRIFT_ITERATIONS = 20


def _check_drift(loss, theta, other, k, rng) -> None:
    """``hessian_drift(θ, p, θ', limit)`` against ‖E‖₂, E = ∇²L(θ) − ∇²L(θ'), from below.

    |E v| ≤ ‖E‖₂ for every unit v, and power iteration on E (v ← E v/|E v|, two products a
    step, from a seeded v) drives |E v| towards ‖E‖₂; the largest |E v| it meets is a lower
    bound ℓ, less the round-off of the products (:data:`ROUNDOFF_RTOL` of |∇²L(θ) v| +
    |∇²L(θ') v|). At ``limit`` = ∞ the family returns its bound b, which must be at least
    ℓ; at ``limit`` = ℓ/2 below ‖E‖₂ the bound exceeds the limit, so what it returns must
    too (a number at most ``limit`` claims ‖E‖₂ ≤ limit). O(d) memory: products only."""
    p = loss.params
    name = "hessian_drift"
    v = rng.standard_normal(loss.dim)
    v /= np.linalg.norm(v)
    lower = roundoff = 0.0
    for _ in range(DRIFT_ITERATIONS):
        here = _vector(loss, "hvp", theta, p, v)
        there = _vector(loss, "hvp", other, p, v)
        difference = here - there
        size = float(np.linalg.norm(difference))
        noise = ROUNDOFF_RTOL * float(np.linalg.norm(here) + np.linalg.norm(there))
        if size - noise > lower - roundoff:
            lower, roundoff = size, noise
        if not size > 0.0:
            break
        v = difference / size
    bound = _float(loss, name, _call(loss, name, theta, p, other, np.inf))
    if not bound >= lower - roundoff:  # also NaN
        raise ValueError(
            f"{_name(loss)}: {name} returned {bound!r} between check point {k} and another "
            f"point, below |(∇²L(θ) − ∇²L(θ')) v| = {lower:.6g} for a unit v: it must be an "
            "upper bound on the 2-norm of the Hessian's change")
    limit = 0.5 * (lower - roundoff)
    if limit > 0.0:
        early = _float(loss, name, _call(loss, name, theta, p, other, limit))
        if not early > limit:
            raise ValueError(
                f"{_name(loss)}: {name} returned {early!r} at limit {limit:.6g} between check "
                f"point {k} and another point, where |(∇²L(θ) − ∇²L(θ')) v| = {lower:.6g} "
                "for a unit v: a number at most the limit claims the change is that small; "
                "above the limit it may return any number above it")


#: the orthonormal vectors of :func:`_check_frobenius` (all d of them, which make its lower
#: bound the norm itself, for d up to this)
FROBENIUS_VECTORS = 8


def _check_frobenius(loss, theta, k, rng) -> None:
    """``hessian_frobenius(θ, p)`` against ‖∇²L(θ)‖_F, from below.

    For orthonormal q_1 … q_m, Σ_i |∇²L q_i|² = ‖∇²L Q‖_F² ≤ ‖∇²L‖_F² (equal for m = d).
    q_1 ends :data:`DRIFT_ITERATIONS` steps of power iteration on ∇²L from a seeded vector
    (near the top eigenvector, so that a bound below the largest |λ| is caught); the others
    are seeded random vectors orthonormalised against it (QR), m = min(d,
    :data:`FROBENIUS_VECTORS`). The bound F must be at least √(Σ_i |∇²L q_i|²) less the
    round-off of the products (:data:`ROUNDOFF_RTOL` of that norm). O(m d) memory."""
    p = loss.params
    name = "hessian_frobenius"
    v = rng.standard_normal(loss.dim)
    for _ in range(DRIFT_ITERATIONS):
        v /= np.linalg.norm(v)
        v = _vector(loss, "hvp", theta, p, v)
        if not np.linalg.norm(v) > 0.0:
            v = rng.standard_normal(loss.dim)
            break
    m = min(loss.dim, FROBENIUS_VECTORS)
    start = np.column_stack([v] + [rng.standard_normal(loss.dim) for _ in range(m - 1)])
    basis, _ = np.linalg.qr(start)
    square = sum(float(np.sum(_vector(loss, "hvp", theta, p, np.ascontiguousarray(q)) ** 2))
                 for q in basis.T)
    lower = np.sqrt(square)
    bound = _float(loss, name, _call(loss, name, theta, p))
    if not bound >= lower * (1.0 - ROUNDOFF_RTOL):  # also NaN
        raise ValueError(
            f"{_name(loss)}: {name} returned {bound!r} at check point {k}, below ‖∇²L(θ) Q‖_F "
            f"= {lower:.6g} for {m} orthonormal vectors Q: it must be an upper bound on the "
            "Frobenius norm of the Hessian")


def _name(loss) -> str:
    """How messages name the loss: its family's record, or its own ``repr`` for a loss
    class of its own (a JAX loss: from_jax(f, dim=2))."""
    return loss.family.name if type(loss).name == "loss" else repr(loss)


def check_derivatives(loss, points=None, seed: int = 0) -> None:
    """Check every derivative of ``loss`` against finite differences (see module docstring).

    A finite-sum family's ``subset`` and ``examples`` are checked too
    (:func:`_finite_sum_records`, :func:`_check_finite_sum`): ``examples`` on batches of one
    and two, then at each point the identities of a mean over examples, values and
    gradients, to round-off. That costs up to :data:`EXAMPLES_CHECKED` + 5 calls of
    ``subset`` once, and at each point up to :data:`EXAMPLES_CHECKED` + 3 evaluations of
    value and grad, on batches of 2N + 3 examples in all: O(N) work, about two evaluations
    of L (and the calls' overhead).

    Parameters
    ----------
    loss : Loss
    points : array_like, shape (k, d), optional
        Check points; default three seeded points with entries N(0, 1/d).
    seed : int
        Seed of the default points and of the directions (and of the examples checked of a
        finite sum of more than :data:`EXAMPLES_CHECKED`).

    Raises
    ------
    ValueError
        Naming the first derivative that disagrees, a function that fails or leaves a
        non-finite entry, or a finite sum's ``subset`` or ``examples`` that breaks an
        identity of a mean over examples.
    """
    require_loss(loss)
    d = loss.dim
    seed = check_seed("seed", seed)
    rng = np.random.default_rng(seed)
    if points is None:
        points = rng.standard_normal((3, d)) / np.sqrt(d)
    points = np.atleast_2d(np.asarray(points, dtype=np.float64))
    if points.ndim != 2 or points.shape[1] != d:
        raise ValueError(f"check_points must have shape (k, {d}), got {points.shape}")
    p = loss.params
    fns = loss.family.functions
    batches = _finite_sum_records(loss, seed)
    for k, theta in enumerate(points):
        theta = loss.check_point(theta, "check_points")
        u = rng.standard_normal(d)
        v = rng.standard_normal(d)
        u /= np.linalg.norm(u)
        v /= np.linalg.norm(v)
        h = _EPS ** (1.0 / 3.0) * max(1.0, float(np.linalg.norm(theta)))

        value = _float(loss, "value", _call(loss, "value", theta, p))
        _finite(loss, "value", value, k)
        g = _vector(loss, "grad", theta, p)
        _finite(loss, "grad", g, k)
        hv = _vector(loss, "hvp", theta, p, v)
        _finite(loss, "hvp", hv, k)
        t = _vector(loss, "d3", theta, p, u, v)
        _finite(loss, "d3", t, k)

        try:
            _compare_difference(loss, "grad", g @ v, "value", theta, v, (p,), h, k)
        except ValueError as exc:
            if _truncation_only(loss, theta, p, v, g @ v, hv, h):
                raise ValueError(
                    f"{exc}. The check point is (nearly) stationary along the direction "
                    f"checked (|∇L·v| = {abs(g @ v):.3g}), and the mismatch is within the "
                    "difference's truncation error: there a finite difference of L cannot "
                    "resolve ∇L; check at points away from stationary points") from None
            raise
        _compare_difference(loss, "hvp", hv, "grad", theta, v, (p,), h, k)
        _compare_difference(loss, "d3", t, "hvp", theta, u, (p, v), h, k)

        roundoff = ROUNDOFF_RTOL * (np.linalg.norm(hv) + 1e-300)
        # round-off is relative to the terms a quantity sums, which do not vanish where it
        # does (near a stationary point the gradient is small, its terms are not): bounded
        # through the Hessian's scale |H v| (|v| = 1) by |H||θ| for terms like Hθ and by
        # √(|H| L) for those of a least-squares gradient Jᵀr; the value's by its variation
        # |∇L||θ| + |H||θ|² over the segment from 0
        size, curvature = float(np.linalg.norm(theta)), float(np.linalg.norm(hv))
        grad_roundoff = ROUNDOFF_RTOL * (curvature * size + np.sqrt(curvature * abs(value)))
        value_roundoff = ROUNDOFF_RTOL * (float(np.linalg.norm(g)) * size
                                          + curvature * size ** 2)

        if batches is not None:
            _check_finite_sum(loss, batches, theta, k, value, g)
        if "value_grad" in fns:
            g2 = np.full(d, np.nan)
            value2 = _float(loss, "value_grad", _call(loss, "value_grad", theta, p, g2))
            _agrees(loss, k, "value_grad", "value", value, value2, value_roundoff)
            _agrees(loss, k, "value_grad", "grad", g, g2, grad_roundoff)
        if "linearise" in fns:
            state = _state(loss, "linearise", _call(loss, "linearise", theta, p))
            hv2 = _vector(loss, "hvp_linearised", theta, p, state, v)
            _agrees(loss, k, "hvp_linearised", "hvp", hv, hv2, roundoff)
        if "value_grad_linearise" in fns:
            g4 = np.full(d, np.nan)
            result = _call(loss, "value_grad_linearise", theta, p, g4)
            if not (isinstance(result, tuple) and len(result) == 2):
                raise ValueError(f"{_name(loss)}: value_grad_linearise must return the "
                                 f"pair (value, state), got {type(result).__name__}")
            value4 = _float(loss, "value_grad_linearise", result[0])
            state = _state(loss, "value_grad_linearise", result[1])
            _agrees(loss, k, "value_grad_linearise", "value", value, value4, value_roundoff)
            _agrees(loss, k, "value_grad_linearise", "grad", g, g4, grad_roundoff)
            hv4 = _vector(loss, "hvp_linearised", theta, p, state, v)
            _agrees(loss, k, "value_grad_linearise",
                    "hvp (through hvp_linearised of its state)", hv, hv4, roundoff)
        if "hess" in fns or "hessian_parts" in fns or "hessian_parts_within" in fns:
            from ._base import check_dense_memory

            check_dense_memory(d, "checking the dense Hessian")
        if "hess" in fns:
            dense = _vector(loss, "hess", theta, p, shape=(d, d))
            _finite(loss, "hess", dense, k)
            _agrees(loss, k, "hess", "hvp", dense @ v, hv, roundoff)
        if "hessian_parts" in fns:
            rows = loss.factor_rows
            dense = np.full((d, d), np.nan)
            factor = np.full((rows, d), np.nan)
            g3 = np.full(d, np.nan)
            value3 = _float(loss, "hessian_parts",
                            _call(loss, "hessian_parts", theta, p, g3, dense, factor))
            # the dense part is given by its upper triangle: what lies below is not read
            dense = np.triu(dense) + np.triu(dense, 1).T
            _finite(loss, "hessian_parts", dense, k)
            _agrees(loss, k, "hessian_parts", "hvp", dense @ v + factor.T @ (factor @ v), hv,
                    roundoff)
            _agrees(loss, k, "hessian_parts", "value", value, value3, value_roundoff)
            _agrees(loss, k, "hessian_parts", "grad", g, g3, grad_roundoff)
        if "hessian_parts_within" in fns:
            _check_parts_within(loss, theta, k, v, hv, (value, value_roundoff),
                                (g, grad_roundoff), roundoff)
        if "hessian_drift" in fns:
            # against the next check point, and against a point a finite-difference step
            # away (where the change is h ∇³L[u] to first order: small, but not round-off)
            other = loss.check_point(points[(k + 1) % len(points)], "check_points")
            _check_drift(loss, theta, other, k, rng)
            _check_drift(loss, theta, theta + h * u, k, rng)
        if "hessian_frobenius" in fns:
            _check_frobenius(loss, theta, k, rng)
