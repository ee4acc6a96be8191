"""Fully connected networks with the mean-squared error, and the uv model of the catapult.

Derivatives (gradient, Hessian-vector product, ∇³L[u, v]) are exact: backpropagation run on
dual and hyper-dual numbers (THEORY §6, :mod:`stabsim.losses.kernels.network`), never finite
differences and never a d × d matrix.
"""

from __future__ import annotations

import numbers

import numpy as np
from numpy.polynomial import chebyshev

from .._validate import finite_array, finite_float, nonnegative_int, positive_float
from ._base import Loss
from .kernels import network as kernels
from .kernels.network import ACTIVATIONS, ChunkedNetworkParams, NetworkParams

PARAMETRISATIONS = ("standard", "ntk")
DATASETS = ("teacher", "chebyshev", "sine")


def _widths(hidden) -> tuple[int, ...]:
    if isinstance(hidden, numbers.Integral) and not isinstance(hidden, bool):
        hidden = (hidden,)
    if isinstance(hidden, (str, bytes)):
        raise ValueError(f"hidden must be a layer width or a sequence of them, got {hidden!r}")
    try:
        widths = tuple(hidden)
    except TypeError:
        raise ValueError(f"hidden must be a sequence of layer widths, got {hidden!r}") from None
    return tuple(nonnegative_int(f"hidden[{i}]", w, minimum=1) for i, w in enumerate(widths))


def _data_text(data) -> str:
    """``data`` as a message shows it: a name, or the kind and shape of arrays."""
    if isinstance(data, str):
        return repr(data)
    if isinstance(data, (tuple, list)):
        return "a pair (X, Y)"
    return f"{type(data).__name__} of shape {np.shape(data)}" if hasattr(data, "shape") \
        else repr(data)


def _teacher_targets(X, hidden, output_dim, activation, rng):
    """Outputs of a random teacher (standard initialisation, biases N(0, 0.1²)) on X."""
    h = X
    sizes = (X.shape[1], *hidden, output_dim)
    act = _NUMPY_ACTIVATIONS[activation]
    for layer in range(len(sizes) - 1):
        W = rng.normal(0.0, 1.0 / np.sqrt(sizes[layer]), size=(sizes[layer + 1], sizes[layer]))
        b = rng.normal(0.0, 0.1, size=sizes[layer + 1])
        h = h @ W.T + b
        if layer < len(sizes) - 2:
            h = act(h)
    return h


_NUMPY_ACTIVATIONS = {kernels.IDENTITY: lambda a: a, kernels.TANH: np.tanh,
                      kernels.SOFTPLUS: lambda a: np.logaddexp(0.0, a)}


class Network(Loss):
    """A fully connected network with the mean-squared error on a data set.

    With layer sizes n_0 (inputs), n_1, ..., n_L (outputs),
    a_l = s_l W_l h_{l−1} + b_l, h_l = φ(a_l) for hidden layers, f = a_L, and

        L(θ) = (1/(2N)) Σ_n |f(x_n) − y_n|²

    on N examples. θ holds W_1 (row-major), b_1, W_2, b_2, ... (see :meth:`unflatten`).
    The multipliers are s_l = 1 (``parametrisation="standard"``) or 1/√n_{l−1} (``"ntk"``).

    Parameters
    ----------
    hidden : int or sequence of int
        Widths of the hidden layers (an empty sequence: a linear model).
    activation : {"tanh", "softplus", "identity"}
        φ of the hidden layers; ``"identity"`` (alias ``"linear"``) gives a deep linear
        network.
    data : {"chebyshev", "sine", "teacher"} or (X, Y)
        ``"chebyshev"``: N points evenly spaced on [−1, 1], y = T_degree(x);
        ``"sine"``: y = sin(π · frequency · x) on the same points;
        ``"teacher"``: x ~ N(0, I_{input_dim}) and y from a random teacher network (widths
        ``teacher_hidden``, default ``hidden``; standard initialisation, the same
        activation) drawn with ``seed``; or a pair of arrays X (N × n_0) and Y (N × n_L or
        N).
    n_samples : int, optional
        N for the generated data sets (default 32).
    input_dim, output_dim : int, optional
        n_0 and n_L of the teacher data set (default 1 each). Where the data fix a size (a
        pair (X, Y) all three, the 1-D regressions n_0 = n_L = 1), its argument may only
        restate it: another value is a ValueError, not ignored.
    degree : int, optional
        Degree of the Chebyshev polynomial target (default 3).
    frequency : float, optional
        Frequency of the sine target (default 1).
    teacher_hidden : sequence of int, optional
        Hidden widths of the teacher.
    bias : bool
        Whether the layers have biases.
    parametrisation : {"standard", "ntk"}
    seed : int, optional
        Seed of the teacher data set (default 0). ``degree``, ``frequency``, ``seed`` and
        ``teacher_hidden`` belong to one data set each: given with another, each is a
        ValueError, not ignored.
    chunks : int
        With ``chunks`` = k > 1 every pass (value, gradient, Hessian-vector product, ∇³L)
        splits the examples into min(k, N) blocks evaluated on parallel threads and sums
        the blocks' means weighted by their sizes: the same numbers to round-off. Each
        block calls the BLAS with one thread. Measured on two cores, 256 examples, k = 2:
        a Hessian-vector product 1.5–1.85× faster, a GD step with the sharpness 1.3–1.6×
        (``benchmarks/bench_networks.py``). The result depends on k, not on the threads
        (``numba.set_num_threads`` bounds them). The parallel kernels compile on first use
        (the first ``run_gd``: about 35 s of CPU; cached on disk like the others). 1 (the
        default): one pass over all examples, no parallel code. A process that has run the
        parallel kernels holds Numba's thread pool (GNU OpenMP where it is the threading
        layer), and a process forked from it is killed ("fork() called from a process
        already using GNU OpenMP"): start worker processes with multiprocessing's "spawn"
        or "forkserver" method (``concurrent.futures.ProcessPoolExecutor(mp_context=
        multiprocessing.get_context("spawn"))``), as ``stabsim demo`` does.
    """

    name = "network"

    def __init__(self, hidden=(16, 16), *, activation="tanh", data="chebyshev",
                 n_samples=None, input_dim=None, output_dim=None, degree=None,
                 frequency=None, teacher_hidden=None, bias=True, parametrisation="standard",
                 seed=None, chunks=1):
        widths = _widths(hidden)
        if not isinstance(activation, str) or activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}, "
                             f"got {activation!r}")
        code = ACTIVATIONS[activation]
        if not isinstance(parametrisation, str) or parametrisation not in PARAMETRISATIONS:
            raise ValueError(f"parametrisation must be one of {PARAMETRISATIONS}, "
                             f"got {parametrisation!r}")
        if not isinstance(bias, bool):
            raise ValueError(f"bias must be True or False, got {bias!r}")
        given = {name: None if value is None else nonnegative_int(name, value, minimum=1)
                 for name, value in (("n_samples", n_samples), ("input_dim", input_dim),
                                     ("output_dim", output_dim))}
        X, Y = self._data(data, given, degree, frequency, teacher_hidden, widths, code, seed)
        for (name, value), symbol, size in zip(given.items(), ("N", "n_0", "n_L"),
                                               (*X.shape, Y.shape[1]), strict=True):
            if value is not None and value != size:
                raise ValueError(f"{name} = {value} does not match data={_data_text(data)}, "
                                 f"whose {symbol} is {size} (a size the data fix may only be "
                                 "restated, or left out)")
        sizes = (X.shape[1], *widths, Y.shape[1])
        scales = (np.ones(len(sizes) - 1) if parametrisation == "standard"
                  else 1.0 / np.sqrt(np.asarray(sizes[:-1], dtype=np.float64)))
        self.sizes = sizes
        self.activation = "identity" if code == kernels.IDENTITY else activation
        self.bias = bias
        self.parametrisation = parametrisation
        self.chunks = nonnegative_int("chunks", chunks, minimum=1)
        fields = (X, Y, np.asarray(sizes, dtype=np.float64), scales, float(code),
                  1.0 if bias else 0.0)
        params = (NetworkParams(*fields) if self.chunks == 1
                  else ChunkedNetworkParams(*fields, float(self.chunks)))
        super().__init__(params, kernels.dim_of(params), check=False)

    @staticmethod
    def _data(data, given, degree, frequency, teacher_hidden, widths, code, seed):
        """X and Y: the pair ``data``, or the data set it names at the sizes ``given``
        (None: the default)."""
        for name, value, owner, what in (
                ("teacher_hidden", teacher_hidden, "teacher", "the teacher"),
                ("seed", seed, "teacher", "the draw"),
                ("degree", degree, "chebyshev", "the target"),
                ("frequency", frequency, "sine", "the target")):
            if value is not None and not (isinstance(data, str) and data == owner):
                raise ValueError(f"{name} sets {what} of data='{owner}' and nothing else; got "
                                 f"it with data={_data_text(data)}")
        if isinstance(data, (tuple, list)):
            if len(data) != 2:
                raise ValueError("data must be a name or a pair (X, Y) of arrays")
            X = finite_array("X (data[0])", data[0])
            Y = finite_array("Y (data[1])", data[1])
            X = X[:, None] if X.ndim == 1 else X
            Y = Y[:, None] if Y.ndim == 1 else Y
            if (X.ndim != 2 or Y.ndim != 2 or X.shape[0] != Y.shape[0] or 0 in X.shape
                    or 0 in Y.shape):
                raise ValueError("data (X, Y) must have shapes (N, n_in) and (N, n_out) "
                                 f"with N, n_in, n_out ≥ 1, got {X.shape} and {Y.shape}")
            return X, Y
        if not isinstance(data, str) or data not in DATASETS:
            raise ValueError(f"data must be one of {DATASETS} or a pair (X, Y) of arrays, "
                             f"got {_data_text(data)}")
        n = given["n_samples"] or 32
        if data == "teacher":
            rng = np.random.default_rng(nonnegative_int("seed", 0 if seed is None else seed))
            teacher = widths if teacher_hidden is None else _widths(teacher_hidden)
            X = rng.normal(size=(n, given["input_dim"] or 1))
            return X, _teacher_targets(X, teacher, given["output_dim"] or 1, code, rng)
        x = np.linspace(-1.0, 1.0, n)
        if data == "chebyshev":
            k = nonnegative_int("degree", 3 if degree is None else degree)
            y = chebyshev.chebval(x, np.eye(k + 1)[k])
        else:
            y = np.sin(np.pi * positive_float("frequency", 1.0 if frequency is None
                                              else frequency) * x)
        return x[:, None], y[:, None]

    def __repr__(self) -> str:
        chunks = f", chunks={self.chunks}" if self.chunks > 1 else ""
        return (f"Network(sizes={self.sizes}, activation={self.activation!r}, "
                f"bias={self.bias}, parametrisation={self.parametrisation!r}{chunks})")

    @property
    def X(self) -> np.ndarray:
        """The inputs, shape (N, n_0)."""
        return self.params.X

    @property
    def Y(self) -> np.ndarray:
        """The targets, shape (N, n_L)."""
        return self.params.Y

    @property
    def n_samples(self) -> int:
        """N."""
        return self.params.X.shape[0]

    def unflatten(self, theta) -> list[tuple[np.ndarray, np.ndarray | None]]:
        """The layers (W_l, b_l) of θ, as views (b_l is None without biases)."""
        theta = self.check_point(theta)
        layers, offset = [], 0
        for n_in, n_out in zip(self.sizes[:-1], self.sizes[1:], strict=True):
            W = theta[offset:offset + n_out * n_in].reshape(n_out, n_in)
            offset += n_out * n_in
            b = None
            if self.bias:
                b = theta[offset:offset + n_out]
                offset += n_out
            layers.append((W, b))
        return layers

    def flatten(self, layers) -> np.ndarray:
        """θ from a list of (W_l, b_l) (b_l None without biases); inverse of :meth:`unflatten`."""
        if len(layers) != len(self.sizes) - 1:
            raise ValueError(f"layers must hold {len(self.sizes) - 1} (W, b) pairs, "
                             f"got {len(layers)}")
        parts = []
        for i, (W, b) in enumerate(layers):
            W = finite_array(f"layers[{i}][0]", W, shape=(self.sizes[i + 1], self.sizes[i]))
            parts.append(W.ravel())
            if self.bias:
                parts.append(finite_array(f"layers[{i}][1]", b, shape=(self.sizes[i + 1],)))
            elif b is not None:
                raise ValueError(f"layers[{i}] has a bias but the network has none")
        return self.check_point(np.concatenate(parts))

    def init(self, seed=0, scale=1.0) -> np.ndarray:
        """A random θ: W_l entries N(0, scale²/n_{l−1}) (standard) or N(0, scale²) (NTK),
        biases 0, so that every pre-activation has variance about scale² times that of
        the layer's input at either parametrisation.

        Parameters
        ----------
        seed : int
        scale : float
            Initialisation scale (> 0): small scales start near the saddle at 0, large ones
            start sharp.
        """
        rng = np.random.default_rng(nonnegative_int("seed", seed))
        scale = positive_float("scale", scale)
        layers = []
        for n_in, n_out in zip(self.sizes[:-1], self.sizes[1:], strict=True):
            std = scale if self.parametrisation == "ntk" else scale / np.sqrt(n_in)
            layers.append((rng.normal(0.0, std, size=(n_out, n_in)),
                           np.zeros(n_out) if self.bias else None))
        return self.flatten(layers)

    def predict(self, theta, X=None) -> np.ndarray:
        """The outputs f(x) of the network at θ on X (default: the training inputs; a 1-D X
        is a column of inputs where the input layer has one unit, as in the constructor)."""
        if X is not None:
            X = finite_array("X", X)
            X = X[:, None] if X.ndim == 1 and self.sizes[0] == 1 else X
            if X.ndim != 2:
                raise ValueError(f"X must be 2-dimensional (examples × {self.sizes[0]} "
                                 f"inputs), got shape {X.shape}")
        X = self.X if X is None else X
        if X.shape[1] != self.sizes[0]:
            raise ValueError(f"X must have {self.sizes[0]} columns, got {X.shape[1]}")
        act = _NUMPY_ACTIVATIONS[ACTIVATIONS[self.activation]]
        h = X
        layers = self.unflatten(theta)
        for i, (W, b) in enumerate(layers):
            h = self.params.scales[i] * (h @ W.T) + (0.0 if b is None else b)
            if i < len(layers) - 1:
                h = act(h)
        return h

    def derivatives(self, theta, u, v):
        """L, ∇L, ∇²L u, ∇²L v and ∇³L[u, v] from one hyper-dual backpropagation pass."""
        theta = self.check_point(theta)
        u = self.check_point(u, "u")
        v = self.check_point(v, "v")
        functions = kernels.CHUNKED if self.chunks > 1 else kernels.SERIAL
        loss, g, hu, hv, t = functions["all_derivatives"].py_func(theta, self.params, u, v)
        return float(loss), g, hu, hv, t

    def _fn(self, name):
        """The family's function ``name`` as Python: each is a few lines around compiled
        passes (:mod:`stabsim.losses.kernels.network`), which it calls through the passes'
        entry points from Python (one a pass), instead of a compiled entry of its own. Such
        an entry would be one more compilation, making the machine code of every pass it
        links in once more: 0.3–0.6 s each, cold, and the central flow and the projection
        onto M call six of them."""
        return super()._fn(name).py_func


class UVModel(Network):
    """The uv model of the catapult (Lewkowycz et al. 2020; THEORY §6).

    f(x) = vᵀu x/√m on one example (x, y) with u, v ∈ R^m, and L = ½ (f − y)²: a linear
    network of sizes (1, m, 1), no biases, NTK parametrisation. θ = (u, v). The NTK
    eigenvalue is λ = |∇_θ f|² = (|u|² + |v|²) x²/m; in the large-width limit GD is lazy for
    ηλ₀ < 2, catapults for 2 < ηλ₀ < 4 and diverges for ηλ₀ > 4.

    Parameters
    ----------
    width : int
        m.
    x, y : float
        The example.
    """

    name = "uv_model"

    def __init__(self, width, *, x=1.0, y=0.0):
        width = nonnegative_int("width", width, minimum=1)
        x = finite_float("x", x)
        y = finite_float("y", y)
        if x == 0.0:  # f and every derivative vanish: λ = 0, and ηλ₀ sets no step
            raise ValueError("x must be nonzero: at x = 0 the model is f = 0 and its NTK "
                             "eigenvalue λ = (|u|² + |v|²) x²/m is 0")
        super().__init__((width,), activation="identity", data=(np.array([[x]]), np.array([[y]])),
                         bias=False, parametrisation="ntk")
        self.width = width
        # inf L = 0: with x ≠ 0, f = vᵀu x/√m takes every value (GD on √L needs it)
        self.min_value = 0.0

    def __repr__(self) -> str:
        x, y = self.X[0, 0], self.Y[0, 0]
        return f"UVModel(width={self.width}, x={x:g}, y={y:g})"

    def ntk_eigenvalue(self, theta) -> float:
        """λ = (|u|² + |v|²) x²/m at θ = (u, v)."""
        theta = self.check_point(theta)
        return float(theta @ theta * self.X[0, 0] ** 2 / self.width)
