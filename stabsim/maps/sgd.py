"""Mini-batch SGD on finite-sum losses, with the full and the batch sharpness.

``run_sgd`` runs θ_{t+1} = θ_t − η ∇L_{B_t}(θ_t) on a loss L = (1/N) Σ_i ℓ_i whose family
exposes its examples (``Loss.finite_sum``), with seeded batches, and records at a stride the
full loss, the gradient norm, the sharpness λ_max(∇²L) and the batch sharpness
BS = E_B[g_Bᵀ H_B g_B] / E_B[|g_B|²] (docs/theory.md §8, docs/stochastic.md).
``batch_sharpness`` measures BS at one point.
"""

from __future__ import annotations

import dataclasses
import statistics
from typing import NamedTuple

import numpy as np

from .. import _validate as check
from .._interrupt import deferred_interrupt
from .._progress import progress_bar
from .._result import Result
from .._status import Status
from ..losses import Loss
from ..losses._base import require_loss
from ..losses._engines import engine_for
from . import _sgd_kernels as kernels
from .gd import eigen_config, thick_after_stall

#: at most this many example indices of probe batches are drawn per chunk (8 MiB)
PROBE_INDICES_PER_CHUNK = 1 << 20
#: probes without replacement permute at most this many indices at once (32 MiB)
PERMUTED_ENTRIES_PER_BLOCK = 1 << 22


def _require_finite_sum(loss: Loss) -> int:
    require_loss(loss)
    if not loss.finite_sum:
        raise TypeError(f"loss must be a finite sum L = (1/N) Σ ℓ_i whose family registers "
                        f"subset(p, indices) (the regression and network families do); "
                        f"{loss!r} is not")
    return loss.n_examples


def _batch_size(batch_size, n_examples: int, replacement: bool) -> int:
    b = check.nonnegative_int("batch_size", batch_size, minimum=1)
    if not replacement and b > n_examples:
        raise ValueError(f"batch_size must be at most the number of examples {n_examples} "
                         f"without replacement, got {b}")
    return b


def bs_method(method: str, n_examples: int, batch_size: int, batches: int) -> str:
    """``"exact"`` or ``"sampled"``: the method ``"auto"`` resolves to.

    The exact batch sharpness costs N per-example gradients and Hessian-vector products
    and N + 1 full ones, N(N + 3) per-example derivative evaluations (a full product costs
    N per-example ones); the estimate costs ``batches`` · b batch gradients
    and products, 2 · batches · b. ``"auto"`` takes the cheaper.
    """
    check.choice("batch_sharpness", method, {"auto", "exact", "sampled"})
    if method != "auto":
        return method
    return "exact" if n_examples * (n_examples + 3) <= 2 * batches * batch_size else "sampled"


def _confidence(value) -> float:
    """``value`` as the level of a two-sided interval, in (0, 1), or raise naming it."""
    value = check.finite_float("confidence", value)
    if not 0.0 < value < 1.0:
        raise ValueError(f"confidence must lie in (0, 1), got {value!r}")
    return value


def _z(confidence: float) -> float:
    """The two-sided normal quantile z with P(|Z| ≤ z) = ``confidence``."""
    return statistics.NormalDist().inv_cdf(0.5 + 0.5 * confidence)


class BatchSampler:
    """The seeded batches of SGD: sorted rows of b example indices of N.

    Without replacement: shuffled epochs (a fresh permutation of the N examples per epoch,
    cut into ⌊N/b⌋ consecutive batches; the last N mod b examples of each permutation sit
    that epoch out), so each batch is a uniform b-subset. With replacement: b independent
    uniform draws per batch. Rows are sorted (the batch loss does not depend on the order;
    with b = N and no replacement every batch is then 0, 1, ..., N − 1).
    """

    def __init__(self, n_examples: int, batch_size: int, replacement: bool, rng):
        self.n = n_examples
        self.b = batch_size
        self.replacement = replacement
        self.rng = rng
        self._pending = np.empty((0, batch_size), np.int64)

    def take(self, count: int) -> np.ndarray:
        """The next ``count`` batches of the stream, shape (count, b)."""
        if self.replacement:
            rows = self.rng.integers(0, self.n, size=(count, self.b))
        else:
            per_epoch = self.n // self.b
            parts = [self._pending]
            have = self._pending.shape[0]
            while have < count:
                epoch = self.rng.permutation(self.n)[:per_epoch * self.b]
                parts.append(epoch.reshape(per_epoch, self.b))
                have += per_epoch
            stream = np.concatenate(parts)
            rows, self._pending = stream[:count], stream[count:]
        return np.sort(rows, axis=1).astype(np.int64)

    def independent(self, count: int) -> np.ndarray:
        """``count`` independent batches from the law of one batch (probes), (count, b).

        Without replacement each row is the first b of an independent permutation of the N
        examples, drawn in blocks of at most :data:`PERMUTED_ENTRIES_PER_BLOCK` entries.
        """
        if self.replacement:
            rows = self.rng.integers(0, self.n, size=(count, self.b))
        else:
            per_block = max(1, PERMUTED_ENTRIES_PER_BLOCK // self.n)
            blocks = [self.rng.permuted(np.tile(np.arange(self.n), (min(per_block, count - k),
                                                                     1)), axis=1)[:, :self.b]
                      for k in range(0, count, per_block)]
            rows = np.concatenate(blocks) if blocks else np.empty((0, self.b), np.int64)
        return np.sort(rows, axis=1).astype(np.int64)


def _streams(seed: int):
    """Independent generators for the training batches and the probe batches."""
    train, probe = np.random.SeedSequence(seed).spawn(2)
    return np.random.default_rng(train), np.random.default_rng(probe)


class BatchSharpness(NamedTuple):
    """The batch sharpness at a point (:func:`batch_sharpness`)."""

    value: float  #: BS, exact or the ratio estimate
    low: float  #: lower end of the confidence interval (= value when exact)
    high: float  #: upper end (= value when exact)
    method: str  #: "exact" or "sampled"


def batch_sharpness(loss: Loss, theta, batch_size: int, *, replacement: bool = False,
                    method: str = "auto", batches: int = 256, confidence: float = 0.95,
                    seed: int = 0) -> BatchSharpness:
    """The batch sharpness BS = E_B[g_Bᵀ H_B g_B] / E_B[|g_B|²] at θ (docs/stochastic.md).

    g_B and H_B are the gradient and Hessian of L_B = (1/b) Σ_{i∈B} ℓ_i; E_B is over
    the batches of SGD: uniform b-subsets (``replacement=False``) or b independent uniform
    draws (``replacement=True``).

    Parameters
    ----------
    loss : Loss
        A finite-sum loss (``loss.finite_sum``).
    theta : array_like, shape (d,)
    batch_size : int
        b (at most N without replacement).
    replacement : bool
        False: the batches are uniform b-subsets of the N examples (SGD's shuffled
        epochs); True: b independent uniform draws, so an example may appear more than once.
    method : {"auto", "exact", "sampled"}
        ``"exact"``: both expectations in closed form from per-example moments (exact to
        round-off, whatever the number of batches); ``"sampled"``: the ratio of sample
        means over ``batches`` independent batches, with a delta-method confidence
        interval; ``"auto"``: the cheaper of the two (:func:`bs_method`).
    batches : int
        K ≥ 2, the number of sampled batches.
    confidence : float
        Level of the two-sided interval of the estimate, in (0, 1). The delta method is
        asymptotic in K: on a small network it held its level at K = 200 without
        replacement, but with replacement covered 85% for a stated 90% at K = 200 and 90.6%
        at K = 2000 (docs/stochastic.md).
    seed : int
        Seed of the sampled batches.

    Returns
    -------
    BatchSharpness
        NaN where every batch's gradient is zero (BS is 0/0 there): ∇L = 0 and, unless
        b = N without replacement, every per-example gradient (exact), or every sampled
        batch's gradient (sampled).
    """
    n = _require_finite_sum(loss)
    theta = loss.check_point(theta)
    replacement = check.boolean("replacement", replacement)
    b = _batch_size(batch_size, n, replacement)
    batches = check.nonnegative_int("batches", batches, minimum=2)
    confidence = _confidence(confidence)
    seed = check.nonnegative_int("seed", seed)
    method = bs_method(method, n, b, batches)
    law = kernels.BatchLaw(n, b, replacement)
    if method == "exact":
        probes = kernels.ExactBatchSharpness()
    else:
        probes = BatchSampler(n, b, replacement, _streams(seed)[1]).independent(batches)[None]
    kernel = engine_for(kernels.batch_sharpness_at, loss.family)
    value, low, high = kernel(loss.params, theta, law, probes, _z(confidence))
    return BatchSharpness(float(value), float(low), float(high), method)


@dataclasses.dataclass(repr=False)
class SGDResult(Result):
    """What :func:`run_sgd` recorded.

    Attributes
    ----------
    step : ndarray of int, shape (n_rec,)
        Step of each record (row 0 is the start).
    loss, grad_norm : ndarray, shape (n_rec,)
        The full loss L(θ_t) and |∇L(θ_t)|.
    sharpness : ndarray, shape (n_rec,)
        λ_max(∇²L(θ_t)) of the full loss.
    eig_residual : ndarray, shape (n_rec,)
        |Hu − λu| of the eigenpair (0 for a dense solver).
    batch_sharpness, bs_low, bs_high : ndarray, shape (n_rec,)
        BS at θ_t and its confidence interval (both ends equal BS when it is exact).
    trajectory : ndarray, shape (n_rec, d) or None
        θ_t at the records, when recorded.
    theta : ndarray, shape (d,)
        The last iterate reached.
    bs_method : str
        ``"exact"`` or ``"sampled"``.
    counters : dict
        ``steps`` (updates applied), ``records``, ``probe_batches`` (batches sampled for
        the estimate, 0 when exact).
    """

    eta: float
    batch_size: int
    replacement: bool
    n_examples: int
    bs_method: str
    step: np.ndarray
    loss: np.ndarray
    grad_norm: np.ndarray
    sharpness: np.ndarray
    eig_residual: np.ndarray
    batch_sharpness: np.ndarray
    bs_low: np.ndarray
    bs_high: np.ndarray
    trajectory: np.ndarray | None
    theta: np.ndarray

    @property
    def threshold(self) -> float:
        """2/η, where the theory puts the batch sharpness (docs/stochastic.md)."""
        return 2.0 / self.eta

    def headline(self) -> dict:
        head = {"eta": self.eta, "batch_size": self.batch_size, "records": self.step.size}
        if self.step.size:
            head.update(loss=float(self.loss[-1]), sharpness=float(self.sharpness[-1]),
                        batch_sharpness=float(self.batch_sharpness[-1]))
        return head

    def to_xarray(self):
        """The records as an ``xarray.Dataset`` with dimension ``step`` (conventions of
        :mod:`stabsim._export`)."""
        import xarray as xr

        from .._export import finish

        data = {
            "loss": ("step", self.loss),
            "grad_norm": ("step", self.grad_norm),
            "sharpness": ("step", self.sharpness),
            "eig_residual": ("step", self.eig_residual),
            "batch_sharpness": ("step", self.batch_sharpness),
            "batch_sharpness_low": ("step", self.bs_low),
            "batch_sharpness_high": ("step", self.bs_high),
        }
        if self.trajectory is not None:
            data["theta"] = (("step", "param"), self.trajectory)
        attrs = {**self._export_attrs(), "eta": self.eta, "threshold": self.threshold,
                 "batch_size": self.batch_size, "replacement": self.replacement,
                 "n_examples": self.n_examples, "bs_method": self.bs_method}
        ds = xr.Dataset(data, coords={"step": self.step}, attrs=attrs)
        return finish(ds, self.parameters)


def run_sgd(
    loss: Loss,
    theta0,
    eta: float,
    steps: int,
    *,
    batch_size: int,
    replacement: bool = False,
    seed: int = 0,
    stride: int = 1,
    batch_sharpness: str = "auto",
    bs_batches: int = 256,
    confidence: float = 0.95,
    record_trajectory: bool = False,
    eigensolver: str = "auto",
    eig_tol: float = 1e-10,
    eig_max_products: int = 1000,
    divergence_norm: float = 1e8,
    chunk_steps: int = 2000,
    progress: bool = False,
) -> SGDResult:
    """Run mini-batch SGD θ_{t+1} = θ_t − η ∇L_{B_t}(θ_t) for ``steps`` steps.

    L = (1/N) Σ_i ℓ_i and L_B = (1/b) Σ_{i∈B} ℓ_i. At every ``stride``-th step (and the
    last) it records, at θ_t: L, |∇L|, λ_max(∇²L) (measured as :func:`~stabsim.run_gd`
    does) and the batch sharpness of :func:`batch_sharpness`.

    Parameters
    ----------
    loss : Loss
        A finite-sum loss (``loss.finite_sum``: the regression and network families).
    theta0 : array_like, shape (d,)
    eta : float
        Step size, > 0.
    steps : int
        Number of updates.
    batch_size : int
        b. With ``replacement=False`` and b = N every batch is the whole data set and the
        run is GD (:func:`~stabsim.run_gd`).
    replacement : bool
        False: shuffled epochs (each example once per epoch; ⌊N/b⌋ batches per epoch, the
        N mod b examples left over sit that epoch out); True: b independent uniform draws
        per batch.
    seed : int
        Seed of the batches (training batches and the batch-sharpness probes come from two
        independent streams of it, so the probes do not change the trajectory).
    stride : int
        Record every ``stride``-th step (step 0 always, and the last step).
    batch_sharpness : {"auto", "exact", "sampled"}
        How BS is measured (see :func:`batch_sharpness`): exact from per-example moments,
        or the ratio estimate over ``bs_batches`` fresh batches per record with a
        delta-method interval at level ``confidence``.
    record_trajectory : bool
        Keep θ_t at each record.
    eigensolver, eig_tol, eig_max_products, divergence_norm, chunk_steps, progress
        As for :func:`~stabsim.run_gd`.

    Returns
    -------
    SGDResult
        Never NaN in the loss, gradient norm and sharpness: a run that meets a non-finite
        value stops there with status NONFINITE (or DIVERGED, NOT_CONVERGED naming
        ``eig_max_products``) and keeps the records made before. Ctrl-C returns the
        records so far with status INTERRUPTED. A batch sharpness of 0/0 (every batch's
        gradient zero: :func:`batch_sharpness`) is NaN, with status UNDEFINED.
    """
    n = _require_finite_sum(loss)
    theta = loss.check_point(theta0, "theta0").copy()
    eta = check.positive_float("eta", eta)
    steps = check.nonnegative_int("steps", steps)
    replacement = check.boolean("replacement", replacement)
    b = _batch_size(batch_size, n, replacement)
    seed = check.nonnegative_int("seed", seed)
    stride = check.nonnegative_int("stride", stride, minimum=1)
    bs_batches = check.nonnegative_int("bs_batches", bs_batches, minimum=2)
    confidence = _confidence(confidence)
    method = bs_method(batch_sharpness, n, b, bs_batches)
    check.choice("eigensolver", eigensolver, {"auto", "lanczos", "eigh"})
    eig_tol = check.positive_float("eig_tol", eig_tol)
    eig_max_products = check.nonnegative_int("eig_max_products", eig_max_products, minimum=1)
    divergence_norm = check.positive_float("divergence_norm", divergence_norm)
    chunk_steps = check.nonnegative_int("chunk_steps", chunk_steps, minimum=1)
    record_trajectory = check.boolean("record_trajectory", record_trajectory)
    progress = check.boolean("progress", progress)
    parameters = {"loss": loss.provenance, "eta": eta, "steps": steps, "batch_size": b,
                  "replacement": replacement,
                  "seed": seed, "stride": stride, "batch_sharpness": method,
                  "bs_batches": bs_batches, "confidence": confidence,
                  "eigensolver": eigensolver, "eig_tol": eig_tol,
                  "eig_max_products": eig_max_products, "divergence_norm": divergence_norm}

    eigen = eigen_config(loss, eigensolver, 1, eig_tol, eig_max_products)
    if method == "sampled":  # bound the probe indices drawn per chunk
        per_record = bs_batches * b
        chunk_steps = min(chunk_steps, max(1, PROBE_INDICES_PER_CHUNK // per_record) * stride)
    d = loss.dim
    n_rec = check.record_rows(steps, stride, width=7 + (d if record_trajectory else 0))
    rec = kernels.SGDRecords(*(np.zeros(n_rec) for _ in range(7)),
                             np.zeros((n_rec if record_trajectory else 0, d)))
    state = kernels.SGDState(theta, np.full(d, 1.0 / np.sqrt(d)))
    law = kernels.BatchLaw(n, b, replacement)
    train_rng, probe_rng = _streams(seed)
    sampler = BatchSampler(n, b, replacement, train_rng)
    prober = BatchSampler(n, b, replacement, probe_rng)
    z = _z(confidence)
    kernel = engine_for(kernels.sgd_chunk, loss.family)

    bar = progress_bar(steps, enabled=progress, unit="step", leave=False)
    status, done, probed = int(Status.OK), 0, 0
    with deferred_interrupt() as interrupt:
        while True:
            if interrupt.requested:  # the state at step `done` is reached, not yet recorded
                status = int(Status.INTERRUPTED)
                break
            count = min(chunk_steps, steps - done)
            finish = done + count == steps
            if method == "sampled":
                last = done + count if finish else done + count - 1  # the last step t
                records = last // stride - (done - 1) // stride  # t % stride == 0 in [done, last]
                probes = prober.independent(records * bs_batches).reshape(records, bs_batches,
                                                                           b)
                probed += probes.shape[0] * bs_batches
            else:
                probes = kernels.ExactBatchSharpness()
            batches = sampler.take(count)
            status, advanced = kernel(loss.params, eta, eigen, law, state, rec, done, count,
                                      finish, stride, batches, probes, z, divergence_norm)
            if (thick := thick_after_stall(eigen, status)) is not None:
                # the rest of the chunk from the stalled step, with its batches and probes
                eigen = thick
                if method == "sampled":  # those of the records before the stalled step used
                    probes = probes[(done + advanced - 1) // stride - (done - 1) // stride:]
                status, more = kernel(loss.params, eta, eigen, law, state, rec, done + advanced,
                                      count - advanced, finish, stride, batches[advanced:],
                                      probes, z, divergence_norm)
                advanced += more
            done += advanced
            bar.update(advanced)
            if status != int(Status.OK) or finish:
                break
    bar.close()
    # the state at step `done` failed its checks (or was interrupted): not recorded
    n_kept = (done - 1) // stride + 1 if done > 0 else 0
    if status == int(Status.OK):
        n_kept = done // stride + 1
        if steps % stride:  # the last state, measured and recorded on its own (no update)
            if method == "sampled":
                probes = prober.independent(bs_batches).reshape(1, bs_batches, b)
                probed += bs_batches
            last = kernels.SGDRecords(*(r[-1:] if r.shape[0] else r for r in rec))
            while True:
                status, _ = kernel(loss.params, eta, eigen, law, state, last, 0, 0, True, 1,
                                   np.empty((0, b), np.int64), probes, z, divergence_norm)
                if (thick := thick_after_stall(eigen, status)) is None:
                    break
                eigen = thick
            n_kept += status == int(Status.OK)
    step = np.arange(n_kept) * stride
    if n_kept == n_rec and steps % stride:
        step[-1] = steps
    knob = None
    detail = None
    if status == int(Status.NOT_CONVERGED):
        knob = "eig_max_products"
    bs = rec.bs[:n_kept]
    if status == int(Status.OK) and np.isnan(bs).any():
        status = int(Status.UNDEFINED)
        first = int(step[np.flatnonzero(np.isnan(bs))[0]])
        detail = (f"the batch sharpness is 0/0 from step {first}: every batch's gradient is "
                  "zero there")
    elif status not in (int(Status.OK), int(Status.INTERRUPTED)):
        detail = f"at step {done}"
    return SGDResult(
        status=Status(status), knob=knob, detail=detail,
        counters={"steps": done, "records": n_kept, "probe_batches": probed},
        parameters=parameters, eta=eta, batch_size=b, replacement=replacement, n_examples=n,
        bs_method=method, step=step, loss=rec.loss[:n_kept],
        grad_norm=rec.gnorm[:n_kept], sharpness=rec.sharp[:n_kept],
        eig_residual=rec.residual[:n_kept], batch_sharpness=bs, bs_low=rec.bs_low[:n_kept],
        bs_high=rec.bs_high[:n_kept],
        trajectory=rec.theta[:n_kept] if record_trajectory else None, theta=theta)
