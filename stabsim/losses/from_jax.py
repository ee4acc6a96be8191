"""Losses written in JAX: :func:`from_jax` (needs the optional extra ``stabsim[jax]``).

The value, gradient, Hessian-vector product and ∇³L[u, v] come from JAX autodiff:
``jax.value_and_grad``, ``jvp`` of ``grad`` (forward over reverse) and a second ``jvp`` of
that product, each ``jax.jit``-compiled once. Compiled engines reach them through
``numba.objmode`` (:mod:`stabsim.losses.kernels.jax_bridge`): each call leaves nopython
mode, so it costs a fixed few microseconds on top of JAX's own dispatch.

Cost per GD step with the sharpness every step (one thread, CPU time, warm-started Lanczos at
relative residual 1e-10; ``benchmarks/bench_networks.py``):

- a two-parameter loss (the minimalist example): 30 µs through ``from_jax`` against 0.34 µs
  for the native family — the fixed cost, about 8 µs per call and 3–4 calls per step;
- a tanh MLP on 256 examples, d = 1201: 2.5 ms through ``from_jax``, 2.2 ms native, 1.3 ms
  for the same GD in JAX ``jit`` + ``lax.scan``; d = 9473: 15.9 ms, 24.5 ms and 10.7 ms.
  At these sizes JAX's own HVP dominates and the bridge adds little.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import itertools
import warnings
import weakref
from collections.abc import Callable

import numpy as np
from numba.core.errors import NumbaWarning

from .._validate import nonnegative_int
from ._base import Loss
from ._engines import file_digest
from .kernels import jax_bridge
from .kernels.jax_bridge import JaxParams

_HANDLES = itertools.count()  # never reused: a stale handle finds no loss, not another's
# Engines are compiled with nogil; the bridge's object-mode blocks take the GIL back, which
# Numba reports once per engine. That is the intended behaviour here, not a problem to show.
warnings.filterwarnings("ignore", message="Code running in object mode won't allow parallel",
                        category=NumbaWarning)
_MISSING = ("from_jax needs JAX, which is not installed; install the extra with "
            "pip install 'stabsim[jax]' (or pip install 'jax[cpu]')")


@dataclasses.dataclass(frozen=True)
class JaxFunctions:
    """The jitted JAX functions of one loss, with NumPy arrays in and JAX arrays out."""

    value: Callable
    value_grad: Callable
    hvp: Callable
    d3: Callable


def _import_jax():
    try:
        import jax
    except ImportError as error:
        raise ImportError(_MISSING) from error
    # stabsim works in float64: JAX must too (a process-wide JAX setting)
    jax.config.update("jax_enable_x64", True)
    return jax


def _jax_functions(jax, loss_fn):
    grad = jax.grad(loss_fn)

    def hvp(theta, v):
        return jax.jvp(grad, (theta,), (v,))[1]

    def d3(theta, u, v):
        return jax.jvp(lambda x: hvp(x, v), (theta,), (u,))[1]

    return JaxFunctions(jax.jit(loss_fn), jax.jit(jax.value_and_grad(loss_fn)), jax.jit(hvp),
                        jax.jit(d3))


class JaxLoss(Loss):
    """A loss given by a JAX function (made by :func:`from_jax`)."""

    name = "jax"

    def __init__(self, fn, dim, params, functions, *, min_value, check):
        handle = next(_HANDLES)
        jax_bridge.FUNCTIONS[handle] = functions
        # the jitted functions (and the data they close over) go with the loss
        weakref.finalize(self, jax_bridge.FUNCTIONS.pop, handle, None)
        self.fn = fn
        self.fn_params = params
        super().__init__(JaxParams(float(handle)), dim, min_value=min_value, check=check)

    def __repr__(self) -> str:
        name = getattr(self.fn, "__name__", type(self.fn).__name__)
        return f"from_jax({name}, dim={self.dim})"

    def _provenance_parts(self):
        # the record holds a process-local handle: the function (its code, what it reads,
        # its module's source) and its fixed data, to the last bit, say which loss this is
        name = f"{getattr(self.fn, '__module__', '')}.{getattr(self.fn, '__qualname__', '')}"
        yield name.encode()
        yield from _function_fingerprint(self.fn, set(), getattr(self.fn, '__module__', None))
        yield from _source_digest(self.fn)
        yield from _value_fingerprint(self.fn_params, set(), None)

    def __reduce__(self):
        # the jitted functions live in this process's table under a handle that means
        # nothing elsewhere: a pickle (a worker process's copy) carries the function and
        # makes the loss again there; a lambda or a local function cannot be pickled
        return _rebuild, (self.fn, self.dim, self.fn_params, self.min_value)

    def __copy__(self):
        # the loss itself: a copy would hold its handle, whose functions go when the
        # original is collected (the loss is immutable, as a function is)
        return self

    def __deepcopy__(self, memo):
        return self


#: how deep :func:`_value_fingerprint` follows functions, objects and containers inside one
#: another (a parameter tree of a deep model's layers included; cycles stop at a revisit)
_FINGERPRINT_DEPTH = 32


def _source_digest(fn):
    """The digest of the file that defines ``fn`` (or, for a callable object, its class),
    if it has one (not a notebook cell's): :func:`~stabsim.losses._engines.file_digest`."""
    for source in (inspect.unwrap(fn), type(fn)):
        try:
            yield file_digest(source).encode()
            return
        except (TypeError, OSError):  # a builtin, or defined interactively
            continue


def _code_fingerprint(code):
    """A code object's bytecode, names and constants, nested code objects (lambdas,
    comprehensions) followed instead of written by ``repr`` (which holds an address), a
    frozenset's elements in a fixed order (its ``repr`` follows the process's hash seed)."""
    yield code.co_code
    yield repr(code.co_names).encode()
    for const in code.co_consts:
        if inspect.iscode(const):
            yield from _code_fingerprint(const)
        elif isinstance(const, frozenset):
            yield repr(sorted(map(repr, const))).encode()
        else:
            yield repr(const).encode()


def _global_names(code):
    """The global names a code object and the code nested in it read."""
    names = set(code.co_names)
    for const in code.co_consts:
        if inspect.iscode(const):
            names |= _global_names(const)
    return names


def _function_fingerprint(fn, seen, home, depth=0):
    """The bytes that say what a Python function of the module ``home`` (the loss
    function's) computes: its code, and the values of the globals it reads and of the
    variables it closes over (:func:`_value_fingerprint`); a ``functools.partial`` its
    function and fixed arguments, a bound method its function and its object, a callable
    object of a class of ``home`` its attributes. A function or callable of another module
    (a library's) is known by its module and name."""
    if isinstance(fn, functools.partial):
        yield b"partial"
        yield from _function_fingerprint(fn.func, seen, home, depth + 1)
        yield from _value_fingerprint(fn.args, seen, home, depth + 1)
        yield from _value_fingerprint(fn.keywords, seen, home, depth + 1)
        return
    if inspect.ismethod(fn):
        yield b"method"
        yield from _function_fingerprint(fn.__func__, seen, home, depth + 1)
        yield from _value_fingerprint(fn.__self__, seen, home, depth + 1)
        return
    fn = inspect.unwrap(fn)
    code = getattr(fn, "__code__", None)
    module = getattr(fn, "__module__", None)
    if code is None or module != home or id(fn) in seen or depth > _FINGERPRINT_DEPTH:
        yield f"{module}.{getattr(fn, '__qualname__', type(fn).__qualname__)}".encode()
        if (code is None and not inspect.isroutine(fn) and not inspect.isclass(fn)
                and type(fn).__module__ == home):  # a callable object: its call and state
            yield from _function_fingerprint(type(fn).__call__, seen, home, depth + 1)
            yield from _object_fingerprint(fn, seen, home, depth)
        return
    seen.add(id(fn))
    yield from _code_fingerprint(code)
    for defaults in (getattr(fn, "__defaults__", None), getattr(fn, "__kwdefaults__", None)):
        yield from _value_fingerprint(defaults, seen, home, depth + 1)
    scope = getattr(fn, "__globals__", {})
    for name in sorted(_global_names(code)):
        if name in scope:
            yield name.encode()
            yield from _value_fingerprint(scope[name], seen, home, depth + 1)
    for cell in getattr(fn, "__closure__", None) or ():
        try:
            content = cell.cell_contents
        except ValueError:  # a cell not yet filled
            continue
        yield from _value_fingerprint(content, seen, home, depth + 1)


def _value_fingerprint(value, seen, home, depth=0):
    """Bytes that tell values apart to the last bit: an array's dtype, shape and data (a JAX
    array's too), a number's or a string's ``repr``, containers element by element (a set's
    in the order of their bytes), functions by :func:`_function_fingerprint`, a module by
    its name, any other object by :func:`_object_fingerprint` (its ``repr`` may hold an
    address, which differs from one process to the next)."""
    if value is None or isinstance(value, (bool, int, float, complex, str, bytes)):
        yield repr(value).encode()
    elif isinstance(value, np.ndarray) or hasattr(value, "__array__") and hasattr(value,
                                                                                 "dtype"):
        array = np.asarray(value)
        yield f"{array.dtype.str}{array.shape}".encode()
        if array.dtype.hasobject:  # pointers: the objects instead
            yield from _value_fingerprint(array.ravel().tolist(), seen, home, depth + 1)
        else:
            yield np.ascontiguousarray(array).tobytes()
    elif isinstance(value, (tuple, list, dict, set, frozenset)):
        yield f"{type(value).__name__}{len(value)}".encode()
        if id(value) in seen or depth > _FINGERPRINT_DEPTH:
            return
        seen.add(id(value))
        if isinstance(value, (tuple, list)):
            for item in value:
                yield from _value_fingerprint(item, seen, home, depth + 1)
        elif isinstance(value, dict):  # in the order of the keys' bytes (a repr may hold an
            # address), each entry taken on what was seen before the dict
            for key, item in sorted((_joined(key, seen, home, depth), _joined(item, seen, home,
                                                                               depth))
                                    for key, item in value.items()):
                yield key
                yield item
        else:
            yield from sorted(_joined(item, seen, home, depth) for item in value)
    elif inspect.ismodule(value):
        yield value.__name__.encode()
    elif callable(value) and not inspect.isclass(value):
        yield from _function_fingerprint(value, seen, home, depth)
    else:
        yield from _object_fingerprint(value, seen, home, depth)


def _joined(value, seen, home, depth) -> bytes:
    """:func:`_value_fingerprint` of an element of an unordered container (a set's, a dict's
    key or value) on a copy of ``seen``, so that the order the container is visited in does
    not change what each element gives."""
    return b"".join(_value_fingerprint(value, set(seen), home, depth + 1))


def _object_fingerprint(value, seen, home, depth):
    """An object's type and the values of its attributes (those of ``__dict__`` and of
    ``__slots__``), to :data:`_FINGERPRINT_DEPTH`: a dataclass's fields, a model's weights."""
    cls = type(value)
    yield f"{cls.__module__}.{cls.__qualname__}".encode()
    if id(value) in seen or depth > _FINGERPRINT_DEPTH or inspect.isclass(value):
        return
    seen.add(id(value))
    slots = {name for klass in cls.__mro__
             for name in ((klass.__dict__.get("__slots__"),)
                          if isinstance(klass.__dict__.get("__slots__"), str)
                          else klass.__dict__.get("__slots__", ()))}
    names = sorted(set(getattr(value, "__dict__", {})) | slots)
    for name in names:
        try:
            attribute = getattr(value, name)
        except AttributeError:  # a slot not set
            continue
        yield name.encode()
        yield from _value_fingerprint(attribute, seen, home, depth + 1)


def _rebuild(fn, dim, params, min_value) -> JaxLoss:
    """A JaxLoss made again from what :meth:`JaxLoss.__reduce__` pickled (unchecked: the
    original was checked as its maker asked)."""
    return from_jax(fn, dim, params, min_value=min_value, check=False, check_indices=False)


def _fixed_params(jax, params):
    """``params`` with each leaf a float64 JAX array, and notes on what the conversion
    changed that ``fn`` may not expect (said if ``fn`` then fails).

    Raises
    ------
    TypeError
        Naming the first leaf (by its path in ``params``) that is not an array of real
        numbers.
    """
    leaves, tree = jax.tree_util.tree_flatten_with_path(params)
    fixed, notes, sequences = [], [], set()
    for path, leaf in leaves:
        where = "params" + jax.tree_util.keystr(path)
        kind = np.asarray(leaf).dtype.kind
        if kind not in "biuf":
            got = (f"an array of dtype {leaf.dtype}" if hasattr(leaf, "dtype")
                   else f"{type(leaf).__name__} {leaf!r:.40}")
            raise TypeError(f"{where} must be a real number or an array of them (params is "
                            "a pytree of such arrays: dicts, lists and tuples of them, each "
                            f"converted to a float64 JAX array), got {got}")
        if np.ndim(leaf) == 0:
            if path and isinstance(path[-1], jax.tree_util.SequenceKey):
                sequences.add("params" + jax.tree_util.keystr(path[:-1]))
        elif kind in "biu":  # an array fn may use as indices or a mask
            notes.append(f"{where} holds {'booleans' if kind == 'b' else 'integers'}, which "
                         "fn gets as float64 (indices belong in fn's closure, not in params)")
        fixed.append(jax.numpy.asarray(leaf, dtype=np.float64))
    notes += [f"{where} is a list or tuple of numbers, which fn gets as such (a container of "
              "the pytree, as in JAX), not as an array: pass np.asarray of it for an array"
              for where in sorted(sequences)]
    return jax.tree_util.tree_unflatten(tree, fixed), notes


def from_jax(fn, dim, params=None, *, min_value=None, check=False,
             check_indices=True) -> JaxLoss:
    """A loss whose derivatives come from JAX autodiff, usable by every engine.

    Parameters
    ----------
    fn : callable
        ``fn(theta)`` or, with ``params``, ``fn(theta, params)``: a JAX-traceable function
        of a float64 vector of length ``dim`` returning a scalar. It should be C³ (∇³L is
        used by the constrained trajectory and the reduced map's constants).
    dim : int
        d.
    params : pytree of arrays, optional
        Fixed data of the loss (weights of a teacher, a data set, ...), passed as the second
        argument and closed over. Its leaves are real numbers or arrays of them (boolean
        and integer ones included), each converted to a float64 JAX array once: an index
        array fn needs as integers belongs in its closure. Dicts, lists and tuples are
        containers of the pytree, as in JAX: ``{"a": [1.0, 2.0]}`` reaches fn as a list of
        two 0-d arrays, ``{"a": np.array([1.0, 2.0])}`` as one array.
    min_value : float, optional
        inf L, when known (GD on sqrt L needs it).
    check : bool
        Check the derivatives against finite differences at three points (JAX's are exact;
        this catches a function that is not smooth where it is evaluated).
    check_indices : bool
        Evaluate fn once at θ = 0 with JAX's index checks (``jax.experimental.checkify``)
        and refuse an index out of bounds: JAX clamps one instead of failing, so a ``dim``
        too small for fn gives another loss. False skips it (for fn that indexes out of
        range on purpose, with ``mode="clip"`` or ``"fill"``, or whose indexing in a loop
        makes the check cost 0.1–1 s: see ``_check_indices``).

    Returns
    -------
    JaxLoss
        Value ``fn``; gradient ``jax.value_and_grad``; Hessian-vector product
        ``jvp(grad, (θ,), (v,))``; ∇³L[u, v] the ``jvp`` of that product along u. JAX is
        switched to float64 (``jax_enable_x64``).

    Raises
    ------
    ImportError
        Without JAX (the message names the extra ``stabsim[jax]``).
    TypeError
        If ``fn`` is not callable, or a leaf of ``params`` is not a real number or an array
        of them (the message gives its path).
    ValueError
        If ``fn`` does not map a vector of length ``dim`` (and ``params``) to a real
        floating-point scalar, or indexes out of bounds at θ = 0 (naming ``dim``); the
        message says where ``params`` reach fn other than as given (a list of numbers,
        integers as float64).

    Examples
    --------
    >>> loss = from_jax(lambda x: 0.25 * (x[0] ** 2 * x[1] ** 2 - 1.0) ** 2, 2)
    >>> float(loss.value([1.0, 2.0]))
    2.25
    """
    jax = _import_jax()
    if not callable(fn):
        raise TypeError(f"fn must be a callable fn(theta) returning a scalar, got "
                        f"{type(fn).__name__}")
    dim = nonnegative_int("dim", dim, minimum=1)
    if params is None:
        loss_fn, notes = fn, []
    else:
        fixed, notes = _fixed_params(jax, params)

        def loss_fn(theta):
            return fn(theta, fixed)

    probe = jax.ShapeDtypeStruct((dim,), np.float64)
    try:
        out = jax.eval_shape(loss_fn, probe)
    except Exception as error:  # noqa: BLE001 - any tracing failure is a bad fn for this dim
        raise ValueError(f"fn could not be evaluated on a vector of length dim = {dim}"
                         f"{'' if params is None else ' and params'}: "
                         f"{type(error).__name__}: {error}"
                         + "".join(f"; note: {note}" for note in notes)) from error
    if getattr(out, "shape", None) != ():
        raise ValueError(f"fn must return a scalar, got shape {getattr(out, 'shape', out)}")
    if not np.issubdtype(out.dtype, np.floating):  # JAX differentiates real floats only
        raise ValueError(f"fn must return a real floating-point scalar, got dtype {out.dtype}; "
                         "an integer or boolean result has no gradient (cast it with "
                         "jnp.asarray(..., float)), and a complex one is not a loss")
    if check_indices:
        _check_indices(jax, loss_fn, dim, notes)
    return JaxLoss(fn, dim, params, _jax_functions(jax, loss_fn), min_value=min_value,
                   check=check)


#: the primitives whose indices JAX clamps, which ``checkify.index_checks`` checks
_INDEXING = ("gather", "dynamic_slice", "dynamic_update_slice", "scatter")


def _indexes(jaxpr) -> bool:
    """Whether ``jaxpr`` (or one nested in its equations: a loop's body, a branch, a jitted
    call) has a primitive of :data:`_INDEXING`. An index within range of a static slice
    traces to ``slice``; one out of range to ``gather``."""
    for eqn in jaxpr.eqns:
        if eqn.primitive.name.startswith(_INDEXING):
            return True
        stack = list(eqn.params.values())
        while stack:
            value = stack.pop()
            if isinstance(value, (tuple, list)):
                stack.extend(value)
            elif hasattr(value, "eqns"):  # a Jaxpr
                if _indexes(value):
                    return True
            elif hasattr(value, "jaxpr") and hasattr(value.jaxpr, "eqns"):  # a ClosedJaxpr
                if _indexes(value.jaxpr):
                    return True
    return False


def _check_indices(jax, loss_fn, dim, notes):
    """Raise ValueError naming ``dim`` if ``loss_fn`` indexes out of bounds at θ = 0.

    JAX clamps an index out of range instead of failing, so a ``dim`` smaller than the
    length fn indexes runs another loss: ``θ[0]² + θ[1]² + θ[2]²`` at dim = 2 gave 9 at
    (1, 2), θ[2] read as θ[1]. ``jax.experimental.checkify`` with its index checks runs fn
    once at zeros(dim), op by op, where fn's traced form (``jax.make_jaxpr``) has a
    primitive that clamps indices (:func:`_indexes`), else only traced (a network of
    matrix products and static slices). A construction took 0.7 ms instead of 0.4 on a
    two-parameter loss, 1.5 instead of 1.1 on a network of 1350 weights, after 50 ms
    once a process (importing ``checkify``). Where fn indexes, the check costs about a
    compilation of fn, whether it indexes θ or only its data: about 1 s the first time for
    ``θ[idx]`` or an embedding ``E[tok]`` (5 ms after), and 0.1–0.3 s at every
    construction for a ``lax.scan`` with ``dynamic_slice`` or a 2000-step ``fori_loop``
    reading ``X[i]`` (against 2–9 ms without the check); ``check_indices=False`` skips it.
    Checking only the indexing of θ would need a walk of fn's traced form. A function it
    cannot trace or transform (a primitive without a checkify rule) is left unchecked:
    the check is a guard, and fn is evaluated again later."""
    from jax.experimental import checkify

    theta = jax.numpy.zeros(dim)
    try:
        if not _indexes(jax.make_jaxpr(loss_fn)(theta).jaxpr):
            return
        error, _ = checkify.checkify(loss_fn, errors=checkify.index_checks)(theta)
        message = error.get()
    except IndexError as error:  # an index JAX could check at once
        message = f"{error}."
    except Exception:  # noqa: BLE001 - see the docstring
        return
    if message:
        raise ValueError(
            f"fn indexes out of bounds at theta = zeros(dim), dim = {dim}: "
            f"{message.strip()} JAX clamps such an index, so fn would compute another loss; "
            f"is dim = {dim} the length of theta that fn expects? (An index out of range "
            "on purpose, with mode='clip' or 'fill', is refused too: pass "
            "check_indices=False.)" + "".join(f"; note: {note}" for note in notes))
