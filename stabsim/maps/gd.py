"""Exact gradient descent (plain, heavy ball, Nesterov, normalised, on sqrt L) on any loss.

``run_gd`` is the engine everything else is compared against: it runs the true iteration
with the loss's exact derivatives and records, at a stride, the loss, the gradient norm, the
top-k Hessian eigenvalues and optionally the iterates. It also locates the first step
where the sharpness reaches the stability threshold, from which :func:`reference_point`
recovers θ* (docs/theory.md §1) by bisection on the segment between the two iterates around it.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from .. import _validate as check
from .._interrupt import deferred_interrupt
from .._lanczos import LANCZOS_RESTART
from .._progress import progress_bar
from .._result import Result
from .._status import Status, UndefinedError
from ..losses import Loss, Quadratic, check_dense_memory
from ..losses._base import require_loss
from ..losses._engines import engine_for
from ..spectral import perpendicular_part, sharpness, top_eigenpairs
from . import _gd_kernels as kernels

METHODS = {
    "gd": kernels.GD,
    "heavy_ball": kernels.HEAVY_BALL,
    "nesterov": kernels.NESTEROV,
    "normalised": kernels.NORMALISED,
    "sqrt": kernels.SQRT_LOSS,
}


def _momentum(method: str, momentum) -> float:
    """β in [0, 1) for heavy ball and Nesterov; 0 for the methods that have none."""
    beta = check.unit_interval("momentum", momentum)
    if beta != 0.0 and method not in ("heavy_ball", "nesterov"):
        raise ValueError(f"momentum = {beta!r} is used by 'heavy_ball' and 'nesterov' only; "
                         f"method {method!r} has none (leave momentum at 0)")
    return beta


def stability_threshold(eta: float, method: str = "gd", momentum: float = 0.0) -> float:
    """Sharpness at which the linearised update stops being stable (docs/theory.md §0).

    - GD: ``2/η``;
    - Polyak heavy ball ``θ' = θ − η∇L + β(θ − θ_prev)``: ``(2 + 2β)/η``;
    - Nesterov (PyTorch form): ``(2 + 2β)/((1 + 2β)η)``.

    Normalised GD and GD on sqrt(L) have no fixed threshold (their effective step changes
    every step), so they raise ``ValueError``.

    Parameters
    ----------
    eta : float
        Step size, > 0.
    method : {"gd", "heavy_ball", "nesterov", "normalised", "sqrt"}
        The update rule of :func:`run_gd`.
    momentum : float
        β in [0, 1) for ``"heavy_ball"`` and ``"nesterov"``; must be 0 for the other
        methods.

    Returns
    -------
    float
    """
    eta = check.positive_float("eta", eta)
    check.choice("method", method, METHODS)
    beta = _momentum(method, momentum)
    if method == "gd":
        return 2.0 / eta
    if method == "heavy_ball":
        return (2.0 + 2.0 * beta) / eta
    if method == "nesterov":
        return (2.0 + 2.0 * beta) / ((1.0 + 2.0 * beta) * eta)
    raise ValueError(f"method {method!r} has no fixed stability threshold")


@dataclasses.dataclass(repr=False)
class GDResult(Result):
    """What :func:`run_gd` recorded (the protocol of :class:`stabsim._result.Result`).

    Attributes
    ----------
    method : str
        The gradient method.
    eta, momentum : float
    threshold : float or None
        The stability threshold searched for (None when not searched).
    step : ndarray of int, shape (n_rec,)
        Step index of each record (row 0 is the start).
    loss, grad_norm : ndarray, shape (n_rec,)
        L(θ_t) and |∇L(θ_t)|.
    sharpness : ndarray, shape (n_rec, top_k)
        Top eigenvalues of ∇²L(θ_t), descending.
    eig_residual : ndarray, shape (n_rec,)
        |Hu − λu| of the Lanczos eigenpair (0 when a dense ``eigh`` was used); for
        top_k > 1 the largest over the k pairs, each that of the Hessian with the pairs
        above it deflated.
    trajectory : ndarray, shape (n_rec, d) or None
        θ_t at the recorded steps, with ``record_trajectory=True``.
    theta : ndarray, shape (d,)
        The last iterate reached.
    crossing_step : int or None
        First step t with S(θ_t) ≥ ``threshold`` (None if never, or if not searched).
    crossing_pair : ndarray, shape (2, d) or None
        θ_{t−1} and θ_t around that crossing.
    counters : dict
        ``steps`` (updates done), ``records`` (rows kept), ``gradients`` (evaluations of
        ∇L), ``lanczos_products`` (products with the Hessian, or with its dense form, inside
        Lanczos) and ``dense_hessians`` (dense Hessians formed).
    """

    method: str
    eta: float
    momentum: float
    threshold: float | None
    step: np.ndarray
    loss: np.ndarray
    grad_norm: np.ndarray
    sharpness: np.ndarray
    eig_residual: np.ndarray
    trajectory: np.ndarray | None
    theta: np.ndarray
    crossing_step: int | None
    crossing_pair: np.ndarray | None

    def headline(self) -> dict:
        out = {"method": self.method, "eta": self.eta, "steps": self.counters["steps"]}
        if self.loss.size:
            out.update(loss=float(self.loss[-1]), sharpness=float(self.sharpness[-1, 0]))
        return out

    def to_xarray(self):
        """The records as an ``xarray.Dataset`` with dimension ``step``.

        Attributes of every variable and of the dataset follow :mod:`stabsim._export`;
        ``threshold`` and ``crossing_step`` are left out when there is none.
        """
        import xarray as xr

        from .._export import finish

        data = {
            "loss": ("step", self.loss),
            "grad_norm": ("step", self.grad_norm),
            "sharpness": (("step", "eig"), self.sharpness),
            "eig_residual": ("step", self.eig_residual),
        }
        if self.trajectory is not None:
            data["theta"] = (("step", "param"), self.trajectory)
        attrs = {"method": self.method, "eta": self.eta, "momentum": self.momentum,
                 **self._export_attrs()}
        if self.threshold is not None:
            attrs["threshold"] = self.threshold
        if self.crossing_step is not None:
            attrs["crossing_step"] = self.crossing_step
        ds = xr.Dataset(data, coords={"step": self.step}, attrs=attrs)
        return finish(ds, self.parameters)


#: what a measurement that missed its tolerance may mean besides a small budget: Lanczos keeps
#: its top two Ritz vectors across restarts, which resolves a pair of nearly equal top
#: eigenvalues but not three or more (diag(0, …, 1 − 2g, 1 − g, 1), d = 1000, from
#: (1, …, 1), eig_tol = 1e-10: stalled at g = 1e-6 and 1e-8 through 5,000 products, with
#: residuals 1.7e-6 and 1.7e-8; a pair took 424 and 511; eigh measures any cluster)
STALLED_LANCZOS = (
    "Lanczos keeps its top two Ritz vectors across restarts, and three or more top "
    "eigenvalues much closer to each other than to the rest of the spectrum can hold it "
    "above `eig_tol` at any budget; eigensolver='eigh' measures them where d allows"
)


def run_gd(
    loss: Loss,
    theta0,
    eta: float,
    steps: int,
    *,
    method: str = "gd",
    momentum: float = 0.0,
    stride: int = 1,
    top_k: int = 1,
    record_trajectory: bool = False,
    find_crossing: bool = True,
    eigensolver: str = "auto",
    eig_tol: float = 1e-10,
    eig_max_products: int = 1000,
    loss_min: float | None = None,
    divergence_norm: float = 1e8,
    chunk_steps: int = 2000,
    progress: bool = False,
) -> GDResult:
    """Run an exact gradient method for ``steps`` steps.

    Update rules (``method``): ``"gd"`` θ' = θ − η∇L(θ); ``"heavy_ball"``
    θ' = θ − η∇L(θ) + β(θ − θ_prev); ``"nesterov"`` b' = βb + ∇L(θ), θ' = θ − η(∇L(θ) + βb');
    ``"normalised"`` θ' = θ − η∇L/|∇L|; ``"sqrt"`` θ' = θ − η∇L/(2 sqrt(L − L_min)), i.e.
    GD on sqrt(L − L_min). β is ``momentum``.

    Parameters
    ----------
    loss : Loss
    theta0 : array_like, shape (d,)
    eta : float
        Step size, > 0.
    steps : int
        Number of updates; the result has ``steps // stride + 1`` records at most, one more
        when ``stride`` does not divide ``steps``.
    method : {"gd", "heavy_ball", "nesterov", "normalised", "sqrt"}
        The update rule (above).
    momentum : float
        β in [0, 1) for ``"heavy_ball"`` and ``"nesterov"``; the other methods have none,
        and a nonzero value for them is a ValueError.
    stride : int
        Record every ``stride``-th step (step 0 always, and the last one).
    top_k : int
        How many top Hessian eigenvalues to record.
    record_trajectory : bool
        Keep θ_t at every record (``trajectory``, shape (n_rec, d)).
    find_crossing : bool
        Compute the sharpness every step until it first reaches the method's stability
        threshold, and keep the two iterates around that step (GD and momentum methods).
    eigensolver : {"auto", "lanczos", "eigh"}
        ``"lanczos"``: warm-started, restarted Lanczos on Hessian-vector products (O(d)
        memory per eigenvalue; for top_k > 1 the pairs one after another, each with those
        above it deflated), stopped at relative residual ``eig_tol`` (relative to the
        Hessian's size: for the pairs below the top, to |λ₁|, so that a pair of a small
        eigenvalue is accurate to ``eig_tol``·|λ₁| rather than to its own size); ``"eigh"``:
        ``numpy.linalg.eigh`` of the dense Hessian (memory checked first); ``"auto"``: the
        dense Hessian for d ≤ 2 (the closed form; eigh when top_k = 2) and for families that
        prefer it (the regression model: Lanczos on the dense Hessian plus Gauss–Newton
        factor, eigh when top_k > 1), Lanczos on products otherwise.
    eig_tol : float
        Relative residual |Hv − λv| at which Lanczos stops, > 0 (relative as above); not
        used where the eigenvalues come from ``eigh`` or the closed form (``"eigh"``;
        ``"auto"`` at d ≤ 2, or for a family that prefers the dense Hessian with top_k > 1).
    eig_max_products : int
        Budget of Hessian products per Lanczos measurement. Lanczos restarts from its top
        Ritz vector; a measurement that misses ``eig_tol`` within the budget is made again,
        with a budget of its own, restarting from the top two (which resolves two nearly
        equal top eigenvalues), and the run goes on so; a miss then stops it with status
        NOT_CONVERGED. Three or more top eigenvalues much closer to each other than to the
        rest of the spectrum can keep it from ``eig_tol`` at any budget
        (:data:`STALLED_LANCZOS`): ``"eigh"`` measures them.
    loss_min : float, optional
        L_min for ``method="sqrt"``; defaults to ``loss.min_value``. A finite value at most
        L(θ₀) (ValueError otherwise: sqrt(L − L_min) is undefined at θ₀); an L that falls
        below it during the run stops the run with status NONFINITE, and the message says
        so.
    divergence_norm : float
        |θ| above which the run stops with status DIVERGED.
    chunk_steps : int
        Steps per compiled call; Ctrl-C and the progress bar act between chunks.
    progress : bool
        Show a tqdm progress bar.

    Returns
    -------
    GDResult
        Never contains NaN: a run that meets a non-finite value stops there with status
        NONFINITE (or DIVERGED) and keeps the records made before; ZERO_GRADIENT keeps the
        record of the critical point it stopped at too (when it is a recorded step); for
        ``method="sqrt"`` the message gives L − L_min and |∇L| where the step
        η∇L/(2 sqrt(L − L_min)) could not be taken. Ctrl-C
        returns the records made so far with status INTERRUPTED (within one chunk of
        ``chunk_steps`` steps); a second Ctrl-C raises ``KeyboardInterrupt``.
    """
    require_loss(loss)
    theta = loss.check_point(theta0, "theta0").copy()
    eta = check.positive_float("eta", eta)
    steps = check.nonnegative_int("steps", steps)
    check.choice("method", method, METHODS)
    momentum = _momentum(method, momentum)
    stride = check.nonnegative_int("stride", stride, minimum=1)
    top_k = check.nonnegative_int("top_k", top_k, minimum=1)
    if top_k > loss.dim:
        raise ValueError(f"top_k must be <= the dimension {loss.dim}, got {top_k}")
    check.choice("eigensolver", eigensolver, {"auto", "lanczos", "eigh"})
    eig_tol = check.positive_float("eig_tol", eig_tol)
    eig_max_products = check.nonnegative_int("eig_max_products", eig_max_products, minimum=1)
    divergence_norm = check.positive_float("divergence_norm", divergence_norm)
    chunk_steps = check.nonnegative_int("chunk_steps", chunk_steps, minimum=1)
    record_trajectory = check.boolean("record_trajectory", record_trajectory)
    find_crossing = check.boolean("find_crossing", find_crossing)
    progress = check.boolean("progress", progress)
    loss_min = resolve_loss_min(loss, method, loss_min)
    if method == "sqrt":
        _check_sqrt_start(loss, theta, loss_min)

    threshold = None
    if find_crossing and method in ("gd", "heavy_ball", "nesterov"):
        threshold = stability_threshold(eta, method, momentum)
    eigen = eigen_config(loss, eigensolver, top_k, eig_tol, eig_max_products)

    d = loss.dim
    n_rec = check.record_rows(steps, stride,
                              width=3 + top_k + (d if record_trajectory else 0))
    rec = kernels.Records(np.zeros(n_rec), np.zeros(n_rec), np.zeros((n_rec, top_k)),
                          np.zeros((n_rec if record_trajectory else 0, d)), np.zeros(n_rec))
    # the warm starts: one vector per measured eigenpair (Lanczos on products), else one
    n_vectors = top_k if isinstance(eigen, kernels.MatrixFreeDeflated) else 1
    # θ_{t−1} and the crossing pair only where a crossing is searched for (at d = 10⁶ they
    # were 24 MB written at every call)
    searching = threshold is not None
    state = kernels.GDState(theta, theta.copy() if method == "heavy_ball" else np.zeros(d),
                            theta.copy() if searching else np.empty(0),
                            np.full(n_vectors * d, 1.0 / np.sqrt(d)),
                            np.full(2 * d + 1 if searching else 1, -1.0), np.zeros(3, np.int64))
    rule = kernels.Method(METHODS[method], eta, momentum, loss_min)
    kernel = engine_for(kernels.gd_chunk, loss.family)

    bar = progress_bar(steps, enabled=progress, unit="step", leave=False)
    status, done = int(Status.OK), 0
    with deferred_interrupt() as interrupt:
        while status == int(Status.OK):
            if interrupt.requested:  # the state at step `done` is reached, not yet recorded
                status = int(Status.INTERRUPTED)
                break
            n = min(chunk_steps, steps - done)
            finish = done + n == steps
            status, advanced = kernel(loss.params, rule, eigen, state, rec, done, n, finish,
                                      stride, divergence_norm,
                                      threshold if threshold is not None else -1.0)
            done += advanced
            bar.update(advanced)
            if (thick := thick_after_stall(eigen, status)) is not None:
                eigen, status = thick, int(Status.OK)  # the stalled step measured again
                continue
            if finish:
                break
    bar.close()
    detail = None
    if method == "sqrt" and status in (int(Status.NONFINITE), int(Status.ZERO_GRADIENT)):
        # before the records are cut: a ZERO_GRADIENT it finds an infinite step keeps none
        status, detail = _sqrt_stop(loss, theta, loss_min, done, status)
    n_kept = kernels.rows_kept(status, done, stride)
    if status == int(Status.OK):  # (the last state's record alone cannot stop a sqrt run)
        n_kept = done // stride + 1
        if steps % stride:  # the last state, measured and recorded on its own (no update)
            last = kernels.Records(*(r[-1:] if r.shape[0] else r for r in rec))
            while True:
                status, _ = kernel(loss.params, rule, eigen, state, last, 0, 0, True, 1,
                                   divergence_norm, -1.0)
                if (thick := thick_after_stall(eigen, status)) is None:
                    break
                eigen = thick
            n_kept += status == int(Status.OK)
    if status == int(Status.NOT_CONVERGED):  # in the loop, or at the last state on its own
        detail = STALLED_LANCZOS
    step = np.arange(n_kept) * stride
    if n_kept == n_rec and steps % stride:
        step[-1] = steps
    crossing = state.crossing
    crossing_step = int(crossing[0]) if crossing[0] >= 0 else None
    parameters = {"loss": loss.provenance, "eta": eta, "steps": steps, "method": method,
                  "momentum": momentum, "stride": stride, "top_k": top_k,
                  "record_trajectory": record_trajectory, "find_crossing": find_crossing,
                  "eigensolver": eigensolver, "eig_tol": eig_tol,
                  "eig_max_products": eig_max_products, "loss_min": loss_min,
                  "divergence_norm": divergence_norm}
    return GDResult(
        status=Status(status), counters=_counters(done, n_kept, state.counts),
        parameters=parameters, knob="eig_max_products", detail=detail,
        method=method, eta=eta, momentum=momentum, threshold=threshold,
        step=step,
        loss=rec.loss[:n_kept], grad_norm=rec.gnorm[:n_kept],
        sharpness=rec.sharp[:n_kept], eig_residual=rec.residual[:n_kept],
        trajectory=rec.theta[:n_kept] if record_trajectory else None,
        theta=theta, crossing_step=crossing_step,
        crossing_pair=crossing[1:].reshape(2, d).copy() if crossing_step is not None else None,
    )


def _counters(steps: int, records: int, counts) -> dict:
    """The work counters of a GD result: updates, records, and the engine's counts of
    gradients, Lanczos products and dense Hessians (``GDState.counts``)."""
    gradients, products, hessians = (int(c) for c in counts)
    return {"steps": steps, "records": records, "gradients": gradients,
            "lanczos_products": products, "dense_hessians": hessians}


def thick_after_stall(eigen, status: int):
    """The measurement record ``eigen`` with thick Lanczos restarts, where a run measuring
    with thin ones stopped on a stall (``status`` NOT_CONVERGED); else None.

    The engines start with thin restarts, which spare every first call the thick
    restart's compiling (about 1 s: :func:`stabsim._lanczos.lanczos_work`), and a run whose
    measurement stalls goes on from the stalled step with thick ones, which separate two
    nearly equal top eigenvalues (the engine is compiled once more, on that first need).
    """
    # the records of measurements without Lanczos (TinyDense, DenseEigh) have no `thick`
    if status == int(Status.NOT_CONVERGED) and getattr(eigen, "thick", True) is None:
        return eigen._replace(thick=True)
    return None


#: the update of :func:`measured_top_pairs`, which makes none (a record of run_gd's types)
_NO_UPDATE = kernels.Method(METHODS["gd"], 0.0, 0.0, 0.0)


def measured_top_pairs(loss: Loss, theta: np.ndarray, vectors: np.ndarray, tops: np.ndarray,
                       max_products: int, tol: float, thick) -> tuple[float, bool]:
    """The top ``tops.size`` = k eigenpairs of ∇²L(θ) by the measurement of :func:`run_gd`
    with ``top_k`` = k on Hessian-vector products: its compiled engine run for no step at θ,
    with arguments of the types :func:`run_gd` gives it, so that a process that has run GD
    so compiles nothing more (a stand-in for
    :func:`stabsim.spectral.tracked_top_eigenpairs`'s own entry point, see
    :func:`stabsim.spectral.pairs_measured_by`).

    Pair i is warm-started in place from ``vectors[i d:(i + 1) d]`` (``thick`` and the
    budget of ``max_products`` products a pair as in
    :class:`~stabsim.maps._gd_kernels.MatrixFreeDeflated`), its value written into
    ``tops[i]``. Returns the largest residual and whether every pair met ``tol``; the
    residual is NaN where the loss, its gradient or its Hessian at θ is not finite (the
    engine evaluates the gradient too) and +inf, unrecorded, where Lanczos ran out of
    products. No input checks: θ is a checked C-contiguous float64 vector.
    """
    d, k = loss.dim, tops.shape[0]
    state = kernels.GDState(theta, np.empty(0), np.empty(0), vectors, np.full(1, -1.0),
                            np.zeros(3, np.int64))
    rec = kernels.Records(np.zeros(1), np.zeros(1), np.zeros((1, k)), np.zeros((0, d)),
                          np.zeros(1))
    eigen = kernels.MatrixFreeDeflated(LANCZOS_RESTART, max_products, tol, k, thick)
    kernel = engine_for(kernels.gd_chunk, loss.family)
    status, _ = kernel(loss.params, _NO_UPDATE, eigen, state, rec, 0, 0, True, 1, np.inf, -1.0)
    if status == int(Status.NONFINITE):
        return np.nan, False
    if status != int(Status.OK):  # NOT_CONVERGED: nothing recorded
        return np.inf, False
    tops[:] = rec.sharp[0]
    return float(rec.residual[0]), True


def eigen_config(loss: Loss, eigensolver: str, top_k: int, tol: float, max_products: int,
                 dense_copies: int = 1):
    """How the GD engine measures the sharpness of ``loss`` (see :func:`run_gd`); a dense
    measurement is refused when ``dense_copies`` d × d arrays (twice as many for Lanczos on
    the dense Hessian: each has the copy of its anchor, see
    :func:`stabsim._lanczos.anchored_top_eigenpair`) would not fit in memory.

    Returns a :class:`~stabsim.maps._gd_kernels.MatrixFree`, ``MatrixFreeDeflated``,
    ``DenseLanczos``, ``TinyDense``
    or ``DenseEigh`` record.

    Raises
    ------
    ValueError
        When a dense path is requested for a d whose d × d Hessian would not fit in memory.
    """
    def copies(count):
        return "a dense Hessian" if count == 1 else f"{count} d × d arrays"

    dense_auto = eigensolver == "auto" and (loss.dim <= 2 or loss.family.prefers_dense)
    if eigensolver == "eigh" or (top_k > 1 and dense_auto):
        check_dense_memory(loss.dim, f"eigensolver={eigensolver!r} ({copies(dense_copies)})",
                           dense_copies)
        return kernels.DenseEigh(top_k, loss.factor_rows)
    if top_k > 1:
        return kernels.MatrixFreeDeflated(LANCZOS_RESTART, max_products, tol, top_k)
    if eigensolver == "auto" and loss.dim <= 2:  # closed form: exact and the cheapest
        return kernels.TinyDense(loss.factor_rows)
    if eigensolver == "auto" and loss.family.prefers_dense:
        check_dense_memory(loss.dim, "the dense measurement this family prefers "
                           f"({copies(2 * dense_copies)})", 2 * dense_copies)
        return kernels.DenseLanczos(LANCZOS_RESTART, max_products, tol, loss.factor_rows)
    return kernels.MatrixFree(LANCZOS_RESTART, max_products, tol)


@dataclasses.dataclass(repr=False)
class Step(Result):
    """One update of :func:`step` (the protocol of :class:`stabsim._result.Result`;
    ``counters["steps"]`` is 1, or 0 when the update was refused)."""

    theta: np.ndarray  #: θ_{t+1} (θ_t when the status is not OK)
    buf: np.ndarray  #: the next momentum state (θ_t for heavy ball, b_{t+1} for Nesterov)

    def headline(self) -> dict:
        return {"method": self.parameters["method"], "eta": self.parameters["eta"]}

    def to_xarray(self):
        """θ_{t+1} and the momentum state as an ``xarray.Dataset`` on dimension ``param``."""
        import xarray as xr

        from .._export import finish

        ds = xr.Dataset({"theta": ("param", self.theta), "buf": ("param", self.buf)},
                        attrs=self._export_attrs())
        return finish(ds, self.parameters)


def step(loss: Loss, theta, eta: float, *, method: str = "gd", momentum: float = 0.0,
         buf=None, loss_min: float | None = None) -> Step:
    """One update of a gradient method, by the same compiled engine as :func:`run_gd`.

    The rules are those of :func:`run_gd`; ``buf`` is the momentum state (θ_{t−1} for heavy
    ball, default θ_t; the buffer b for Nesterov, default 0). Repeating ``step`` from θ_0
    gives the iterates of ``run_gd`` to round-off, and exactly at the steps whose sharpness
    ``run_gd`` does not measure: at a measured step it takes ∇L from the pass that also
    gives the Hessian or its products (a family's ``hessian_parts`` or
    ``value_grad_linearise``), whose sums may round differently in the last bits (a
    regression model of d = 4: 1e-17 after 30 steps). So ``run_gd``'s iterates also depend on
    ``stride`` in the last bits for such families.

    Parameters
    ----------
    loss : Loss
    theta : array_like, shape (d,)
        θ_t.
    eta : float
        Step size, > 0.
    method : {"gd", "heavy_ball", "nesterov", "normalised", "sqrt"}
        The update rule, as for :func:`run_gd`.
    momentum : float
        β in [0, 1) for ``"heavy_ball"`` and ``"nesterov"``; nonzero for another method is
        a ValueError.
    buf : array_like, shape (d,), optional
        The momentum state: θ_{t−1} for heavy ball (default θ_t, so the first update has no
        momentum), the buffer b for Nesterov (default 0); not used by the other methods.
    loss_min : float, optional
        L_min for ``method="sqrt"`` (default ``loss.min_value``; at most L(θ), as for
        :func:`run_gd`); not used by the other methods.

    Returns
    -------
    Step
        The next iterate and momentum state, and the status (NONFINITE, DIVERGED or
        ZERO_GRADIENT leave θ unchanged; ``method="sqrt"`` refuses L(θ) < L_min with
        ValueError and explains its failures as :func:`run_gd` does).
    """
    require_loss(loss)
    theta = loss.check_point(theta).copy()
    eta = check.positive_float("eta", eta)
    check.choice("method", method, METHODS)
    momentum = _momentum(method, momentum)
    loss_min = resolve_loss_min(loss, method, loss_min)
    if method == "sqrt":
        _check_sqrt_start(loss, theta, loss_min)
    if buf is None:
        buf = theta.copy() if method == "heavy_ball" else np.zeros(loss.dim)
    buf = loss.check_point(buf, "buf").copy()
    d = loss.dim
    state = kernels.GDState(theta, buf, theta.copy(), np.full(d, 1.0 / np.sqrt(d)),
                            np.full(2 * d + 1, -1.0), np.zeros(3, np.int64))
    no_records = kernels.Records(np.zeros(0), np.zeros(0), np.zeros((0, 1)), np.zeros((0, d)),
                                 np.zeros(0))
    eigen = kernels.MatrixFree(1, 1, 1.0)  # with empty records nothing is measured
    rule = kernels.Method(METHODS[method], eta, momentum, loss_min)
    kernel = engine_for(kernels.gd_chunk, loss.family)
    status, _ = kernel(loss.params, rule, eigen, state, no_records, 0, 1, False, 1, np.inf, -1.0)
    detail = None
    if method == "sqrt" and status in (int(Status.NONFINITE), int(Status.ZERO_GRADIENT)):
        status, detail = _sqrt_stop(loss, state.theta, loss_min, 0, status)
    parameters = {"loss": loss.provenance, "eta": eta, "method": method, "momentum": momentum,
                  "loss_min": loss_min}
    return Step(status=Status(status), counters={"steps": int(status == Status.OK)},
                parameters=parameters, detail=detail, theta=state.theta, buf=state.buf)


def resolve_loss_min(loss: Loss, method: str, loss_min=None) -> float:
    """L_min of GD on sqrt(L − L_min): given, or the loss's known minimum (required for
    ``method="sqrt"``; 0 for the other methods, which do not use it)."""
    if method == "sqrt" and loss_min is None:
        loss_min = loss.min_value
        if loss_min is None or not np.isfinite(loss_min):
            raise ValueError(f"loss_min is required for method='sqrt' ({loss!r} has no known "
                             "finite minimum value)")
    return 0.0 if loss_min is None else check.finite_float("loss_min", loss_min)


def _check_sqrt_start(loss: Loss, theta: np.ndarray, loss_min: float) -> None:
    """Refuse a start of GD on sqrt(L − L_min) where L(θ₀) < L_min: sqrt(L − L_min) is
    undefined there (a NaN L is left to the engine, which reports NONFINITE)."""
    value = loss.value(theta)
    if value < loss_min:
        raise ValueError(f"L(theta0) = {value!r} < loss_min = {loss_min!r}: "
                         "sqrt(L − loss_min), which method='sqrt' descends, is undefined "
                         "there; loss_min must be at most the minimum of L"
                         + _known_minimum(loss))


def _known_minimum(loss: Loss) -> str:
    """`` (<loss> has min_value = <value>)`` where the loss knows its minimum, else ``""``."""
    return "" if loss.min_value is None else f" ({loss!r} has min_value = {loss.min_value})"


def _sqrt_stop(loss: Loss, theta: np.ndarray, loss_min: float, t: int,
               status: int) -> tuple[int, str | None]:
    """Status and detail of a run of GD on sqrt(L − L_min) that the engine stopped at θ_t
    (``theta``, step ``t``) with NONFINITE or ZERO_GRADIENT: the step
    η∇L/(2 sqrt(L − L_min)) it could not take, from L(θ_t) − L_min and ∇L(θ_t).

    - NONFINITE with L < L_min: L fell below ``loss_min`` during the run, where
      sqrt(L − L_min) is undefined;
    - ZERO_GRADIENT with ∇L ≠ 0: the engine found L − L_min ≤ 0 (or so small that the
      step overflows), an infinite step where L falls below ``loss_min`` next to θ_t:
      reported as NONFINITE, since ∇L is not zero;
    - ZERO_GRADIENT with ∇L = 0: θ_t is a minimiser with L = L_min (the step is 0/0), or a
      critical point above L_min (the step is 0: θ would stay there).

    Otherwise (another cause, or a non-finite θ_t, L or ∇L) the engine's status, no detail.
    """
    if not np.all(np.isfinite(theta)):
        return status, None
    with np.errstate(over="ignore", invalid="ignore"):
        value, gnorm = loss.value(theta), float(np.linalg.norm(loss.grad(theta)))
    if not (np.isfinite(value) and np.isfinite(gnorm)):
        return status, None
    gap = value - loss_min
    at = f"at step {t}, L = {value!r}, loss_min = {loss_min!r}, |∇L| = {gnorm:.3g}"
    above = "so loss_min is above the minimum of L" + _known_minimum(loss)
    if status == int(Status.NONFINITE):
        if gap < 0.0:
            return status, (f"{at}: sqrt(L − loss_min) is undefined there; L went below "
                            f"loss_min during the run, {above}")
        return status, None
    if gnorm > 0.0:
        return int(Status.NONFINITE), (
            f"{at}: the step η∇L/(2 sqrt(L − loss_min)) is infinite, as L − loss_min = "
            f"{gap:.3g} with ∇L ≠ 0, and L falls below loss_min next to θ, {above}")
    if gap > 0.0:
        return status, (f"{at}: a critical point above loss_min, where the step "
                        "η∇L/(2 sqrt(L − loss_min)) is 0 and θ would stay for good")
    return status, (f"{at}: θ is a minimiser with L = loss_min, where the step "
                    "η∇L/(2 sqrt(L − loss_min)) is 0/0")


def reference_point(loss: Loss, result: GDResult, *, tol: float = 1e-12, max_iter: int = 200):
    """θ*: where GD's sharpness first reaches the stability threshold, at the centre of its
    oscillation.

    Bisection for S(θ) = threshold on the segment θ_{t−1} → θ_t between the two iterates
    around the first crossing that :func:`run_gd` found (docs/theory.md §1), then Newton
    steps in the plane of u and ∇S⊥ onto the two conditions

        S(θ) = threshold,   u(θ)·∇L(θ) = 0,

    the second being what the reduced map assumes: to first order GD moves
    x = u·(θ − θ*) by x_{t+1} = −(1 + η y_t) x_t − η u·∇L(θ*), and the map has no constant
    term. The two iterates around the crossing lie on either side of the oscillation's
    centre (x of opposite signs), so the bisection point alone is anywhere between them,
    and x measured from it was off by O(x) (on the exact realisation of the map, GD's x at
    the crossing −5.86e-4 came out +1.17e-3, and the map from it left GD within a cycle).
    A Newton step moves along u by s = −u·∇L/S and along ∇S⊥ by
    (threshold − S − (u·∇S) s)/|∇S⊥|²; it stops when the step is below ``tol`` times the
    segment's length. Where ∇S⊥ is zero (to round-off) there is no second direction, and
    the point reached is returned: the constants are undefined there
    (:func:`~stabsim.spectral.eos_constants` raises, and ``compare`` reports
    FLAT_SHARPNESS). The sharpness is computed by
    :func:`stabsim.spectral.top_eigenpairs` (dense for small d and for families that prefer
    it, else Lanczos to relative residual 1e-14).

    Returns
    -------
    ndarray, shape (d,)
        θ*, with S(θ*) at the threshold and u·∇L(θ*) = 0 to the Newton step's tolerance.

    Raises
    ------
    ValueError
        If the run has no crossing, or crossed at step 0: S(θ₀) is at or past the threshold,
        GD never rises through it from below, and θ* is undefined.
    stabsim._status.UndefinedError
        (a ValueError) If no point of S = threshold and u·∇L = 0 lies near the crossing
        (within the reach of :func:`_centred`; the minimalist loss at η > 1/2, whose stable
        set holds no minimiser), or the Newton steps do not settle in ``max_iter`` (a
        repeated top eigenvalue).
    """
    require_loss(loss)
    if not isinstance(result, GDResult):
        raise TypeError(f"result must be the GDResult of run_gd, got {type(result).__name__}")
    tol = check.positive_float("tol", tol)
    max_iter = check.nonnegative_int("max_iter", max_iter, minimum=1)
    if result.crossing_step is None or result.crossing_pair is None:
        if not result.parameters.get("find_crossing", True):
            why = "it was run with find_crossing=False, which keeps no crossing"
        elif result.threshold is None:
            why = f"method={result.method!r} has no stability threshold"
        else:
            why = (f"the sharpness stayed below the threshold {result.threshold:.6g}: run "
                   "longer, or with a larger eta")
        raise ValueError(f"result has no crossing of the stability threshold: {why}")
    if result.crossing_step == 0:
        raise ValueError(f"S(θ₀) = {result.sharpness[0, 0]:.10g} is at or past the threshold "
                         f"{result.threshold:.10g}: GD starts there and never crosses it from "
                         "below, so θ* is undefined")
    before, after = result.crossing_pair
    target = result.threshold

    def excess(s):
        return sharpness(loss, before + s * (after - before), tol=1e-14) - target

    lo, hi = 0.0, 1.0
    if excess(0.0) >= 0.0:  # S(θ_{t−1}) below the threshold in GD's measurement, at it here
        hi = 0.0
    for _ in range(max_iter):
        if hi - lo <= tol:
            break
        mid = 0.5 * (lo + hi)
        if excess(mid) >= 0.0:
            hi = mid
        else:
            lo = mid
    theta = before + hi * (after - before)
    return _centred(loss, theta, before, after, target, tol, max_iter)


def _centred(loss: Loss, start: np.ndarray, before: np.ndarray, after: np.ndarray,
             target: float, tol: float, max_iter: int) -> np.ndarray:
    """Newton steps from ``start`` onto S = ``target`` and u·∇L = 0, to steps below ``tol``
    times the crossing step θ_{t−1} = ``before`` → θ_t = ``after`` (:func:`reference_point`).

    The point found must be the centre of GD's oscillation at the crossing: the two
    iterates' x = u·(θ − θ*) must have opposite signs (or be 0), as GD's do about the
    centre while 1 + ηy > 0; another point of S = 2/η and u·∇L = 0 (on the minimalist loss,
    the mirror image of the minimiser the crossing nears, to which the long Newton step
    along a small ∇S⊥ jumps near its diagonal) is not it; an x below a millionth of the
    step counts as either sign (at a first crossing on a network GD's oscillation can be
    round-off, x/length ~ 1e-14). Capping each step at the crossing step's length, tried,
    found that loss's own minimiser but slowed convergence where the centre is far (over
    200 steps where r = |u·∇S|/|∇S⊥| = 600), so the steps are only kept within
    ``reach`` = 2·length·(1 + |u·∇S|/|∇S⊥|) of ``start`` (at ``start``): the centre lies
    within about |x| ≤ length of it along u, and moving there changes S by (u·∇S)·|x|,
    which the step along ∇S⊥ undoes over |u·∇S|/|∇S⊥| times that (the factor 2 for the
    change of u and ∇S on the way).
    """
    length = float(np.linalg.norm(after - before))
    u = None
    theta = start
    reach = None
    for _ in range(max_iter):
        pairs = top_eigenpairs(loss, theta, 1, v0=u, tol=1e-14)
        top, u = float(pairs.values[0]), pairs.vectors[:, 0]
        grad_s = loss.d3(theta, u, u)
        perp, perp_is_zero = perpendicular_part(u, grad_s)
        if perp_is_zero:  # both conditions on u alone: θ* is where the constants, which
            return theta  # need ∇S⊥ ≠ 0, are undefined (eos_constants says so)
        along = float(u @ grad_s)
        if reach is None:
            reach = 2.0 * length * (1.0 + abs(along) / float(np.linalg.norm(perp)))
        shift = -float(u @ loss.grad(theta)) / top
        step = shift * u + ((target - top - along * shift) / (perp @ perp)) * perp
        theta = theta + step
        if not np.linalg.norm(theta - start) <= reach:  # NaN too
            raise UndefinedError(
                f"θ* is undefined: no point with S = {target:.10g} (the threshold) and "
                "u·∇L = 0 lies near the crossing (the stable set holds no such point there), "
                "and the reduced map's x is measured from one")
        if np.linalg.norm(step) <= tol * length:
            x_before, x_after = float(u @ (before - theta)), float(u @ (after - theta))
            # GD's oscillation at a first crossing can be round-off (x/length ~ 1e-14 on
            # networks): only x of one sign beyond a millionth of the step refuses the point
            if x_before * x_after > 0.0 and min(abs(x_before), abs(x_after)) > 1e-6 * length:
                raise UndefinedError(
                    f"θ* is undefined: the point near the crossing with S = {target:.10g} "
                    "(the threshold) and u·∇L = 0 is not between GD's iterates along u (their "
                    "x = u·(θ − θ*) have one sign), so it is not the centre of GD's "
                    "oscillation, from which the reduced map's x is measured")
            return theta
    raise UndefinedError(f"θ* is undefined: the Newton steps onto S = {target:.10g} and "
                         f"u·∇L = 0 did not settle in {max_iter} steps (a repeated top "
                         "eigenvalue near the crossing, where u is undefined?)")


def empirical_threshold(method: str = "gd", momentum: float = 0.0, *, sharpness: float = 1.0,
                        rtol: float = 1e-7, steps: int = 200_000) -> float:
    """The largest stable step size on S x²/2, found by bisection on η with :func:`run_gd`.

    A step size is stable when |x| does not grow over the second half of a ``steps``-step
    run. Near the critical η_c the dominant eigenvalue of the linearised update is about
    −1 − cε for η = η_c(1 + ε), so |x| changes over n steps by exp(−cεn); with n = 2·10⁵ a
    relative ε of 5·10⁻⁸ is told apart from 1 far beyond round-off (n·1e-16). An independent
    check of :func:`stability_threshold`, which gives η_c = threshold(η = 1)/S in closed form.

    Returns
    -------
    float
        η_c to relative accuracy ``rtol``.
    """
    check.choice("method", method, {"gd", "heavy_ball", "nesterov"})
    sharpness = check.positive_float("sharpness", sharpness)
    rtol = check.positive_float("rtol", rtol)
    steps = check.nonnegative_int("steps", steps, minimum=2)  # it records at stride steps // 2
    loss = Quadratic([sharpness])

    def stable(eta):
        result = run_gd(loss, [1.0], eta, steps, method=method, momentum=momentum,
                        stride=steps // 2, find_crossing=False, divergence_norm=1e300)
        if result.status is not Status.OK:  # overflowed: clearly unstable
            return False
        return not result.loss[2] > result.loss[1]  # both may underflow to 0 when stable

    lo, hi = 0.5 / sharpness, 8.0 / sharpness  # every threshold of docs/theory.md §0 lies between
    if not stable(lo) or stable(hi):
        raise ValueError(f"no stability threshold in [{lo:.3g}, {hi:.3g}] for {method!r}")
    while (hi - lo) / lo > rtol:
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if stable(mid) else (lo, mid)
    return 0.5 * (lo + hi)
