"""What a sweep computes: :class:`SweepConfig`, read from a TOML file or built in Python.

A config names the model, the fixed parameters, the swept parameters (a grid, or lists
zipped cell by cell) and the run controls. It is validated once, here, and every error
names the offending key. Its canonical JSON form is stored with the result and hashed to
key the work directory of completed chunks (see ``stabsim.sweep.store``).

Example (TOML; every table but ``[sweep]`` and ``[grid]`` is optional)::

    [sweep]
    model = "reduced"        # "reduced" (the (x, y) map); on a loss: "gd", "adaptive", "sgd"
    steps = 10000            # map steps / gradient steps per cell
    combine = "product"      # "product": a grid over all [grid] entries; "zip": lists, cell by cell

    [params]                 # fixed values of the model's parameters
    alpha = 1.0
    beta = 1.0
    y0 = 0.0

    [grid]                   # swept parameters: a list, or {start, stop, num, spacing}
    eta = {start = 0.01, stop = 1.0, num = 100}
    x0 = {start = 1e-4, stop = 1.0, num = 100, spacing = "log"}

For ``model = "gd"`` add ``method`` to ``[sweep]`` and a ``[loss]`` table (``name`` and the
family's fixed parameters, as for ``stabsim.losses.make_loss``; ``name = "regression.random"``
draws ``QuadraticRegression.random``, with its ``seed`` given: every chunk builds the loss
again, so it must come out the same each time; ``name = "package.module:factory"`` calls a
user's factory returning a ``Loss``). Family parameters are swept as ``loss.<name>`` in
``[grid]``. Its ``stride`` (a record every ``stride`` steps) must divide ``steps``, and,
as for every model on a loss (``"gd"``, ``"adaptive"``, ``"sgd"``), be odd: at the edge of
stability every method alternates on either side of the minimiser manifold (a period-2
orbit), and with an even stride every record falls on one side, whose mean relative
sharpness is not the orbit's (the class then depends on the stride: stride 2 moved
normalised GD on a depth-3 scalar network from mean 1.07 to 4.84, and strides 2 and 10
RMSProp on a regression model from the edge of stability to converged). An odd stride
alternates the sides, but pairs records ``stride`` steps apart, not consecutive ones: the
mean is the orbit's while the orbit changes little over ``stride`` steps, and stride 1 is
exact (there, a stride of 25 moved the scalar network's mean to 1.15).

``model = "adaptive"`` runs ``run_adaptive`` per cell (the cells of
``stabsim.sweep.adaptive_cells.adaptive_sweep``): ``method`` is ``"rmsprop"`` (default),
``"adam"`` or ``"scalar_rmsprop"``, the parameters ``eta``, ``beta2`` (in [0, 1), default
0.99), ``beta1`` (in [0, 1), Adam only), ``eps`` (≥ 0) and the start (``scale``, ``seed``,
``theta0``)::

    [sweep]
    model = "adaptive"
    method = "rmsprop"
    steps = 2000
    stride = 9

    [grid]
    eta = {start = 0.001, stop = 0.1, num = 20, spacing = "log"}
    beta2 = [0.9, 0.99, 0.999]

``model = "sgd"`` runs ``run_sgd`` per cell on a finite-sum loss (the cells of
``stabsim.sweep.sgd_cells.sgd_sweep``): the parameters ``eta``, ``batch_size`` (required;
at most the number of examples N unless ``replacement = true``), ``batch_seed`` (the seed
of the batches), ``bs_batches``, the start, and in ``[params]`` only ``replacement``
(true/false) and ``batch_sharpness`` (``"auto"``, ``"exact"``, ``"sampled"``). Its
``[classify]`` defaults are ``band = 0.2``, ``window = 0.5`` (:data:`CLASSIFY_DEFAULTS`).
Both classify a cell as the GD sweep does, with r = λ_max(P⁻¹H)/threshold (adaptive) or
r = BS η/2 (SGD).
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import math
import numbers
import sys

import numpy as np

from .. import __version__
from .. import _validate as check
from .._jit import package_sources_stamp
from .classify import odd_stride

MODELS = ("reduced", "gd", "adaptive", "sgd")
#: models that run on a loss (a [loss] table)
LOSS_MODELS = ("gd", "adaptive", "sgd")
METHODS = ("gd", "heavy_ball", "nesterov", "normalised", "sqrt")
#: the ``method`` values of each model, the first the default (as in ``run_gd``,
#: ``run_adaptive``; SGD is one method)
MODEL_METHODS = {"reduced": METHODS, "gd": METHODS,
                 "adaptive": ("rmsprop", "adam", "scalar_rmsprop"), "sgd": ("sgd",)}
COMBINE = ("product", "zip")

#: the start of a gradient method: ``scale * theta0``, or ``scale`` times a random unit
#: direction drawn with ``seed``
_START = {"scale": 1.0, "seed": 0, "theta0": "random"}
#: parameters of each model and their defaults (``None``: required)
PARAMETERS = {
    "reduced": {"eta": None, "alpha": 1.0, "beta": 1.0, "x0": 1e-3, "y0": 0.0},
    "gd": {"eta": None, "momentum": 0.0, **_START},
    # run_adaptive's beta1, beta2 and eps (ν starts at 0, no bias correction)
    "adaptive": {"eta": None, "beta2": 0.99, "beta1": 0.0, "eps": 0.0, **_START},
    # run_sgd's batch_size, its seed of the batches, replacement, batch_sharpness, bs_batches
    "sgd": {"eta": None, "batch_size": None, "batch_seed": 0, "replacement": False,
            "batch_sharpness": "auto", "bs_batches": 256, **_START},
}
#: parameters that must be integers
INTEGER_PARAMETERS = {"seed", "batch_seed", "batch_size", "bs_batches"}
#: parameters that must be > 0
POSITIVE_PARAMETERS = {"eta", "alpha", "beta"}
#: parameters in [0, 1): the EMA factors (β₂ = 1 would keep ν at its start 0, and the
#: step η g/√ν undefined)
UNIT_PARAMETERS = {"momentum", "beta1", "beta2"}
#: parameters that cannot be swept (not scalar)
FIXED_ONLY = {"theta0", "replacement", "batch_sharpness"}
#: classification band and late window of each model when [classify] does not set them:
#: for SGD the band is the size of the fluctuations of BS η/2 over a window (its standard
#: deviation was 0.09–0.25 on the headline network, tests/test_sgd_claims.py), as in
#: ``stabsim.sweep.sgd_cells.sgd_sweep``
CLASSIFY_DEFAULTS = {"reduced": (0.1, 0.25), "gd": (0.1, 0.25), "adaptive": (0.1, 0.25),
                     "sgd": (0.2, 0.5)}
#: prefix of swept loss-family parameters in [grid]
LOSS_PREFIX = "loss."

#: steps per cell at most: a result stores its counts and steps (``steps_run``, ``cycles``,
#: ``steps_to_threshold``, ..., each at most ``steps``) as 32-bit integers, the widest
#: integers netCDF-3 has (as its integer coordinates, ``_check_grid``)
MAX_STEPS = 2**31 - 1
#: records per gradient-method cell at most (each thread holds one cell's records)
MAX_RECORDS = 10**7
#: work per chunk aimed at by the default chunk size, about a second on two cores: steps of
#: the reduced map; parameter-steps (steps × d) of a gradient method, whose step with the
#: sharpness measured costs about 20 ns per parameter on a small loss. The adaptive and SGD
#: cells run one at a time, each record measuring two spectral quantities (adaptive: the raw
#: and the preconditioned sharpness; SGD: the sharpness and the exact batch sharpness):
#: measured with a record every step, 2.1 µs
#: per parameter-step (RMSProp, d = 2) and 10.6 µs (SGD on the d = 5, N = 7 regression
#: model, b = 2), on a loaded two-core machine
TARGET_CHUNK_WORK = {"reduced": 2.5e8, "gd": 5e7, "adaptive": 5e5, "sgd": 1e5}
#: memory per cell while its chunk is computed, checksummed and written: the peak traced
#: by tracemalloc over a chunk of 10^5 cells is 202 B (reduced) and 278 B (gd on a
#: two-parameter loss; a larger loss adds 8 B per parameter and per dimension); for the
#: adaptive and SGD cells, the growth of the peak from 1000 to 2000 cells of one step over
#: 1000: 300 B (RMSProp, d = 2) and 328 B (SGD, d = 5)
CELL_BYTES = {"reduced": 202, "gd": 278, "adaptive": 300, "sgd": 328}
#: memory the default chunk size lets one chunk take
CHUNK_BYTES = 2**28
#: values one [grid] range may have (its list is stored in the config, which is hashed)
MAX_GRID_VALUES = 10**6
#: length-d vectors one gradient-method cell holds while its kernel runs, besides the
#: Lanczos basis: the state (θ, momentum buffer, θ_{t−1}, eigenvector: 4; the crossing pair:
#: 2), the engine's gradient and previous eigenvector (2), Lanczos's two work vectors (2),
#: and a margin of 4 for a family's own temporaries (the regression model's gradient
#: allocates one; the other built-in families none)
CELL_VECTORS = 14

_SWEEP_KEYS = {"model", "method", "steps", "stride", "combine", "chunk_size",
               "divergence_norm"}
_CLASSIFY_KEYS = {"band", "window"}
_TABLES = {"sweep", "params", "grid", "loss", "classify"}
_SPEC_KEYS = {"start", "stop", "num", "spacing"}


@dataclasses.dataclass(frozen=True)
class SweepConfig:
    """A validated sweep specification.

    Parameters
    ----------
    model : {"reduced", "gd", "adaptive", "sgd"}
        The reduced (x, y) map, or on a loss: a gradient method (``run_gd``), an adaptive
        method (``run_adaptive``; the cells of
        :func:`~stabsim.sweep.adaptive_cells.adaptive_sweep`) or mini-batch SGD
        (``run_sgd``; the cells of :func:`~stabsim.sweep.sgd_cells.sgd_sweep`).
    grid : dict
        Swept parameter → values: a sequence of numbers, or a spec
        ``{"start", "stop", "num", "spacing": "linear" | "log"}``. Names: those of
        :data:`PARAMETERS` for the model, and ``"loss.<name>"`` for family parameters
        (the models on a loss). Order sets the dimension order of the result.
    params : dict, optional
        Fixed parameter values (defaults in :data:`PARAMETERS`). For the models on a loss,
        ``theta0`` is a list (the initial point is ``scale * theta0``) or ``"random"``
        (``scale`` times a direction drawn uniformly on the unit sphere with ``seed``).
        Model ``"adaptive"``: ``beta2`` and ``beta1`` in [0, 1), ``eps`` ≥ 0. Model
        ``"sgd"``: ``batch_size`` (required; at most the number of examples N unless
        ``replacement = true``), ``batch_seed`` (the seed of the batches),
        ``replacement``, ``batch_sharpness`` (``"auto"``, ``"exact"``, ``"sampled"``)
        and ``bs_batches``, as in :func:`~stabsim.maps.sgd.run_sgd`.
    loss : dict, optional
        The models on a loss: ``{"name": family, **fixed family parameters}`` (model
        ``"sgd"``: a finite-sum family).
    method : str, optional
        Model ``"gd"``: one of :data:`METHODS` (as in :func:`stabsim.maps.run_gd`); model
        ``"adaptive"``: ``"rmsprop"``, ``"adam"`` or ``"scalar_rmsprop"`` (as in
        ``run_adaptive``). Default: the first of :data:`MODEL_METHODS` for the model.
    steps : int
        Steps per cell, at most :data:`MAX_STEPS` = 2³¹ − 1 (the counts and steps of the
        result are 32-bit integers).
    stride : int
        The models on a loss: the sharpness is computed every ``stride`` steps, an odd
        number (see the module docstring: with an even stride every record falls on one
        side of the period-2 orbit at the edge of stability, and the late-window mean is
        that side's); for model ``"gd"`` also a divisor of ``steps``.
    combine : {"product", "zip"}
        ``"product"``: one cell per combination (one result dimension per swept
        parameter); ``"zip"``: the lists have one length and cell k takes entry k of each
        (one result dimension ``cell``).
    chunk_size : int, optional
        Cells per chunk (the unit of work, storage and resumption); by default about
        :data:`TARGET_CHUNK_WORK` per chunk (steps; for model ``"gd"`` steps times the
        loss's dimension), and at most :data:`CHUNK_BYTES` of memory (:data:`CELL_BYTES`
        per cell).
    band, window : float, optional
        Classification band and late-window fraction (``stabsim.sweep.classify``); by
        default those of :data:`CLASSIFY_DEFAULTS` for the model.
    divergence_norm : float
        The models on a loss: |θ| past which a run stops as diverged.
    """

    model: str
    grid: dict
    params: dict = dataclasses.field(default_factory=dict)
    loss: dict | None = None
    method: str | None = None
    steps: int = 1000
    stride: int = 1
    combine: str = "product"
    chunk_size: int | None = None
    band: float | None = None
    window: float | None = None
    divergence_norm: float = 1e8

    def __post_init__(self):
        check.choice("model", self.model, MODELS)
        methods = MODEL_METHODS[self.model]
        method = methods[0] if self.method is None else self.method
        if method not in methods:
            raise ValueError(f"method {method!r} is not one of model {self.model!r}: "
                             f"{list(methods)}")
        check.choice("combine", self.combine, COMBINE)
        steps = check.nonnegative_int("steps", self.steps, minimum=1)
        if steps > MAX_STEPS:
            raise ValueError(f"steps = {steps} is over 2**31 - 1 = {MAX_STEPS}: a sweep stores "
                             "its counts and steps (steps_run, ...) as 32-bit integers, the "
                             "widest netCDF-3 has")
        stride = check.nonnegative_int("stride", self.stride, minimum=1)
        default_band, default_window = CLASSIFY_DEFAULTS[self.model]
        band = check.unit_interval("band", default_band if self.band is None else self.band)
        window = check.fraction("window", default_window if self.window is None else self.window)
        divergence_norm = check.positive_float("divergence_norm", self.divergence_norm)
        # a GD cell's stride is odd and divides steps: it divides steps' largest odd divisor
        odd_part = steps >> ((steps & -steps).bit_length() - 1) if steps else 1
        strides = (f" (the odd strides that divide steps = {steps} divide {odd_part}; "
                   "where that is small, take steps with a larger odd factor)"
                   if self.model == "gd" else "")
        if self.model == "gd" and steps % stride:  # its cells record every stride-th step
            raise ValueError(f"model 'gd' needs a stride that divides steps, so that its "
                             f"statistics (final_loss, ...) are those of the last step; got "
                             f"steps = {steps}, stride = {stride}{strides}")
        if self.model in LOSS_MODELS:
            odd_stride(stride, self.model)
        if self.model in LOSS_MODELS and steps // stride + 1 > MAX_RECORDS:
            raise ValueError(f"steps / stride = {steps // stride} records per cell is over "
                             f"{MAX_RECORDS:.0e} (memory); raise 'stride'{strides}")
        known = PARAMETERS[self.model]
        params = _check_params(self.params, known)
        loss = _check_loss(self.model, self.loss)
        grid = _check_grid(self.grid, self.model, known, self.combine)
        missing = [k for k, v in known.items() if v is None and k not in params and k not in grid]
        if missing:
            raise ValueError(f"parameter(s) {missing} must be given in [params] or [grid]")
        overlap = sorted(set(params) & set(grid))
        if overlap:
            raise ValueError(f"parameter(s) {overlap} appear in both [params] and [grid]")
        overlap = sorted(f"{LOSS_PREFIX}{k}" for k in loss or () if f"{LOSS_PREFIX}{k}" in grid)
        if overlap:
            raise ValueError(f"loss parameter(s) {overlap} appear in both [loss] and [grid]")
        _refuse_unused(self, params, grid, methods[0], default_band, default_window)
        if self.model == "gd":  # as run_gd refuses a momentum its method has no use for
            from ..maps.gd import _momentum

            for beta in grid.get("momentum", [params.get("momentum", 0.0)]):
                _momentum(method, beta)
        if self.model == "adaptive" and method != "adam" and \
                any(b != 0.0 for b in grid.get("beta1", [params.get("beta1", 0.0)])):
            raise ValueError(f"beta1 is used by method 'adam' only; method {method!r} has no "
                             f"momentum (leave beta1 at 0)")
        if self.combine == "zip" and len({len(v) for v in grid.values()}) > 1:
            lengths = {k: len(v) for k, v in grid.items()}
            raise ValueError(f"combine = 'zip' needs [grid] lists of one length, got {lengths}")
        n_cells = math.prod(len(v) for v in grid.values()) if self.combine == "product" \
            else len(next(iter(grid.values())))
        if self.chunk_size is not None:
            chunk = check.nonnegative_int("chunk_size", self.chunk_size, minimum=1)
            object.__setattr__(self, "chunk_size", chunk)
        for name, value in (("method", method), ("params", params), ("loss", loss),
                            ("grid", grid),
                            ("steps", steps), ("stride", stride), ("band", band),
                            ("window", window), ("divergence_norm", divergence_norm)):
            object.__setattr__(self, name, value)
        dim, sources = _check_loss_builds(self) if self.model in LOSS_MODELS else (1, ())
        # not a field: the config (its JSON, its equality) is what the user wrote; the
        # user's loss sources only key the chunks computed from it
        object.__setattr__(self, "_loss_sources", sources)
        if self.chunk_size is None:  # about a second of work, in bounded memory
            chunk = max(1, min(int(TARGET_CHUNK_WORK[self.model] // (steps * dim)),
                               CHUNK_BYTES // CELL_BYTES[self.model]))
        object.__setattr__(self, "chunk_size", min(chunk, n_cells))

    @classmethod
    def from_dict(cls, data: dict) -> SweepConfig:
        """Build a config from the tables of a TOML document (see the module docstring)."""
        if not isinstance(data, dict):
            raise ValueError("a sweep config must be a table of tables")
        unknown = sorted(set(data) - _TABLES)
        if unknown:
            raise ValueError(f"unknown table(s) {unknown}; known tables: {sorted(_TABLES)}")
        sweep = _table(data, "sweep", _SWEEP_KEYS)
        classify = _table(data, "classify", _CLASSIFY_KEYS)
        if "model" not in sweep:
            raise ValueError(f"[sweep] needs the key 'model' (one of {list(MODELS)})")
        if "grid" not in data:
            raise ValueError("the config needs a [grid] table of swept parameters")
        params = data.get("params", {})
        if not isinstance(params, dict):  # `params = 3` at the top level
            raise ValueError(f"[params] must be a table, got {params!r}")
        return cls(grid=_flatten_grid(data["grid"]), params=dict(params),
                   loss=data.get("loss"), **sweep, **classify)

    @classmethod
    def from_toml(cls, path) -> SweepConfig:
        """Read and validate a TOML config file (UTF-8, with or without a byte-order mark)."""
        import tomllib

        try:
            with open(path, "rb") as f:
                text = f.read().decode("utf-8-sig")  # a BOM, as some editors write, is read
            data = tomllib.loads(text)
        except UnicodeDecodeError as exc:
            raise ValueError(f"{path}: not UTF-8 text, as TOML must be (byte "
                             f"{exc.object[exc.start]:#04x} at offset {exc.start}: "
                             f"{exc.reason})") from None
        except tomllib.TOMLDecodeError as exc:
            raise ValueError(f"{path}: malformed TOML: {exc}") from None
        except RecursionError:  # the parser recurses once per level of array nesting
            raise ValueError(f"{path}: arrays nested too deeply to read") from None
        except OSError as exc:
            raise ValueError(f"cannot read the config {path}: {exc.strerror}") from None
        return cls.from_dict(data)

    @property
    def dims(self) -> tuple[str, ...]:
        """Dimension names of the result."""
        return tuple(self.grid) if self.combine == "product" else ("cell",)

    @property
    def shape(self) -> tuple[int, ...]:
        """Shape of the result's data variables."""
        if self.combine == "product":
            return tuple(len(v) for v in self.grid.values())
        return (len(next(iter(self.grid.values()))),)

    @property
    def n_cells(self) -> int:
        return math.prod(self.shape)

    @property
    def n_chunks(self) -> int:
        return -(-self.n_cells // self.chunk_size)

    def chunk_cells(self, index: int) -> np.ndarray:
        """Flat (C-order) indices of the cells of chunk ``index``."""
        lo = index * self.chunk_size
        return np.arange(lo, min(lo + self.chunk_size, self.n_cells))

    def __hash__(self) -> int:
        """A hash that agrees with ``==`` (field by field, so a dict of configs or a set
        works): the fields with each table made a frozen set of its items and each list a
        tuple, whose hash Python makes equal for equal numbers (``0`` and ``0.0``)."""
        return hash(_hashable(self.to_dict()))

    def to_dict(self) -> dict:
        """The config as plain JSON-able data (grids expanded to lists)."""
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        """Canonical JSON (sorted keys), stored in results and hashed by :attr:`key`."""
        return json.dumps(self.to_dict(), sort_keys=True)

    @property
    def key(self) -> str:
        """Hash of the config, the versions of stabsim, NumPy and Numba, a hash of stabsim's
        own sources (:func:`stabsim._jit.package_sources_stamp`: the version stays 0.1.0
        while the code between releases changes what a chunk holds) and, for a loss family
        defined outside stabsim, the hashes of its source files (those its compiled kernels
        are stamped with, ``stabsim.losses._engines.family_stamp``, read when the config is
        made): names the work directory, so chunks computed by other versions (whose last
        bits may differ), by edited stabsim code or by an edited loss module are never mixed
        into one result."""
        import numba

        text = (f"stabsim {__version__} {package_sources_stamp()}\nnumpy {np.__version__}\n"
                f"numba {numba.__version__}\n{self.to_json()}")
        if self._loss_sources:
            text += f"\nloss sources {' '.join(self._loss_sources)}"
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def _hashable(value):
    """``value`` (JSON-able data) with each dict a frozen set of its items, each list a tuple."""
    if isinstance(value, dict):
        return frozenset((key, _hashable(item)) for key, item in value.items())
    if isinstance(value, list | tuple):
        return tuple(_hashable(item) for item in value)
    return value


def _refuse_unused(config, params, grid, method, band, window) -> None:
    """Raise ``ValueError`` for a setting the model would ignore (given other than at its
    default, which a config made again with ``dataclasses.replace`` carries)."""
    if config.model == "reduced":  # the map has no method, records, norm or class band
        defaults = {f.name: f.default for f in dataclasses.fields(config)}
        defaults.update(method=method, band=band, window=window)
        ignored = [name for name in ("method", "stride", "divergence_norm", "band", "window")
                   if getattr(config, name) not in (None, defaults[name])]
        if ignored:
            raise ValueError(f"model 'reduced' (the (x, y) map) does not use {ignored}")
    if params.get("theta0", "random") != "random" and ("seed" in params or "seed" in grid):
        raise ValueError("seed draws the random start; with theta0 given it is not used")
    if params.get("batch_sharpness") == "exact" and ("bs_batches" in params
                                                     or "bs_batches" in grid):
        raise ValueError("bs_batches is the number of batches of the sampled batch "
                         "sharpness; with batch_sharpness = 'exact' it is not used")


def _table(data, name, keys):
    table = data.get(name, {})
    if not isinstance(table, dict):
        raise ValueError(f"[{name}] must be a table")
    unknown = sorted(set(table) - keys)
    if unknown:
        raise ValueError(f"unknown key(s) {unknown} in [{name}]; known keys: {sorted(keys)}")
    return table


def _flatten_grid(grid):
    """Turn TOML's nested ``loss.<name>`` tables into ``"loss.<name>"`` keys."""
    if not isinstance(grid, dict):
        raise ValueError("[grid] must be a table")
    flat = {}
    for name, value in grid.items():
        nested = name == "loss" and isinstance(value, dict) and not (set(value) & _SPEC_KEYS)
        for key, spec in ({f"{LOSS_PREFIX}{k}": v for k, v in value.items()} if nested
                          else {name: value}).items():
            if key in flat:  # "loss.depth" quoted and loss.depth dotted: TOML allows both
                raise ValueError(f"[grid] gives {key!r} twice")
            flat[key] = spec
    return flat


def _check_params(params, known):
    if not isinstance(params, dict):
        raise ValueError("[params] must be a table")
    unknown = sorted(set(params) - set(known))
    if unknown:
        raise ValueError(f"unknown parameter(s) {unknown} in [params]; known: {sorted(known)}")
    out = {}
    for name, value in params.items():
        if name == "theta0":
            out[name] = value if value == "random" else \
                check.finite_array("theta0", value, ndim=1).tolist()
        elif name == "replacement":
            out[name] = check.boolean(name, value)
        elif name == "batch_sharpness":
            out[name] = check.choice(name, value, ("auto", "exact", "sampled"))
        else:
            out[name] = _scalar(name, value)
    return out


def _check_loss(model, loss):
    if model not in LOSS_MODELS:
        if loss is not None:
            raise ValueError(f"[loss] is only used with model = one of {list(LOSS_MODELS)}")
        return None
    if not isinstance(loss, dict) or "name" not in loss:
        raise ValueError(f"model = {model!r} needs a [loss] table with a 'name' key")
    out = {"name": str(loss["name"])}
    for key, value in loss.items():
        if key != "name":
            try:
                out[key] = np.asarray(value).tolist()
            except ValueError as exc:  # a ragged nesting of lists
                raise ValueError(f"[loss] {key!r} is not a number or a regular array: "
                                 f"{exc}") from None
    return out


def _check_loss_builds(config) -> tuple[int, tuple[str, ...]]:
    """Build the loss of every distinct combination of family parameters the cells use.

    A bad ``[loss]`` value (or a ``theta0`` of the wrong length) is then refused when the
    config is made, before any work directory or computation, and so is a loss that comes
    out different when built again (``"regression.random"`` without a ``seed``, or a
    factory that draws without one: the chunks, built one by one and on other workers,
    would each run on a loss of their own).

    Returns
    -------
    dim : int
        The largest dimension of the losses.
    sources : tuple of str
        For a loss made by a user's factory (``name = "module:factory"``), sorted: the
        :attr:`~stabsim.losses.Loss.provenance` of every loss it made (its parameters, and
        for a JAX loss its function's code, the values it reads and its module's source),
        the hash of the factory's module, and the hashes of the source files of the
        families defined outside stabsim (``family_stamp``; none for a family defined
        interactively, which has no file). Empty for stabsim's own families, which the
        config and stabsim's version determine.
    """
    from ..losses._engines import family_stamp, file_digest
    from ..maps.gd import resolve_loss_min
    from .gd_cells import build_loss  # the GD engine: imported for model "gd" only

    name = config.loss["name"]
    fixed = {k: v for k, v in config.loss.items() if k != "name"}
    swept = {k[len(LOSS_PREFIX):]: v for k, v in config.grid.items() if k.startswith(LOSS_PREFIX)}
    # with nothing swept, one combination: the fixed parameters (zip() of no lists would
    # give none, and leave the loss unbuilt and unchecked)
    combos = itertools.product(*swept.values()) if config.combine == "product" \
        else zip(*swept.values(), strict=True) if swept else [()]
    theta0 = config.params.get("theta0", _START["theta0"])
    dim = 1
    families, sources = set(), set()
    for combo in dict.fromkeys(combos):  # distinct combinations, in order
        chosen = dict(zip(swept, combo, strict=True))
        where = f"[loss] {name!r}" + (f" with {chosen}" if chosen else "")
        try:
            loss = build_loss(name, {**fixed, **chosen})
            # the provenance before building again: a JAX loss reads its globals lazily, and
            # a factory that redraws one would change the first loss with the second
            first = loss.provenance
            again = build_loss(name, {**fixed, **chosen}).provenance
        except ValueError as exc:
            # the swept float the message refuses as an integer (a range's float
            # itself, where several are swept)
            named = [k for k, v in chosen.items() if isinstance(v, float)
                     and v.is_integer() and f"{k} must be an integer" in str(exc)]
            hint = (f"; a {{start, stop, num}} range gives floats: give "
                    f"{LOSS_PREFIX}{named[0]} as a list of integers") if named else ""
            raise ValueError(f"{where}: {exc}{hint}") from None
        except Exception as exc:  # whatever a constructor raises on a value it cannot use
            raise ValueError(f"{where}: bad parameter value ({type(exc).__name__}: "
                             f"{exc})") from None
        if again != first:  # each chunk, on each worker, builds the loss anew
            raise ValueError(f"{where} made a different loss each time it was called (a "
                             "random draw without a fixed seed?): the sweep builds it again "
                             "for every chunk, so its cells would run on different losses; "
                             "fix its seed (for example seed = 0)")
        if theta0 != "random" and len(theta0) != loss.dim:
            raise ValueError(f"[params] theta0 has length {len(theta0)}, but {where} has "
                             f"dimension {loss.dim}")
        if config.model == "sgd":
            _check_batches(config, loss, where)
        if config.model == "gd":  # the cells of the other models run one at a time
            _check_cell_memory(config, loss, where)
            try:  # GD on sqrt(L − L_min) takes L_min from the loss: a sweep has no loss_min
                resolve_loss_min(loss, config.method)
            except ValueError:
                raise ValueError(f"method 'sqrt' descends sqrt(L − L_min) with L_min the "
                                 f"loss's known minimum value, and {where} has none: a sweep "
                                 "takes the losses that know it (run_gd takes loss_min=)"
                                 ) from None
        dim = max(dim, loss.dim)
        families.add(loss.family)
        if ":" in name:  # made by a user's factory: what it made, to the last bit
            sources.add(loss.provenance)
    for family in families:
        if not family.builtin:
            try:
                sources.update(family_stamp(family))
            except (TypeError, OSError):  # defined interactively: no source file
                pass
    if ":" in name:  # the factory's module too: what it reads besides the loss's record
        try:
            sources.add(file_digest(sys.modules[name.partition(":")[0]]))
        except (KeyError, TypeError, OSError):  # no file (a module made in memory)
            pass
    return dim, tuple(sorted(sources))


def _check_batches(config, loss, where) -> None:
    """SGD needs a finite-sum loss, and batch sizes at most N without replacement."""
    from ..maps.sgd import _batch_size, _require_finite_sum

    try:
        n = _require_finite_sum(loss)
    except TypeError as exc:
        raise ValueError(f"model = 'sgd' on {where}: {exc}") from None
    replacement = config.params.get("replacement", PARAMETERS["sgd"]["replacement"])
    for b in config.grid.get("batch_size", [config.params.get("batch_size")]):
        _batch_size(b, n, replacement)


def _check_cell_memory(config, loss, where) -> None:
    """Refuse cells that would not fit in memory when the kernel's threads run them at once.

    Every thread running cells allocates one cell's records (4 per record:
    loss, gradient norm, sharpness, eigen-residual), its vectors (:data:`CELL_VECTORS` plus
    the Lanczos basis of ``LANCZOS_RESTART`` vectors) and, on the dense path, the d × d
    Hessian and the family's factor rows, twice for Lanczos (the copy in its anchor). An
    allocation that fails inside that loop has no argument to name (it surfaces as a
    ``SystemError``), so the sum is checked here.
    """
    import numba

    from .._lanczos import LANCZOS_RESTART
    from ..maps import _gd_kernels as kernels
    from ..maps.gd import eigen_config
    from .gd_cells import EIG_MAX_PRODUCTS, EIG_TOL

    d = loss.dim
    eigen = eigen_config(loss, "auto", 1, EIG_TOL, EIG_MAX_PRODUCTS)
    copies = {kernels.MatrixFree: 0, kernels.DenseLanczos: 2}.get(type(eigen), 1)
    dense = copies * (d + eigen.factor_rows) * d if copies else 0
    n_rec = config.steps // config.stride + 1
    per_cell = 8 * (4 * n_rec + (CELL_VECTORS + min(LANCZOS_RESTART, d)) * d + dense)
    # before the default chunk size is known (it depends on d), every thread may run a cell
    side_by_side = min(numba.get_num_threads(), config.chunk_size or numba.get_num_threads())
    check.affordable(side_by_side * per_cell,
                     f"the cells of {where} ({side_by_side} at once; dimension {d}, "
                     f"steps / stride + 1 = {n_rec} records each)",
                     "lower `steps`, raise `stride`, or sweep a loss of lower dimension")


def _check_grid(grid, model, known, combine):
    if not isinstance(grid, dict) or not grid:
        raise ValueError("[grid] must list at least one swept parameter")
    out = {}
    for name, spec in grid.items():
        if name.startswith(LOSS_PREFIX) and model in LOSS_MODELS \
                and len(name) > len(LOSS_PREFIX):
            pass
        elif name not in known:
            sweepable = sorted(set(known) - FIXED_ONLY)
            extra = " and loss.<family parameter>" if model in LOSS_MODELS else ""
            raise ValueError(f"unknown parameter {name!r} in [grid]; model {model!r} sweeps "
                             f"{sweepable}{extra}")
        elif name in FIXED_ONLY:
            raise ValueError(f"parameter {name!r} cannot be swept; set it in [params]")
        values = [_scalar(name, v) for v in _expand(name, spec)]
        if len(values) > MAX_GRID_VALUES:
            raise ValueError(f"[grid] {name!r} has {len(values)} values, over "
                             f"{MAX_GRID_VALUES} per swept parameter")
        if len(values) == 0:
            raise ValueError(f"[grid] {name!r} is empty: give at least one value")
        too_wide = [v for v in values if isinstance(v, int) and not -2**31 <= v < 2**31]
        if too_wide:  # a coordinate of the result, which netCDF-3 stores in 32 bits
            raise ValueError(f"[grid] {name!r} has {too_wide[0]}, outside the 32-bit integers "
                             f"[-2**31, 2**31) a result stores")
        if combine == "product" and len(set(values)) != len(values):  # zip: cell by cell
            raise ValueError(f"[grid] {name!r} has repeated values")
        out[name] = values
    return out


def _expand(name, spec):
    """Values of one swept parameter, as a list of Python numbers."""
    if isinstance(spec, dict):
        unknown = sorted(set(spec) - _SPEC_KEYS)
        if unknown or not {"start", "stop", "num"} <= set(spec):
            raise ValueError(f"[grid] {name!r}: a range is {{start, stop, num, spacing}}, "
                             f"got keys {sorted(spec)}")
        start = check.finite_float(f"{name}.start", spec["start"])
        stop = check.finite_float(f"{name}.stop", spec["stop"])
        num = check.nonnegative_int(f"{name}.num", spec["num"])
        if num > MAX_GRID_VALUES:
            raise ValueError(f"[grid] {name!r}: num = {num} is over {MAX_GRID_VALUES} values "
                             f"per swept parameter")
        spacing = check.choice(f"{name}.spacing", spec.get("spacing", "linear"),
                               {"linear", "log"})
        if spacing == "log":
            if start <= 0 or stop <= 0:
                raise ValueError(f"[grid] {name!r}: a log range needs start, stop > 0")
            values = np.geomspace(start, stop, num)
        else:
            values = np.linspace(start, stop, num)
        if name in INTEGER_PARAMETERS:
            raise ValueError(f"[grid] {name!r} takes integers: give a list")
        return values.tolist()
    if isinstance(spec, str) or not hasattr(spec, "__len__"):
        raise ValueError(f"[grid] {name!r} must be a list of numbers or a "
                         f"{{start, stop, num}} range, got {spec!r}")
    return list(spec)


def _scalar(name, value):
    """One parameter value, checked: integers stay integers (seeds, family sizes)."""
    if name in INTEGER_PARAMETERS:  # a batch has an example; a probe needs two batches
        return check.nonnegative_int(name, value, minimum={"batch_size": 1,
                                                           "bs_batches": 2}.get(name, 0))
    if name in POSITIVE_PARAMETERS:
        return check.positive_float(name, value)
    if name in UNIT_PARAMETERS:
        return check.unit_interval(name, value)
    if name == "eps":
        eps = check.finite_float(name, value)
        if eps < 0.0:
            raise ValueError(f"eps must be >= 0, got {eps!r}")
        return eps
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        return int(value)
    return check.finite_float(name, value)
