"""Exact GD with the sharpness at every step: stabsim against a NumPy loop and JAX.

Second-order regression model, d = 100, n = 10, 2,000 steps, sharpness every step; then
stabsim alone on the same model at the edge of stability.
Run: ``python benchmarks/bench_gd.py``. Prints µs/step and the ratios; never fails on time.
Each baseline runs in a child process once with 1 and once with 2 BLAS/XLA threads
(``_timing.baseline_env``), and the faster is reported with its setting. Every side does the
same work (loss, gradient and sharpness at each of the 2,001 iterates, 2,000 updates) and is
timed best of 3; each child saves its losses and sharpnesses, and the parent asserts they agree
with stabsim's (tolerance in ``check_baseline``) and prints the largest difference.
"""

from __future__ import annotations

import glob
import os
import sys
import tempfile

import numpy as np
from _timing import best_of, blas_description, cold_and_warm_start, fastest_baseline

from stabsim.losses import QuadraticRegression
from stabsim.maps import run_gd

D, N, STEPS = 100, 10, 2000
REPEATS = 3  #: best of, on every side


def model():
    loss = QuadraticRegression.random(D, N, seed=0)
    theta0 = np.zeros(D)
    eta = 2.0 / (1.5 * np.linalg.eigvalsh(loss.hessian(theta0))[-1])
    return loss, theta0, eta


def numpy_gd(J, Q, z0, theta0, eta, steps):
    """The loop a careful NumPy user would write: dense Hessian and eigvalsh at every step.

    The same work as ``run_gd`` here: loss, gradient and sharpness at each of the steps + 1
    iterates (the last one measured, not updated), steps updates. ``Q @ θ`` is formed once and
    serves the Jacobian, the residual and (by ``tensordot``) the Hessian's second-order part.
    Returns (loss, sharpness), each of length steps + 1.
    """
    n = z0.shape[0]
    theta = theta0.copy()
    losses, sharpness = np.empty(steps + 1), np.empty(steps + 1)
    for t in range(steps + 1):
        qt = Q @ theta  # (n, d)
        jac = J + qt
        z = z0 + (J + 0.5 * qt) @ theta
        losses[t] = 0.5 * (z @ z) / n
        hessian = jac.T @ jac
        hessian += np.tensordot(z, Q, 1)
        sharpness[t] = np.linalg.eigvalsh(hessian)[-1] / n
        if t < steps:
            theta -= (eta / n) * (jac.T @ z)
    return losses, sharpness


def jax_gd(J, Q, z0, theta0, eta, steps):
    """``jax.jit`` + ``lax.scan`` with ``jax.hessian`` and ``eigvalsh``; None without JAX."""
    try:
        import jax
    except ImportError:
        return None
    jax.config.update("jax_enable_x64", True)
    import jax.numpy as jnp

    J, Q, z0 = jnp.asarray(J), jnp.asarray(Q), jnp.asarray(z0)

    def loss(theta):
        z = z0 + J @ theta + 0.5 * jnp.einsum("kij,i,j->k", Q, theta, theta)
        return 0.5 * jnp.dot(z, z) / z0.shape[0]

    value_grad, hess = jax.value_and_grad(loss), jax.hessian(loss)

    def measure(theta):
        value, g = value_grad(theta)
        return value, g, jnp.linalg.eigvalsh(hess(theta))[-1]

    def step(theta, _):
        value, g, top = measure(theta)
        return theta - eta * g, (value, top)

    @jax.jit
    def run(theta):  # steps updates, loss and sharpness at the steps + 1 iterates
        theta, (values, tops) = jax.lax.scan(step, theta, None, length=steps)
        value, _, top = measure(theta)
        return jnp.append(values, value), jnp.append(tops, top)

    def call():
        values, tops = run(jnp.asarray(theta0))
        return np.asarray(values.block_until_ready()), np.asarray(tops.block_until_ready())

    call()  # compile
    return call


def baseline(name, out):
    """Child process: time one baseline (best of REPEATS), save its (loss, sharpness) to
    ``out``.<threads>.npz and print 'seconds BLAS' (or 'none')."""
    loss, theta0, eta = model()
    if name == "numpy":
        run = lambda: numpy_gd(loss.J, loss.Q, loss.z0, theta0, eta, STEPS)  # noqa: E731
    else:
        run = jax_gd(loss.J, loss.Q, loss.z0, theta0, eta, STEPS)
    if run is None:
        print("none")
        return
    values, tops = run()
    seconds = best_of(run, REPEATS)
    np.savez(f"{out}.{os.environ.get('OPENBLAS_NUM_THREADS', 'default')}.npz",
             loss=values, sharpness=tops)
    print(f"{seconds!r} {blas_description()}")


def check_baseline(out, loss_ref, sharp_ref):
    """Largest differences of a baseline's saved results (every thread setting) from
    stabsim's: (relative sharpness, loss relative to L(θ₀)); asserts agreement.

    Tolerance 1e-9: stabsim's Lanczos stops at relative residual 1e-10, which bounds its
    eigenvalue error by 1e-10·S; the iterates differ by rounding only (GD contracts here), so
    anything above 1e-9 would be a different computation, not rounding.
    """
    files = sorted(glob.glob(f"{out}.*.npz"))
    assert files, "baseline saved no results"
    worst_s = worst_l = 0.0
    for f in files:
        got = np.load(f)
        assert got["sharpness"].shape == sharp_ref.shape, (f, got["sharpness"].shape)
        worst_s = max(worst_s, np.max(np.abs(got["sharpness"] - sharp_ref) / np.abs(sharp_ref)))
        worst_l = max(worst_l, np.max(np.abs(got["loss"] - loss_ref)) / loss_ref[0])
    assert worst_s < 1e-9 and worst_l < 1e-9, (worst_s, worst_l)
    return worst_s, worst_l


def main():
    loss, theta0, eta = model()
    # timed: loss, gradient and sharpness at every step, as the baselines do; the iterates
    # (for the eigvalsh check below) come from one more, untimed run
    ours = lambda: run_gd(loss, theta0, eta, STEPS)  # noqa: E731
    result = run_gd(loss, theta0, eta, STEPS, record_trajectory=True)  # compile or load
    t_ours = best_of(ours, REPEATS)
    # sharpness against a dense eigensolver at the same iterates
    dense = np.array([np.linalg.eigvalsh(loss.hessian(th))[-1] for th in result.trajectory])
    agreement = np.max(np.abs(result.sharpness[:, 0] - dense) / np.abs(dense))

    with tempfile.TemporaryDirectory() as tmp:
        t_numpy, numpy_threads, blas = fastest_baseline(__file__, "numpy", f"{tmp}/numpy")
        t_jax, jax_threads, _ = fastest_baseline(__file__, "jax", f"{tmp}/jax")
        sharp_ref = result.sharpness[:, 0]
        diff_numpy = check_baseline(f"{tmp}/numpy", result.loss, sharp_ref)
        diff_jax = check_baseline(f"{tmp}/jax", result.loss, sharp_ref) if t_jax else None

    per_step = lambda t: 1e6 * t / STEPS  # noqa: E731
    print(f"exact GD + sharpness every step, regression model d={D}, n={N}, {STEPS} steps")
    print(f"  stabsim (warm-started Lanczos) {per_step(t_ours):9.2f} µs/step")
    print(f"  NumPy loop (eigvalsh)        {per_step(t_numpy):9.2f} µs/step   "
          f"ratio {t_numpy / t_ours:6.1f}x   ({numpy_threads} BLAS thread(s): {blas})")
    if t_jax is not None:
        print(f"  JAX jit+scan (eigvalsh)      {per_step(t_jax):9.2f} µs/step   "
              f"ratio {t_jax / t_ours:6.1f}x   ({jax_threads} XLA thread(s))")
    else:
        print("  JAX not installed: pip install 'stabsim[bench]'")
    print(f"  max relative sharpness error against eigvalsh: {agreement:.2e}")
    print(f"  baselines' results vs stabsim's (all thread settings; asserted < 1e-9): NumPy "
          f"sharpness {diff_numpy[0]:.1e} rel, loss {diff_numpy[1]:.1e} of L(θ₀)"
          + (f"; JAX {diff_jax[0]:.1e}, {diff_jax[1]:.1e}" if diff_jax else ""))
    print(f"  every side timed best of {REPEATS}; {STEPS + 1} measurements, {STEPS} updates")
    # the benchmark's run sits at its minimum after about 200 steps; the same model at the
    # edge of stability (η = 2/S(θ₀)) takes more Lanczos products a step
    eta_eos = 2.0 / np.linalg.eigvalsh(loss.hessian(theta0))[-1]
    at_eos = lambda: run_gd(loss, theta0, eta_eos, STEPS)  # noqa: E731
    eos = at_eos()
    t_eos = best_of(at_eos)
    late = eos.sharpness[len(eos.sharpness) // 2:, 0] * eta_eos / 2.0
    print(f"  stabsim at the edge of stability (η = 2/S(θ₀)) {per_step(t_eos):9.2f} µs/step, "
          f"{eos.counters['lanczos_products'] / eos.counters['records']:.1f} products a step, "
          f"S·η/2 over the second half {late.min():.4f}–{late.max():.4f}")
    snippet = ("import numpy as np; from stabsim.losses import QuadraticRegression; "
               "from stabsim.maps import run_gd; m = QuadraticRegression.random(100, 10, seed=0);"
               " run_gd(m, np.zeros(100), 0.1, 10)")
    cold, warm = cold_and_warm_start(snippet)
    print(f"  import stabsim + first run_gd: cold cache {cold:.2f} s, warm cache {warm:.2f} s")


if __name__ == "__main__":
    if "--baseline" in sys.argv:
        at = sys.argv.index("--baseline")
        baseline(sys.argv[at + 1], sys.argv[at + 2])
    else:
        main()
