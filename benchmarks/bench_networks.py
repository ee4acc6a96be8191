"""GD with the sharpness every step on networks: stabsim's network family against JAX.

Four networks (256 teacher examples, 16 inputs, one output, three hidden layers): a tanh MLP
and a deep linear network, each at width 64 (d = 9473) and width 20 (d = 1201). For each, in
one fresh process:

- stabsim: ``run_gd`` (hyper-dual backpropagation kernels; warm-started, restarted Lanczos on
  HVPs, stopped at relative residual 1e-10), µs per step and the process's peak resident
  memory before JAX is imported;
- JAX: ``jit`` of a ``lax.scan`` over GD steps, each measuring the sharpness by Lanczos on
  ``jvp(grad)`` with full reorthogonalisation, restarted every 20 products, warm-started from
  the previous eigenvector mixed with the engine's fixed vector at the engine's weight
  (``stabsim._lanczos.START_MIX``), and stopped at the same relative residual (the same
  algorithm, start and tolerance as the engine), µs per step, its products per step, and the
  sharpness at the last step against stabsim's (both runs follow the same iterates: η = 1/S₀
  keeps GD stable); and the same without the mix ("bare": the warm start alone, as a user
  would write it, cheaper and blind to a top eigenvalue the warm start cannot see);
- ``from_jax`` of the same JAX loss, run by stabsim's engine: µs per step (what bringing a JAX
  loss costs against the native family);
- the cost of one pass of the network kernels: value + gradient, HVP (dual numbers), and the
  hyper-dual pass (gradient, two HVPs and ∇³L[u, v]), as multiples of a gradient.

Threads: every case runs twice (without the machine's OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE,
as every baseline), with the libraries' default threading (OpenBLAS under
stabsim's ``np.dot``, Eigen under XLA: both use every core; stabsim also with
``Network(chunks=k)``, its passes on k blocks of examples on k Numba threads, one per core,
each calling the BLAS with one thread) and with one thread each: the child process pinned
to one core before it imports NumPy, Numba or JAX (``os.sched_setaffinity``, by
``_timing.child_command``; XLA sizes its thread pools to the one CPU it sees), with
``OPENBLAS_NUM_THREADS=1``, ``NUMBA_NUM_THREADS=1`` (the serial pass), since on a machine
shared with other work the thread counts decide the ratio more than the code does. XLA's
``--xla_cpu_multi_thread_eigen=false`` flag is not used: without the pinning a jitted matmul
still ran on both cores with it. Every run is timed by wall clock (CPU time would charge a
process for every core its threads use).

Run: ``python benchmarks/bench_networks.py`` (needs JAX for the comparison columns;
``--one-thread``: the one-thread runs only; ``--smoke``: the first network only).
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys

import numpy as np

CASES = (("tanh", 64), ("identity", 64), ("tanh", 20), ("identity", 20))
#: the environment of a one-thread child, which also runs pinned to one core
#: (``_timing.child_command(..., one_core=True)``)
ONE_THREAD = {"STABSIM_BENCH_ONE_THREAD": "1", "OPENBLAS_NUM_THREADS": "1",
              "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "NUMBA_NUM_THREADS": "1"}
TOL = 1e-10
RESTART = 20


def _machine_env():
    """This process's environment without OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE, which some
    machines set for old OpenBLAS builds and which slow a current one (as for every
    baseline: ``_timing.baseline_env``); stabsim's ``np.dot`` calls OpenBLAS."""
    return {k: v for k, v in os.environ.items()
            if k not in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")}


def _network(activation, width, chunks=1):
    from stabsim.losses import Network

    return Network((width, width, width), activation=activation, data="teacher", input_dim=16,
                   n_samples=256, seed=0, chunks=chunks)


def chunks_here():
    """Blocks of examples for stabsim's parallel passes in this run: one per Numba thread in
    the default-threading runs, none (1: the serial pass) in the one-thread runs."""
    import numba

    return 1 if os.environ.get("STABSIM_BENCH_ONE_THREAD") else numba.get_num_threads()


def _steps(d):
    return 200 if d > 5000 else 1000


def _peak_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _stabsim(net, theta0, eta, steps):
    from _timing import best_of

    from stabsim.maps import run_gd

    def run():
        return run_gd(net, theta0, eta, steps, find_crossing=False, eig_tol=TOL)

    result = run()
    return best_of(run, 2) / steps, result


def _pass_ratios(net, theta):
    from _timing import best_of

    from stabsim.losses.kernels.network import SERIAL as k

    rng = np.random.default_rng(1)
    u, v = rng.normal(size=(2, net.dim))
    out = np.empty(net.dim)
    p = net.params
    k["all_derivatives"](theta, p, u, v)
    reps = 50 if net.dim > 5000 else 500

    def timed(fn):
        return best_of(lambda: [fn() for _ in range(reps)], 3) / reps

    grad = timed(lambda: k["value_grad"](theta, p, out))
    return {"grad_us": 1e6 * grad,
            "hvp_ratio": timed(lambda: k["hvp"](theta, p, v, out)) / grad,
            "hyperdual_ratio": timed(lambda: k["all_derivatives"](theta, p, u, v)) / grad}


def _jax_loss(net):
    import jax.numpy as jnp

    act = {"tanh": jnp.tanh, "identity": lambda a: a}[net.activation]
    sizes = net.sizes

    def loss(theta, data):
        h, offset = data["X"], 0
        for i in range(len(sizes) - 1):
            W = theta[offset:offset + sizes[i + 1] * sizes[i]].reshape(sizes[i + 1], sizes[i])
            offset += sizes[i + 1] * sizes[i]
            h = h @ W.T + theta[offset:offset + sizes[i + 1]]
            offset += sizes[i + 1]
            if i < len(sizes) - 2:
                h = act(h)
        return 0.5 * jnp.sum((h - data["Y"]) ** 2) / h.shape[0]

    return loss


def jax_ritz(alpha, beta, j, b):
    """The top Ritz pair of the Lanczos tridiagonal matrix of steps 0..j held in the
    fixed-size ``alpha``, ``beta`` (rows past j given a diagonal below every eigenvalue, so
    that they never top it), and whether its residual b·|s_j| meets TOL·|λ|."""
    import jax.numpy as jnp

    m = alpha.shape[0]
    idx = jnp.arange(m)
    floor = -4.0 * (jnp.max(jnp.abs(alpha)) + 2.0 * jnp.max(jnp.abs(beta)) + 1.0)
    off = jnp.where(idx[:-1] < j, beta[:-1], 0.0)
    T = jnp.diag(jnp.where(idx <= j, alpha, floor)) + jnp.diag(off, 1) + jnp.diag(off, -1)
    values, vectors = jnp.linalg.eigh(T)
    lam, s = values[-1], vectors[:, -1]
    return lam, s, b * jnp.abs(s[j]) <= TOL * jnp.abs(lam)


def jax_top_eigenpair(apply, v0, d, mix):
    """Top eigenpair of the symmetric operator ``apply`` (v ↦ Av, traced by JAX): Lanczos
    with full reorthogonalisation restarted every RESTART products, warm start v0 plus
    ``mix`` (a vector of length d, or 0) as stabsim's engine mixes its fixed vector into every
    start, relative residual TOL (the algorithm and tolerance of stabsim's engine). Returns
    (λ, unit vector signed along v0, products)."""
    import jax
    import jax.numpy as jnp

    m = RESTART

    def extend(state):
        Q, alpha, beta, j, q, _, _, s, products = state
        Q = Q.at[j].set(q)
        z = apply(q)
        a = z @ q
        z = z - Q.T @ (Q @ z)  # full reorthogonalisation, twice
        z = z - Q.T @ (Q @ z)
        b = jnp.linalg.norm(z)
        alpha, beta = alpha.at[j].set(a), beta.at[j].set(b)
        lam, s, done = jax_ritz(alpha, beta, j, b)
        return Q, alpha, beta, j + 1, z / b, done, lam, s, products + 1

    def restart(state):
        v, _, _, products = state
        start = (jnp.zeros((m, d)), jnp.zeros(m), jnp.zeros(m), 0, v / jnp.linalg.norm(v),
                 False, 0.0, jnp.zeros(m), products)
        Q, _, _, _, _, done, lam, s, products = jax.lax.while_loop(
            lambda st: (~st[5]) & (st[3] < m), extend, start)
        vec = Q.T @ s
        return vec / jnp.linalg.norm(vec), done, lam, products

    start = v0 / jnp.linalg.norm(v0) + mix
    vec, _, lam, products = jax.lax.while_loop(lambda st: ~st[1], restart,
                                               (start, False, 0.0, 0))
    return lam, jnp.where(vec @ v0 < 0.0, -vec, vec), products


def jax_mix(d, weight):
    """``weight`` times the engine's fixed start vector (``stabsim._lanczos.mix_vector``:
    Knuth's multiplicative hash of r + 1, scaled to [−½, ½)), as a JAX array."""
    import jax.numpy as jnp

    r = np.arange(1, d + 1, dtype=np.uint64) * np.uint64(2654435761) % np.uint64(2**32)
    return jnp.asarray(weight * (r / 2.0**32 - 0.5))


def _jax_gd(net, theta0, eta, steps, start_mix):
    """µs/step, products/step and the last sharpness of GD + Lanczos in jit(lax.scan), the
    start mixed with stabsim's fixed vector at weight ``start_mix`` (0: the bare warm
    start)."""
    import jax
    import jax.numpy as jnp
    from _timing import best_of

    data = {"X": jnp.asarray(net.X), "Y": jnp.asarray(net.Y)}
    loss = _jax_loss(net)
    grad = jax.grad(lambda w: loss(w, data))
    d = net.dim
    mix = jax_mix(d, start_mix)

    def hvp(w, v):
        return jax.jvp(grad, (w,), (v,))[1]

    @jax.jit
    def run(w):
        def step(carry, _):
            w, v = carry
            lam, v, products = jax_top_eigenpair(lambda q: hvp(w, q), v, d, mix)
            return (w - eta * grad(w), v), (lam, products)

        return jax.lax.scan(step, (w, jnp.ones(d) / jnp.sqrt(d)), None, length=steps)[1]

    w0 = jnp.asarray(theta0)
    lams, products = run(w0)
    lams.block_until_ready()
    seconds = best_of(lambda: run(w0)[0].block_until_ready(), 2) / steps
    return seconds, float(np.mean(products)), float(lams[-1])


def _from_jax(net, theta0, eta, steps):
    from _timing import best_of

    from stabsim.losses import from_jax
    from stabsim.maps import run_gd

    loss = from_jax(_jax_loss(net), net.dim, params={"X": net.X, "Y": net.Y})
    steps = max(10, steps // 10)

    def run():
        return run_gd(loss, theta0, eta, steps, find_crossing=False, eig_tol=TOL)

    run()
    return best_of(run, 2) / steps


def one(activation, width):
    from stabsim.spectral import sharpness

    net = _network(activation, width)
    theta0 = net.init(0)
    eta = 1.0 / sharpness(net, theta0)
    steps = _steps(net.dim)
    engine, result = _stabsim(net, theta0, eta, steps)
    from _timing import cores

    row = {"activation": activation, "width": width, "d": net.dim, "steps": steps,
           "cores": cores(),
           "stabsim_us": 1e6 * engine, "stabsim_peak_mb": _peak_mb(),
           "stabsim_products": result.counters["lanczos_products"] / result.counters["records"],
           "sharpness": float(result.sharpness[-2, 0]), **_pass_ratios(net, theta0)}
    chunks = chunks_here()
    if chunks > 1:
        chunked, chunked_result = _stabsim(_network(activation, width, chunks), theta0, eta,
                                           steps)
        row.update(chunks=chunks, chunked_us=1e6 * chunked,
                   chunked_sharpness=float(chunked_result.sharpness[-2, 0]))
    try:
        import jax
    except ImportError:
        print(json.dumps(row))
        return
    jax.config.update("jax_enable_x64", True)
    before = _peak_mb()
    from stabsim._lanczos import START_MIX

    seconds, products, lam = _jax_gd(net, theta0, eta, steps, START_MIX)
    bare_seconds, bare_products, _ = _jax_gd(net, theta0, eta, steps, 0.0)
    row.update(jax_us=1e6 * seconds, jax_products=products, jax_sharpness=lam,
               jax_bare_us=1e6 * bare_seconds, jax_bare_products=bare_products,
               jax_extra_peak_mb=_peak_mb() - before,
               from_jax_us=1e6 * _from_jax(net, theta0, eta, steps))
    print(json.dumps(row))


def main():
    from _timing import ONE_CORE_NOTE, child_command

    rows = []
    configs = (("all", {}), ("1", ONE_THREAD))
    if "--one-thread" in sys.argv:
        configs = configs[1:]
    cases = CASES[:1] if "--smoke" in sys.argv else CASES
    for threads, extra in configs:
        for activation, width in cases:
            out = subprocess.run(child_command(__file__, activation, width,
                                               one_core=threads == "1"),
                                 capture_output=True, text=True, check=True,
                                 env=dict(_machine_env(), **extra))
            rows.append({"threads": threads, **json.loads(out.stdout.strip().splitlines()[-1])})
    print("GD + sharpness every step (Lanczos on HVPs, relative residual 1e-10), 256 examples")
    print(f"threads all: the libraries' default threading on every core; {ONE_CORE_NOTE}")
    print(f"{'threads':>7} {'cores':>5} {'network':>10} {'d':>6} {'stabsim µs':>11} "
          f"{'HVPs/step':>9} {'peak MB':>8} {'chunked µs':>10} {'JAX µs':>9} {'JAX/stabsim':>11} "
          f"{'HVPs/step':>9} {'rel. diff S':>11} {'bare JAX µs':>11} {'HVPs/step':>9} "
          f"{'from_jax µs':>11} {'grad µs':>8} {'HVP/grad':>8} {'hyper-dual/grad':>15}")
    for r in rows:
        cells = [f"{r['threads']:>7}", f"{r['cores']:>5}", f"{r['activation']:>10}",
                 f"{r['d']:>6}",
                 f"{r['stabsim_us']:11.0f}", f"{r['stabsim_products']:9.2f}",
                 f"{r['stabsim_peak_mb']:8.0f}",
                 f"{r['chunked_us']:10.0f}" if "chunked_us" in r else f"{'—':>10}"]
        if "jax_us" in r:
            diff = abs(r["jax_sharpness"] - r["sharpness"]) / r["sharpness"]
            fastest = min(r["stabsim_us"], r.get("chunked_us", np.inf))
            cells += [f"{r['jax_us']:9.0f}", f"{r['jax_us'] / fastest:11.2f}",
                      f"{r['jax_products']:9.2f}", f"{diff:11.1e}", f"{r['jax_bare_us']:11.0f}",
                      f"{r['jax_bare_products']:9.2f}", f"{r['from_jax_us']:11.0f}"]
        else:
            cells += [f"{'—':>9}", f"{'—':>11}", f"{'—':>9}", f"{'—':>11}", f"{'—':>11}",
                      f"{'—':>9}", f"{'—':>11}"]
        cells += [f"{r['grad_us']:8.0f}", f"{r['hvp_ratio']:8.2f}",
                  f"{r['hyperdual_ratio']:15.2f}"]
        print(" ".join(cells))
    print("chunked: Network(chunks=k), the passes on k blocks of examples in parallel, one per "
          "Numba thread (default threading only; its sharpness differs from the serial run's "
          "by the round-off printed below). JAX: the engine's algorithm, its start mixed with "
          "the same fixed vector at the same weight; bare JAX: the warm start alone (fewer "
          "products, and blind to a top eigenvalue the warm start cannot see). JAX/stabsim > 1: "
          "stabsim is faster (its faster setting: serial or chunked). peak MB: the whole "
          "process (Python, NumPy, Numba, SciPy) before JAX is imported.")
    for r in rows:
        if "chunked_us" in r:
            diff = abs(r["chunked_sharpness"] - r["sharpness"]) / r["sharpness"]
            print(f"  {r['activation']} d = {r['d']}: chunked/serial sharpness rel. diff "
                  f"{diff:.1e}, {r['chunks']} blocks")


if __name__ == "__main__":
    if len(sys.argv) > 2 and not sys.argv[1].startswith("--"):
        one(sys.argv[1], int(sys.argv[2]))
    else:
        main()
