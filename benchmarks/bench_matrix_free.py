"""GD with the sharpness every step on a loss whose Hessian-vector product costs O(d).

The scalar network L(w) = ½(∏ w_i − 1)² (hvp and ∇³L by prefix/suffix hyper-dual products,
O(d)) near its balanced minimiser, for d = 10² … 10⁶: stabsim's matrix-free engine (warm-started,
restarted Lanczos on HVPs) against, in the same process,

- a hand-written Numba loop: the same gradient and HVP kernels, GD plus warm-started power
  iteration on the HVP to the same relative residual (what a user would write by hand);
- SciPy ``eigsh`` on a ``LinearOperator`` of the same HVPs, warm-started from the last vector;
- JAX ``jit`` + ``lax.scan``: a fixed-length Lanczos on ``jvp(grad)`` (when JAX is installed).

Every size runs stabsim and the hand-written loop in a fresh process, which reports µs/step
(the smallest CPU time of five runs each: both are single-threaded, and CPU time is what other
work on a shared machine inflates least) and its peak resident memory after stabsim's run
(``ru_maxrss``, interpreter and compiled code included). SciPy and JAX run in their own
processes once with 1 and once with 2 BLAS/XLA threads (``_timing.baseline_env``); the faster
is reported. Run:
``python benchmarks/bench_matrix_free.py``.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time

import numpy as np

SIZES = (100, 1_000, 10_000, 100_000, 1_000_000)
TOL = 1e-10


def _start(d):
    rng = np.random.default_rng(0)
    return 1.0 + 0.1 * rng.standard_normal(d) / np.sqrt(d)


def _steps(d):
    return int(max(5, min(2000, 2e7 / d)))


def _engine(d):
    from _timing import best_of

    from stabsim.losses import ScalarNetwork
    from stabsim.maps import run_gd

    loss, theta0, steps = ScalarNetwork(d), _start(d), _steps(d)
    eta = 1.0 / d  # the sharpness is ≈ d near the balanced minimiser: stable GD
    run = lambda: run_gd(loss, theta0, eta, steps, find_crossing=False,  # noqa: E731
                         eig_tol=TOL)
    result = run()
    return best_of(run, 5, clock=time.process_time) / steps, float(result.sharpness[-1, 0])


def _hand_written(d):
    import numba
    from _timing import best_of

    from stabsim.losses import ScalarNetwork
    from stabsim.losses.kernels import scalar_network as k

    @numba.njit(cache=True)
    def gd_power(theta, eta, steps, tol, out):
        d = theta.shape[0]
        g = np.empty(d)
        v = np.full(d, 1.0 / np.sqrt(d))
        hv = np.empty(d)
        p = k.ScalarNetworkParams()
        for t in range(steps):
            k.value_grad(theta, p, g)
            while True:  # power iteration, warm-started from the last vector
                k.hvp(theta, p, v, hv)
                lam = np.dot(v, hv)
                res = np.sqrt(np.dot(hv - lam * v, hv - lam * v))
                v = hv / np.sqrt(np.dot(hv, hv))
                if res <= tol * abs(lam):
                    break
            out[t] = lam
            theta -= eta * g

    ScalarNetwork(2)  # registers nothing new; the kernels are the family's own
    steps = _steps(d)
    out = np.empty(steps)
    gd_power(_start(d), 1.0 / d, 1, TOL, out[:1])
    return best_of(lambda: gd_power(_start(d), 1.0 / d, steps, TOL, out), 5,
                   clock=time.process_time) / steps


def _scipy(d):
    from _timing import best_of
    from scipy.sparse.linalg import LinearOperator, eigsh

    from stabsim.losses import ScalarNetwork

    loss = ScalarNetwork(d)
    steps = max(3, _steps(d) // 10)

    def run():
        theta, v = _start(d), None
        for _ in range(steps):
            op = LinearOperator((d, d), matvec=lambda x, th=theta: loss.hvp(th, np.ravel(x)),
                                dtype=np.float64)
            values, vectors = eigsh(op, k=1, which="LA", v0=v, tol=TOL)
            v = vectors[:, 0]
            theta = theta - (1.0 / d) * loss.grad(theta)

    run()
    return best_of(run, 2) / steps


def _jax(d):
    try:
        import jax
    except ImportError:
        return None
    jax.config.update("jax_enable_x64", True)
    import jax.numpy as jnp
    from _timing import best_of

    lanczos_steps = 4  # the engine's warm starts need one to three products per step

    def loss(w):
        return 0.5 * (jnp.prod(w) - 1.0) ** 2

    grad = jax.grad(loss)

    def hvp(w, v):
        return jax.jvp(grad, (w,), (v,))[1]

    def top(w, v):
        def body(carry, _):
            q, q_prev, beta = carry
            w_ = hvp(w, q) - beta * q_prev
            a = jnp.dot(w_, q)
            w_ = w_ - a * q
            b = jnp.linalg.norm(w_)
            return (w_ / b, q, b), (a, b)

        _, (alphas, betas) = jax.lax.scan(body, (v, jnp.zeros_like(v), 0.0), None,
                                          length=lanczos_steps)
        t = jnp.diag(alphas) + jnp.diag(betas[:-1], 1) + jnp.diag(betas[:-1], -1)
        return jnp.linalg.eigvalsh(t)[-1]

    steps = _steps(d)

    @jax.jit
    def run(w):
        def step(carry, _):
            w, v = carry
            return (w - (1.0 / d) * grad(w), v), top(w, v)

        return jax.lax.scan(step, (w, jnp.ones_like(w) / jnp.sqrt(d)), None, length=steps)[1]

    w0 = jnp.asarray(_start(d))
    run(w0).block_until_ready()
    return best_of(lambda: run(w0).block_until_ready(), 2) / steps


def one(d):
    import resource

    engine, sharpness = _engine(d)
    row = {"d": d, "engine": engine, "sharpness": sharpness,
           "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
    row["hand"] = _hand_written(d)
    print(json.dumps(row))


def baseline(name, d):
    """Child process: time one baseline at dimension d; print 'seconds BLAS' or 'none'."""
    from _timing import blas_description

    seconds = {"scipy": _scipy, "jax": _jax}[name](d)
    print("none" if seconds is None else f"{seconds!r} {blas_description()}")


def main():
    from _timing import fastest_baseline

    rows = []
    for d in SIZES:
        out = subprocess.run([sys.executable, __file__, str(d)], capture_output=True, text=True,
                             check=True)
        row = json.loads(out.stdout.strip().splitlines()[-1])
        row["scipy"] = fastest_baseline(__file__, "scipy", d)[0] if d <= 100_000 else None
        row["jax"] = fastest_baseline(__file__, "jax", d)[0]
        rows.append(row)
    print("GD + sharpness every step, scalar network (O(d) HVP), tol 1e-10")
    print(f"{'d':>9} {'stabsim µs':>11} {'peak MB':>8} {'hand µs':>9} {'ratio':>6} "
          f"{'eigsh µs':>9} {'ratio':>6} {'JAX µs':>9} {'ratio':>6}")
    for r in rows:
        us = 1e6 * r["engine"]
        cells = [f"{r['d']:>9}", f"{us:11.1f}", f"{r['peak_mb']:8.0f}",
                 f"{1e6 * r['hand']:9.1f}", f"{r['hand'] / r['engine']:6.2f}"]
        for key in ("scipy", "jax"):
            if r[key] is None:
                cells += [f"{'—':>9}", f"{'—':>6}"]
            else:
                cells += [f"{1e6 * r[key]:9.1f}", f"{r[key] / r['engine']:6.2f}"]
        print(" ".join(cells))
    big = [r for r in rows if r["d"] >= 1_000]
    sizes = np.log([r["d"] for r in big])
    # the hand-written loop's own exponent shows what the memory hierarchy adds to d¹
    exponents = {key: np.polyfit(sizes, np.log([r[key] for r in big]), 1)[0]
                 for key in ("engine", "hand")}
    print(f"fitted exponent of cost against d (d ≥ 10³): stabsim {exponents['engine']:.3f}, "
          f"hand-written loop {exponents['hand']:.3f}")
    print("ratio = baseline time / stabsim time (> 1: stabsim is faster)")


if __name__ == "__main__":
    if "--baseline" in sys.argv:
        at = sys.argv.index("--baseline")
        baseline(sys.argv[at + 1], int(sys.argv[at + 2]))
    elif len(sys.argv) > 1:
        one(int(sys.argv[1]))
    else:
        main()
