"""RMSProp and Adam with the preconditioned sharpness every step: stabsim against JAX.

The d = 9473 tanh network of ``bench_networks.py`` (256 teacher examples, 16 inputs, three
hidden layers of width 64). Each step measures both the raw sharpness λ_max(H) and the
preconditioned sharpness λ_max(P⁻¹H), P = diag(√ν̂ + ε), by warm-started, restarted Lanczos to
relative residual 1e-10:

- stabsim: ``run_adaptive(..., stride=1)`` (the compiled engine; Lanczos on HVPs and on
  P^{-1/2}HP^{-1/2} products), µs per step;
- JAX: ``jit`` of a ``lax.scan`` over the same update, each step running the same Lanczos
  (``bench_networks.jax_top_eigenpair``, its start mixed with the engine's fixed vector) on
  ``jvp(grad)`` and on D·jvp(grad)(D·), µs per step, and the last preconditioned sharpness
  against stabsim's (both follow the same iterates).

Threads as in ``bench_networks.py``: each method runs with the libraries' default threading
(stabsim also with ``Network(chunks=k)``, k Numba threads each running a block of the
examples) and with one thread each (the child process pinned to one core before it imports
NumPy, Numba or JAX, and the BLAS/Numba thread variables set to 1); every run is timed by wall
clock.

Run: ``python benchmarks/bench_adaptive.py`` (needs JAX for the comparison columns;
``--one-thread``: the one-thread runs only; ``--smoke``: Adam only).
"""

from __future__ import annotations

import json
import subprocess
import sys

from bench_networks import (
    ONE_THREAD,
    TOL,
    _jax_loss,
    _machine_env,
    _network,
    chunks_here,
    jax_mix,
    jax_top_eigenpair,
)

STEPS = 100
ETA = 1e-3
BETA1, BETA2, EPS = 0.9, 0.99, 1e-8
METHODS = ("rmsprop", "adam")
#: runs timed per side, the fastest kept: on a two-core machine shared with other work a
#: two-thread run's wall time varied by up to 40% (Adam: 17.2–24.1 ms a step in four runs)
REPEATS = 5


def _stabsim(net, theta0, method):
    from _timing import best_of

    from stabsim.maps import run_adaptive

    kwargs = dict(method=method, beta1=BETA1 if method == "adam" else 0.0, beta2=BETA2,
                  eps=EPS, bias_correction=True, eig_tol=TOL)

    def run():
        return run_adaptive(net, theta0, ETA, STEPS, **kwargs)

    result = run()
    return best_of(run, REPEATS) / STEPS, result


def _jax(net, theta0, method):
    """µs/step and the last preconditioned sharpness of the update in jit(lax.scan)."""
    import jax
    import jax.numpy as jnp
    from _timing import best_of

    data = {"X": jnp.asarray(net.X), "Y": jnp.asarray(net.Y)}
    loss = _jax_loss(net)
    grad = jax.grad(lambda w: loss(w, data))
    d = net.dim
    beta1 = BETA1 if method == "adam" else 0.0
    from stabsim._lanczos import START_MIX

    mix = jax_mix(d, START_MIX)  # the engine's start, as in bench_networks

    def hvp(w, v):
        return jax.jvp(grad, (w,), (v,))[1]

    @jax.jit
    def run(w):
        def step(carry, t):
            w, m, nu, v, pv = carry
            g = grad(w)
            nu = BETA2 * nu + (1.0 - BETA2) * g * g
            m = beta1 * m + (1.0 - beta1) * g if method == "adam" else g
            denom = jnp.sqrt(nu / (1.0 - BETA2 ** (t + 1))) + EPS
            m_hat = m / (1.0 - beta1 ** (t + 1)) if method == "adam" else m
            scale = 1.0 / jnp.sqrt(denom)
            lam, v, _ = jax_top_eigenpair(lambda q: hvp(w, q), v, d, mix)
            plam, pv, _ = jax_top_eigenpair(lambda q: scale * hvp(w, scale * q), pv, d, mix)
            return (w - ETA * m_hat / denom, m, nu, v, pv), (lam, plam)

        start = jnp.ones(d) / jnp.sqrt(d)
        carry = (w, jnp.zeros(d), jnp.zeros(d), start, start)
        return jax.lax.scan(step, carry, jnp.arange(STEPS, dtype=jnp.float64))[1]

    w0 = jnp.asarray(theta0)
    _, plams = run(w0)
    plams.block_until_ready()
    seconds = best_of(lambda: run(w0)[1].block_until_ready(), REPEATS) / STEPS
    return seconds, float(plams[-1])


def one(method):
    from _timing import cores

    net = _network("tanh", 64)
    theta0 = net.init(0)
    engine, result = _stabsim(net, theta0, method)
    row = {"method": method, "d": net.dim, "steps": STEPS, "cores": cores(),
           "stabsim_us": 1e6 * engine,
           "status": result.status.name,
           "psharp": float(result.preconditioned_sharpness[-2])}
    chunks = chunks_here()
    if chunks > 1:
        chunked, chunked_result = _stabsim(_network("tanh", 64, chunks), theta0, method)
        row.update(chunks=chunks, chunked_us=1e6 * chunked,
                   chunked_psharp=float(chunked_result.preconditioned_sharpness[-2]))
    try:
        import jax
    except ImportError:
        print(json.dumps(row))
        return
    jax.config.update("jax_enable_x64", True)
    seconds, plam = _jax(net, theta0, method)
    row.update(jax_us=1e6 * seconds, jax_psharp=plam)
    print(json.dumps(row))


def main():
    from _timing import ONE_CORE_NOTE, child_command

    rows = []
    configs = (("all", {}), ("1", ONE_THREAD))
    if "--one-thread" in sys.argv:
        configs = configs[1:]
    methods = METHODS[-1:] if "--smoke" in sys.argv else METHODS
    for threads, extra in configs:
        for method in methods:
            out = subprocess.run(child_command(__file__, method, one_core=threads == "1"),
                                 capture_output=True, text=True, check=True,
                                 env=dict(_machine_env(), **extra))
            rows.append({"threads": threads, **json.loads(out.stdout.strip().splitlines()[-1])})
    print(f"RMSProp/Adam + raw and preconditioned sharpness every step (Lanczos, relative "
          f"residual {TOL:g}), {STEPS} steps")
    print(f"threads all: the libraries' default threading on every core; {ONE_CORE_NOTE}")
    print(f"{'threads':>7} {'cores':>5} {'method':>8} {'d':>6} {'stabsim µs':>11} "
          f"{'chunked µs':>10} {'JAX µs':>9} {'JAX/stabsim':>11} {'rel. diff':>9} "
          f"{'chunked diff':>12}")
    for r in rows:
        chunked = "chunked_us" in r
        cells = [f"{r['threads']:>7}", f"{r['cores']:>5}", f"{r['method']:>8}", f"{r['d']:>6}",
                 f"{r['stabsim_us']:11.0f}",
                 f"{r['chunked_us']:10.0f}" if chunked else f"{'—':>10}"]
        if "jax_us" in r:
            diff = abs(r["jax_psharp"] - r["psharp"]) / abs(r["psharp"])
            fastest = min(r["stabsim_us"], r["chunked_us"]) if chunked else r["stabsim_us"]
            cells += [f"{r['jax_us']:9.0f}", f"{r['jax_us'] / fastest:11.2f}",
                      f"{diff:9.1e}"]
        if chunked:
            cells.append(f"{abs(r['chunked_psharp'] - r['psharp']) / abs(r['psharp']):12.1e}")
        print(" ".join(cells))
    print("chunked: Network(chunks=k), k blocks of examples on k Numba threads (default "
          "threading only). JAX/stabsim > 1: stabsim is faster (its faster setting). rel. "
          "diff: the last preconditioned sharpness of JAX's run against stabsim's; chunked "
          "diff: of the chunked run against the serial one.")


if __name__ == "__main__":
    if len(sys.argv) > 1 and not sys.argv[1].startswith("--"):
        one(sys.argv[1])
    else:
        main()
