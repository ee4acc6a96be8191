"""GD with the sharpness every step on a loss whose Hessian-vector product costs O(d).

The scalar network L(w) = ½(∏ w_i − 1)² (hvp and ∇³L by prefix/suffix hyper-dual products,
O(d)) near its balanced minimiser, for d = 10² … 10⁶: stabsim's matrix-free engine (warm-started,
restarted Lanczos on HVPs, relative residual TOL; its start mix left out where the family's
``hessian_drift`` bound shows there is nothing for it to find, which here, where GD reaches
its fixed point in a few steps, is at almost every step) against

- a hand-written Numba loop: the same gradient and HVP kernels, GD plus warm-started power
  iteration on the HVP, stopped at the same relative residual ‖Hv − λv‖ ≤ TOL·|λ|, with no
  allocation inside the loop (what a careful user would write by hand);
- SciPy ``eigsh`` on a ``LinearOperator`` of the same HVPs, warm-started from the last vector,
  ARPACK's tolerance TOL (the same relative residual);
- JAX ``jit`` + ``lax.scan`` (when JAX is installed): the engine's algorithm on ``jvp(grad)``
  (``jax_lanczos``: Lanczos with full reorthogonalisation, restarted every 20 products,
  warm-started from the previous step's eigenvector mixed with the engine's fixed vector at
  the engine's weight, stopped at relative residual TOL; its basis is carried from step to
  step and reorthogonalisation costs O(jd) at product j, as in the engine), with its HVPs per
  step printed next to stabsim's.

Every baseline's sharpness is checked against stabsim's at the same iterate (the last one it
measured), and the largest relative difference printed; a difference above ``AGREE`` stops the
script after the table.

Threads: stabsim and the hand-written loop run in a fresh process pinned to one core (both are
single-threaded; ``_timing.child_command(..., one_core=True)``, the BLAS/Numba thread
variables 1), which reports µs/step (the smallest wall time of five runs each) and its peak
resident memory after stabsim's run (``ru_maxrss``, interpreter and compiled code included).
SciPy and JAX run in their own processes once with one thread (pinned to one core the same
way, so XLA too runs one thread) and once with 2 BLAS/XLA threads on every core
(``_timing.fastest_baseline``); the faster is reported. Every time is wall clock.

Steps: n = 2,000 up to d = 10⁵ and 200 at d = 10⁶ (the runs do 2·10⁸ d-steps at most);
SciPy's runs a tenth of that up to d = 10⁴ and 20 steps at d = 10⁵. Until 2026-12-06 the runs
stopped at 2·10⁷ d-steps (200 steps at d = 10⁵, 20 at d = 10⁶), and what a call costs once
weighed ten and a hundred times more on a step there than at d ≤ 10⁴, in the fitted exponent
above all: stabsim's allocation of its buffers, and the mixed measurements of the first steps,
where the Hessian still moves (five of the 21 measurements of a 20-step run at d = 10⁶, about
100 ms of its 300).

A step more: stabsim and the hand-written loop are also timed on runs of twice the steps, and
(t(2n) − t(n))/n is printed with its own fitted exponent: the cost of a step without what a
call costs once. The hand-written loop allocates nothing per call. Run:
``python benchmarks/bench_matrix_free.py`` (``--sizes 100,1000``: those dimensions only;
``--eta-scale S``: η = S/d, 1 by default, where GD comes to rest after a few steps and every
later step measures the same Hessian; at 1.9 GD converges while it moves, and at 2.05 it
settles on a period-2 cycle at the edge of stability, where the Hessian moves every step
and every start is mixed).
"""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np

SIZES = (100, 1_000, 10_000, 100_000, 1_000_000)
TOL = 1e-10
#: each eigensolver stops at relative residual ‖Av − λv‖ ≤ TOL·|λ|, which puts λ within
#: TOL·|λ| of an eigenvalue of the symmetric A (Bauer–Fike), so two solvers' values of the top
#: eigenvalue agree to 2·TOL; ×10 for the round-off by which the iterates themselves differ
#: (each side's own gradient arithmetic)
AGREE = 20 * TOL


def _start(d):
    rng = np.random.default_rng(0)
    return 1.0 + 0.1 * rng.standard_normal(d) / np.sqrt(d)


def _steps(d):
    return int(max(5, min(2000, 2e8 / d)))


def _scipy_steps(d):
    return int(max(3, min(200, 2e6 / d)))


def _engine(d, scale):
    from stabsim.losses import ScalarNetwork
    from stabsim.maps import run_gd

    loss, theta0, steps = ScalarNetwork(d), _start(d), _steps(d)
    eta = scale / d  # the sharpness is ≈ d near the balanced minimiser (ηS ≈ scale)

    def run(n):
        return run_gd(loss, theta0, eta, n, find_crossing=False, eig_tol=TOL)

    result = run(steps)
    # row t of result.sharpness is measured at θ_t; each baseline's last value is at θ_{n−1}
    at = {str(n - 1): float(result.sharpness[n - 1, 0]) for n in (steps, _scipy_steps(d))}
    products = result.counters["lanczos_products"] / result.counters["records"]
    return _per_step(run, steps), at, products


def _per_step(run, steps):
    """(seconds a step of a run of ``steps`` steps, seconds a step more): the best of five
    runs of ``steps`` and of 2 ``steps`` steps, t(n) and t(2n); the second is (t(2n) −
    t(n))/n, the cost of a step with the call's own (allocation, the first steps' mixed
    measurements) taken out."""
    from _timing import best_of

    once = best_of(lambda: run(steps), 5)
    twice = best_of(lambda: run(2 * steps), 5)
    return once / steps, (twice - once) / steps


def _hand_written(d, scale):
    import numba

    from stabsim.losses import ScalarNetwork
    from stabsim.losses.kernels import scalar_network as k

    @numba.njit(cache=True)
    def gd_power(theta, eta, steps, tol, out, g, v, hv):
        n = theta.shape[0]
        v[:] = 1.0 / np.sqrt(n)
        p = k.ScalarNetworkParams()
        for t in range(steps):
            k.value_grad(theta, p, g)
            while True:  # power iteration, warm-started from the last vector
                k.hvp(theta, p, v, hv)
                lam = 0.0
                norm2 = 0.0
                for i in range(n):
                    lam += v[i] * hv[i]
                    norm2 += hv[i] * hv[i]
                scale = 1.0 / np.sqrt(norm2)
                res2 = 0.0
                for i in range(n):  # residual ‖Hv − λv‖ and v ← Hv/‖Hv‖ in one pass
                    r = hv[i] - lam * v[i]
                    res2 += r * r
                    v[i] = hv[i] * scale
                if np.sqrt(res2) <= tol * abs(lam):
                    break
            out[t] = lam
            for i in range(n):
                theta[i] -= eta * g[i]

    ScalarNetwork(2)  # registers nothing new; the kernels are the family's own
    steps = _steps(d)
    out, theta0, theta = np.empty(2 * steps), _start(d), np.empty(d)
    work = np.empty((3, d))

    def run(n):
        theta[:] = theta0
        gd_power(theta, scale / d, n, TOL, out, work[0], work[1], work[2])

    run(1)
    seconds = _per_step(run, steps)
    run(steps)
    return seconds, float(out[steps - 1])


def _scipy(d, scale):
    from _timing import best_of
    from scipy.sparse.linalg import LinearOperator, eigsh

    from stabsim.losses import ScalarNetwork

    loss = ScalarNetwork(d)
    steps = _scipy_steps(d)
    last = []

    def run():
        theta, v = _start(d), np.ones(d) / np.sqrt(d)
        for _ in range(steps):
            op = LinearOperator((d, d), matvec=lambda x, th=theta: loss.hvp(th, np.ravel(x)),
                                dtype=np.float64)
            values, vectors = eigsh(op, k=1, which="LA", v0=v, tol=TOL)
            v = vectors[:, 0]
            theta = theta - (scale / d) * loss.grad(theta)
        last[:] = [float(values[0])]

    run()
    return best_of(run, 2) / steps, last[0], None


def jax_lanczos(apply, v0, Q, mix):
    """Top eigenpair of ``apply`` by the engine's algorithm (``bench_networks.
    jax_top_eigenpair``: restarted every ``len(Q)`` products, full reorthogonalisation,
    start v0/|v0| + mix, relative residual TOL), on the basis buffer Q carried by the caller
    (nothing to zero: only rows 0..j are read) and reorthogonalising against rows 0..j only
    (O(jd), not O(md)). Returns (λ, unit vector signed along v0, products, Q)."""
    import jax
    import jax.numpy as jnp
    from bench_networks import jax_ritz  # at bench_networks.TOL, this script's TOL too

    m = Q.shape[0]

    def against(Q):
        def ortho(i, z):  # Gram–Schmidt against q_i
            q = jax.lax.dynamic_index_in_dim(Q, i, keepdims=False)
            return z - (q @ z) * q
        return ortho

    def extend(state):
        Q, alpha, beta, j, q, _, _, s, products = state
        Q = jax.lax.dynamic_update_index_in_dim(Q, q, j, 0)
        z = apply(q)
        a = z @ q
        z = jax.lax.fori_loop(0, j + 1, against(Q), z)  # full reorthogonalisation, twice
        z = jax.lax.fori_loop(0, j + 1, against(Q), z)
        b = jnp.linalg.norm(z)
        alpha, beta = alpha.at[j].set(a), beta.at[j].set(b)
        lam, s, done = jax_ritz(alpha, beta, j, b)
        return Q, alpha, beta, j + 1, z / b, done, lam, s, products + 1

    def restart(state):
        v, _, _, products, Q = state
        start = (Q, jnp.zeros(m), jnp.zeros(m), 0, v / jnp.linalg.norm(v), False, 0.0,
                 jnp.zeros(m), products)
        Q, _, _, j, _, done, lam, s, products = jax.lax.while_loop(
            lambda st: (~st[5]) & (st[3] < m), extend, start)
        vec = jax.lax.fori_loop(0, j, lambda i, x: x + s[i] * Q[i], jnp.zeros_like(v))
        return vec / jnp.linalg.norm(vec), done, lam, products, Q

    start = v0 / jnp.linalg.norm(v0) + mix
    vec, _, lam, products, Q = jax.lax.while_loop(lambda st: ~st[1], restart,
                                                  (start, False, 0.0, 0, Q))
    return lam, jnp.where(vec @ v0 < 0.0, -vec, vec), products, Q


def _jax(d, scale):
    try:
        import jax
    except ImportError:
        return None, None, None
    jax.config.update("jax_enable_x64", True)
    import jax.numpy as jnp
    from _timing import best_of
    from bench_networks import RESTART, jax_mix

    from stabsim._lanczos import START_MIX

    mix = jax_mix(d, START_MIX)  # the engine's fixed vector at the engine's weight

    def loss(w):
        return 0.5 * (jnp.prod(w) - 1.0) ** 2

    grad = jax.grad(loss)

    def hvp(w, v):
        return jax.jvp(grad, (w,), (v,))[1]

    steps = _steps(d)

    @jax.jit
    def run(w):
        def step(carry, _):
            w, v, Q = carry
            lam, v, products, Q = jax_lanczos(lambda q: hvp(w, q), v, Q, mix)
            return (w - (scale / d) * grad(w), v, Q), (lam, products)

        carry = (w, jnp.ones_like(w) / jnp.sqrt(d), jnp.zeros((min(RESTART, d), d)))
        return jax.lax.scan(step, carry, None, length=steps)[1]

    w0 = jnp.asarray(_start(d))
    lams, products = run(w0)
    lams.block_until_ready()
    seconds = best_of(lambda: run(w0)[0].block_until_ready(), 2) / steps
    return seconds, float(lams[-1]), float(np.mean(products))


def one(d, scale):
    import resource

    from _timing import cores

    (engine, engine_more), at, products = _engine(d, scale)
    row = {"d": d, "cores": cores(), "engine": engine, "engine_more": engine_more,
           "engine_products": products, "sharpness_at": at,
           "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
    (row["hand"], row["hand_more"]), row["hand_sharpness"] = _hand_written(d, scale)
    print(json.dumps(row))


def baseline(name, d, scale):
    """Child process: time one baseline at dimension d and η = scale/d; print 'seconds
    sharpness products BLAS' (the sharpness at its last iterate, its HVPs per step or None)
    or 'none'."""
    from _timing import blas_description

    seconds, lam, products = {"scipy": _scipy, "jax": _jax}[name](d, scale)
    print("none" if seconds is None
          else f"{seconds!r} {json.dumps([lam, products])} {blas_description()}")


def main():
    from _timing import ONE_CORE_NOTE, baseline_env, child_command, fastest_baseline

    sizes = SIZES
    if "--sizes" in sys.argv:
        sizes = [int(x) for x in sys.argv[sys.argv.index("--sizes") + 1].split(",")]
    scale = 1.0
    if "--eta-scale" in sys.argv:
        scale = float(sys.argv[sys.argv.index("--eta-scale") + 1])
    rows = []
    for d in sizes:
        out = subprocess.run(child_command(__file__, d, scale, one_core=True), capture_output=True,
                             text=True, check=True, env=baseline_env(1))
        row = json.loads(out.stdout.strip().splitlines()[-1])
        diffs = {"hand": (row["hand_sharpness"], _steps(d) - 1)}
        for name in ("scipy", "jax"):
            if name == "scipy" and d > 100_000:
                seconds, threads, rest = None, 0, ""
            else:
                seconds, threads, rest = fastest_baseline(__file__, name, d, scale)
            row[name], row[f"{name}_threads"] = seconds, threads
            if seconds is not None:
                lam, products = json.loads(rest.partition("] ")[0] + "]")
                row[f"{name}_products"] = products
                n = _scipy_steps(d) if name == "scipy" else _steps(d)
                diffs[name] = (lam, n - 1)
        row["diff"] = {name: abs(lam - row["sharpness_at"][str(t)]) / row["sharpness_at"][str(t)]
                       for name, (lam, t) in diffs.items()}
        rows.append(row)
    print(f"GD + sharpness every step, scalar network (O(d) HVP), η = {scale:g}/d, tol {TOL:g}")
    print(f"stabsim and the hand-written loop: {ONE_CORE_NOTE}; SciPy and JAX: the faster of "
          f"that and 2 threads on every core (column thr)")
    print(f"{'d':>9} {'stabsim µs':>11} {'HVPs/step':>9} {'peak MB':>8} {'hand µs':>9} "
          f"{'ratio':>6} {'eigsh µs':>9} {'ratio':>6} {'thr':>3} {'JAX µs':>9} {'ratio':>6} "
          f"{'thr':>3} {'HVPs/step':>9} {'max rel. diff S':>15}")
    for r in rows:
        us = 1e6 * r["engine"]
        cells = [f"{r['d']:>9}", f"{us:11.1f}", f"{r['engine_products']:9.2f}",
                 f"{r['peak_mb']:8.0f}", f"{1e6 * r['hand']:9.1f}",
                 f"{r['hand'] / r['engine']:6.2f}"]
        for key in ("scipy", "jax"):
            if r[key] is None:
                cells += [f"{'—':>9}", f"{'—':>6}", f"{'—':>3}"]
            else:
                cells += [f"{1e6 * r[key]:9.1f}", f"{r[key] / r['engine']:6.2f}",
                          f"{r[f'{key}_threads']:>3}"]
        cells.append(f"{r['jax_products']:9.2f}" if r["jax"] is not None else f"{'—':>9}")
        cells.append(f"{max(r['diff'].values()):15.1e}")
        print(" ".join(cells))
    print("a step more (µs, (t(2n) − t(n))/n, n the steps above): "
          + ", ".join(f"d = {r['d']}: stabsim {1e6 * r['engine_more']:.1f}, hand "
                      f"{1e6 * r['hand_more']:.1f} ({r['hand_more'] / r['engine_more']:.2f})"
                      for r in rows))
    big = [r for r in rows if r["d"] >= 1_000]
    if len(big) >= 2:
        sizes = np.log([r["d"] for r in big])
        # the hand-written loop's own exponent shows what the memory hierarchy adds to d¹
        exponents = {key: np.polyfit(sizes, np.log([r[key] for r in big]), 1)[0]
                     for key in ("engine", "hand", "engine_more", "hand_more")}
        print(f"fitted exponent of cost against d (d ≥ 10³): stabsim "
              f"{exponents['engine']:.3f}, hand-written loop {exponents['hand']:.3f}; "
              f"of a step more: stabsim {exponents['engine_more']:.3f}, hand-written loop "
              f"{exponents['hand_more']:.3f}")
    print("ratio = baseline time / stabsim time (> 1: stabsim is faster); thr: threads of the "
          "faster setting; max rel. diff S: the largest relative difference of a baseline's "
          "last sharpness from stabsim's at the same iterate")
    worst = max((v, name, r["d"]) for r in rows for name, v in r["diff"].items())
    print(f"largest sharpness difference from stabsim's: {worst[0]:.1e} ({worst[1]}, "
          f"d = {worst[2]}; allowed {AGREE:.0e})")
    if not worst[0] <= AGREE:
        raise SystemExit(f"a baseline disagrees with stabsim beyond {AGREE:.0e}")


if __name__ == "__main__":
    if "--baseline" in sys.argv:
        at = sys.argv.index("--baseline")
        baseline(sys.argv[at + 1], int(sys.argv[at + 2]), float(sys.argv[at + 3]))
    elif len(sys.argv) > 1 and not sys.argv[1].startswith("--"):
        one(int(sys.argv[1]), float(sys.argv[2]))
    else:
        main()
