"""Cold first calls: `import stabsim` and one engine's first call, kernels compiled into an
empty cache.

Each case runs in a fresh interpreter whose Numba cache is an empty temporary folder, so
every kernel it reaches is compiled (and written to that cache). Two times are reported: the
CPU time of that process up to the call's return (`import stabsim` included; compilation is
single-threaded, and CPU time moves less with the machine's load), and in brackets the wall
time from starting the interpreter to the call's return. The interpreter's exit after it
(Python's finalisation of the objects Numba's compilation left) is in neither: it is
reported on its own, as the rest of the process's wall time. Last comes the CPU time of all
the case's processes to their exits: the interpreter's, and that of the second process the
engines that call a loss's derivatives from Python start to compile them
(:mod:`stabsim.losses._compile_ahead`; ``STABSIM_COMPILE_AHEAD=0`` turns it off). With
``--warm`` the same case is run a second time on the filled cache.
Run: ``python benchmarks/bench_first_calls.py [--runs N] [--warm] [case ...]`` (no case
names: all of them). Prints seconds per case; never fails on time.
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import tempfile
import time

#: the losses of the cases (each line is run after ``import numpy as np``)
LOSSES = {
    "regression": "from stabsim.losses import QuadraticRegression\n"
                  "loss = QuadraticRegression.random(100, 10, seed=0)\n"
                  "theta = np.zeros(100)",
    "minimalist": "from stabsim.losses import Minimalist\n"
                  "loss = Minimalist()\n"
                  "theta = np.array([0.5, 0.1])",
    # the 1-6-6-6-1 tanh network on 32 Chebyshev samples of degree 4 (d = 103)
    "network": "from stabsim.losses import Network\n"
               "loss = Network((6, 6, 6), degree=4, n_samples=32)\n"
               "theta = loss.init(0)",
    "network_blocks": "from stabsim.losses import Network\n"
                      "loss = Network((6, 6, 6), degree=4, n_samples=32, chunks=2)\n"
                      "theta = loss.init(0)",
}

#: the first calls, short runs (compile time is what is measured): GD and SGD at
#: η = 1/S(θ₀), Adam at η = 0.01; the flows below 2/η (η = 1.8/S(θ₀)); `compare` from above
#: 2/η (η = 2.2/S(θ₀)) so that GD crosses at once and θ† runs
CALLS = {
    "run_gd": "from stabsim.maps import run_gd\nrun_gd(loss, theta, 1 / s0, 10)",
    "adam": "from stabsim.maps import run_adaptive\n"
            "run_adaptive(loss, theta, 0.01, 10, method='adam')",
    "sgd": "from stabsim.maps import run_sgd\n"
           "run_sgd(loss, theta, 1 / s0, 10, batch_size=loss.n_examples // 2)",
    "central_flow": "from stabsim.flows import central_flow\n"
                    "central_flow(loss, theta, 1.8 / s0, 2)",
    "constrained": "from stabsim.maps import constrained_trajectory\n"
                   "constrained_trajectory(loss, theta, 1.8 / s0, 4)",
    "compare": "from stabsim import compare\n"
               "compare(loss, theta, 2.2 / s0, 4, warn=False)",
    # the network's only: the RMSProp flow from ν = 10⁻⁵, held at its edge from t = 0
    "rmsprop_flow": "from stabsim.flows import rmsprop_flow\n"
                    "rmsprop_flow(loss, theta, np.full(loss.dim, 1e-5), 0.005, 0.99, 5.0)",
    # the network's only: a sweep of GD over two step sizes, 10 steps each, on the network
    # of LOSSES["network"], which the sweep builds from its table
    "run_sweep": "from stabsim.sweep import SweepConfig, run_sweep\n"
                 "run_sweep(SweepConfig(model='gd', grid={'eta': [0.5 / s0, 1 / s0]}, "
                 "steps=10, loss={'name': 'network', 'hidden': [6, 6, 6], 'degree': 4, "
                 "'n_samples': 32}), progress=False)",
}

CASES = {
    f"{call} {loss}": (loss, call)
    for loss, calls in (("regression", [c for c in CALLS
                                         if c not in ("run_sweep", "rmsprop_flow")]),
                        ("minimalist", ["run_gd"]), ("network", CALLS),
                        ("network_blocks", ["run_gd"]))
    for call in calls
}


def sharpness_at_start(loss: str) -> float:
    """S(θ₀) of a case's loss, by ``eigvalsh`` of its Hessian in this process: the child
    gets the number, so that its time is the call's alone."""
    import numpy as np

    scope = {"np": np}
    exec(LOSSES[loss], scope)
    return float(np.linalg.eigvalsh(scope["loss"].hessian(scope["theta"]))[-1])


def script(loss: str, call: str, s0: float) -> str:
    """The child's program: the loss, the call, and then its own CPU time and the clock."""
    return ("import time\nimport numpy as np\nimport stabsim  # noqa: F401\n"
            f"{LOSSES[loss]}\ns0 = {s0!r}\n{CALLS[call]}\n"
            "print(time.process_time(), time.time(), flush=True)\n")


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run(program: str, cache: str) -> tuple[float, float, float, float]:
    """One child process running ``program`` with Numba cache ``cache``: its CPU seconds up
    to the call's return, the wall seconds from its start to then, those of its exit, and
    the CPU seconds of every process it ran, to their exits (the child's own included)."""
    env = dict(os.environ, NUMBA_CACHE_DIR=cache)
    before = _children_cpu()
    start = time.time()  # the child's clock is the same: wall time of this machine
    out = subprocess.run([sys.executable, "-c", program], check=True, env=env,
                         capture_output=True, text=True).stdout
    end = time.time()
    cpu, returned = (float(x) for x in out.split()[-2:])
    return cpu, returned - start, end - returned, _children_cpu() - before


def host_speed() -> float:
    """CPU seconds of a fixed loop of Python additions, the best of three."""
    times = []
    for _ in range(3):
        start, total = time.process_time(), 0
        for i in range(20_000_000):
            total += i
        times.append(time.process_time() - start)
    return min(times)


def main(argv: list[str]) -> None:
    runs = int(argv[argv.index("--runs") + 1]) if "--runs" in argv else 1
    warm = "--warm" in argv
    skip = {argv.index("--runs") + 1} if "--runs" in argv else set()
    names = [a for i, a in enumerate(argv) if not a.startswith("--") and i not in skip]
    unknown = [n for n in names if not any(n in case for case in CASES)]
    if unknown:
        raise SystemExit(f"unknown case(s) {unknown}; cases: {sorted(CASES)}")
    chosen = [case for case in CASES if not names or any(n in case for n in names)]
    print("cold first call: CPU seconds of `import stabsim` + the call (wall seconds to its "
          "return), empty Numba cache" + (" (then warm: the same cache filled)" if warm else "")
          + "; exit: wall seconds of the interpreter's exit after it")
    print(f"this host now: {host_speed():.2f} s of CPU for a loop of 2·10⁷ additions in "
          "Python (compilation is mostly Python: compare hosts, or hours, by it)")
    starts = {}
    for name in chosen:
        loss, call = CASES[name]
        if loss not in starts:
            starts[loss] = sharpness_at_start(loss)
        program = script(loss, call, starts[loss])
        cold, hot = [], []
        for _ in range(runs):
            with tempfile.TemporaryDirectory() as cache:
                cold.append(run(program, cache))
                if warm:
                    hot.append(run(program, cache))
        line = f"  {name:28s} cold " + _times(cold, 5)
        if warm:
            line += "   warm " + _times(hot, 4)
        print(line, flush=True)


def _times(runs: list[tuple[float, float, float, float]], width: int) -> str:
    """CPU seconds (wall seconds to the call's return) of each run, then each run's exit,
    then the CPU seconds of all its processes."""
    return (", ".join(f"{c:{width}.2f} ({w:{width}.2f})" for c, w, _, _ in runs)
            + " s, exit " + ", ".join(f"{e:4.2f}" for _, _, e, _ in runs) + " s, all CPU "
            + ", ".join(f"{a:{width}.2f}" for *_, a in runs) + " s")


if __name__ == "__main__":
    main(sys.argv[1:])
