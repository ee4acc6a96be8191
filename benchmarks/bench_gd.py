"""Exact GD with the sharpness at every step: stabsim against a NumPy loop and JAX.

Second-order regression model, d = 100, n = 10, 2,000 steps, sharpness every step; then
stabsim alone on the same model at the edge of stability.
Run: ``python benchmarks/bench_gd.py``. Prints µs/step and the ratios; never fails on time.
Each baseline runs in a child process once with 1 and once with 2 BLAS/XLA threads
(``_timing.baseline_env``), and the faster is reported with its setting.
"""

from __future__ import annotations

import sys

import numpy as np
from _timing import best_of, blas_description, cold_and_warm_start, fastest_baseline

from stabsim.losses import QuadraticRegression
from stabsim.maps import run_gd

D, N, STEPS = 100, 10, 2000


def model():
    loss = QuadraticRegression.random(D, N, seed=0)
    theta0 = np.zeros(D)
    eta = 2.0 / (1.5 * np.linalg.eigvalsh(loss.hessian(theta0))[-1])
    return loss, theta0, eta


def numpy_gd(J, Q, z0, theta0, eta, steps):
    """The loop a user would write: dense Hessian and eigvalsh at every step."""
    n = z0.shape[0]
    theta = theta0.copy()
    sharpness = np.empty(steps)
    for t in range(steps):
        jac = J + Q @ theta  # (n, d)
        z = z0 + J @ theta + 0.5 * np.einsum("kij,i,j->k", Q, theta, theta)
        hessian = (jac.T @ jac + np.einsum("k,kij->ij", z, Q)) / n
        sharpness[t] = np.linalg.eigvalsh(hessian)[-1]
        theta = theta - eta * (jac.T @ z) / n
    return sharpness


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

    grad, hess = jax.grad(loss), jax.hessian(loss)

    def step(theta, _):
        return theta - eta * grad(theta), jnp.linalg.eigvalsh(hess(theta))[-1]

    @jax.jit
    def run(theta):
        return jax.lax.scan(step, theta, None, length=steps)[1]

    run(jnp.asarray(theta0)).block_until_ready()  # compile
    return lambda: np.asarray(run(jnp.asarray(theta0)).block_until_ready())


def baseline(name):
    """Child process: time one baseline and print 'seconds BLAS' (or 'none')."""
    loss, theta0, eta = model()
    if name == "numpy":
        seconds = best_of(lambda: numpy_gd(loss.J, loss.Q, loss.z0, theta0, eta, STEPS), 2)
    else:
        run = jax_gd(loss.J, loss.Q, loss.z0, theta0, eta, STEPS)
        seconds = best_of(run) if run is not None else None
    print("none" if seconds is None else f"{seconds!r} {blas_description()}")


def main():
    loss, theta0, eta = model()
    ours = lambda: run_gd(loss, theta0, eta, STEPS, record_trajectory=True)  # noqa: E731
    result = ours()  # compile or load from cache
    t_ours = best_of(ours)
    # sharpness against a dense eigensolver at the same iterates
    dense = np.array([np.linalg.eigvalsh(loss.hessian(th))[-1] for th in result.trajectory])
    agreement = np.max(np.abs(result.sharpness[:, 0] - dense) / np.abs(dense))

    t_numpy, numpy_threads, blas = fastest_baseline(__file__, "numpy")
    t_jax, jax_threads, _ = fastest_baseline(__file__, "jax")

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
        baseline(sys.argv[sys.argv.index("--baseline") + 1])
    else:
        main()
