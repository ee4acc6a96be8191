"""Every public function that returns a result follows one protocol (stabsim._result.Result).

One parametrised test calls each of them on a small, fast input and checks the protocol:
``status`` (a Status), ``message`` (a string), ``success`` (status is OK), ``counters`` (a
dict of numbers), ``parameters`` (a dict), ``to_xarray()`` (``long_name`` and ``units`` on
every variable and coordinate) and a ``repr`` of at most four lines. A second test runs each
kind of run that can fail into its failure and checks that the message names the knob that
ran out, and that a result made of parts (an ensemble, a comparison, a sweep) has the status
of ``combine_statuses``: OK if every part is OK, else the most severe one. A third discovers
the public functions whose return annotation is a Result, so that a new one cannot be left
out of the first.
"""

import importlib
import inspect
import numbers
import pkgutil
import typing

import numpy as np
import pytest
import xarray as xr

import stabsim
from stabsim import Status
from stabsim._result import SEVERITY, Result, combine_parts, combine_statuses
from stabsim.flows import (
    rmsprop_flow,
    scalar_rmsprop_flow,
    solve_flow,
    solve_reduced_ode,
    solve_sdcp,
)
from stabsim.flows._sdcp import sdcp_data
from stabsim.losses import ManifoldFamily, Minimalist, Quadratic, QuadraticRegression
from stabsim.sweep.adaptive_cells import adaptive_sweep
from stabsim.sweep.catapult import catapult_sweep
from stabsim.sweep.sgd_cells import sgd_sweep

MINIMALIST = Minimalist()
START = [1.0, 0.5]
MANIFOLD = ManifoldFamily([2.0, 0.5], [[1.0, 0.5], [0.3, 0.2]], [[0.5, -0.3], [0.0, 0.0]])
MANIFOLD_START = [1.0, 0.8, 0.3, 0.2]
#: a loss with a sustained edge of stability at η = ETA (the README's example)
ETA = 0.01
TWO_SCALE = QuadraticRegression.two_scale(ETA)
#: a finite sum (n = 6 examples) for SGD
REGRESSION = QuadraticRegression.random(4, 6, seed=0)
REDUCED_SWEEP = {"sweep": {"model": "reduced", "steps": 300},
                 "grid": {"eta": [0.05, 0.2], "x0": [1e-2, 3.0]}}

#: a small call of every public function that returns a result
CALLS = {
    "run_gd": lambda: stabsim.run_gd(MINIMALIST, START, 0.1, 20, record_trajectory=True),
    "step": lambda: stabsim.step(MINIMALIST, START, 0.1, method="heavy_ball", momentum=0.5),
    "run_reduced": lambda: stabsim.run_reduced(0.1, 0.0, 0.1, 1.0, 1.0, 200),
    "run_reduced_ensemble": lambda: stabsim.run_reduced_ensemble(
        [0.1, 0.2], 0.0, 0.1, 1.0, 1.0, 200, stats=True, stride=10),
    "proj_M": lambda: stabsim.proj_M(MINIMALIST, START, 0.1),
    "constrained_trajectory": lambda: stabsim.constrained_trajectory(MINIMALIST, START, 0.1, 3),
    "gradient_flow": lambda: stabsim.gradient_flow(MINIMALIST, START, 0.1, 5.0, stride=1.0),
    "modified_flow": lambda: stabsim.modified_flow(MINIMALIST, START, 0.1, 5.0, stride=1.0),
    "central_flow": lambda: stabsim.central_flow(MINIMALIST, START, 0.1, 5.0),
    "manifold_flow": lambda: stabsim.manifold_flow(MANIFOLD, MANIFOLD.on_manifold([1.0, 0.8]),
                                                   0.1, 20.0, stride=5.0),
    "limit_map": lambda: stabsim.limit_map(MINIMALIST, START),
    "solve_flow": lambda: solve_flow(lambda t, y: -y, [1.0], 1.0, t_eval=[0.0, 0.5, 1.0]),
    "solve_reduced_ode": lambda: solve_reduced_ode(0.5, 0.0, 0.1, 1.0, 1.0, 10.0, stride=2.0),
    "solve_sdcp": lambda: solve_sdcp(np.full((1, 1, 1, 1), 2.0), np.eye(1)),
    "compare": lambda: stabsim.compare(MINIMALIST, START, 0.1, 10, warn=False),
    "compare_manifold_flow": lambda: stabsim.compare_manifold_flow(
        MANIFOLD, MANIFOLD_START, 0.05, 40, stride=20),
    "run_sweep": lambda: stabsim.run_sweep(REDUCED_SWEEP, progress=False),
    "catapult_sweep": lambda: catapult_sweep([8], [1.0, 5.0], steps=50),
    "run_sgd": lambda: stabsim.run_sgd(REGRESSION, np.zeros(REGRESSION.dim), 0.1, 20,
                                       batch_size=2, stride=5),
    "run_adaptive": lambda: stabsim.run_adaptive(MINIMALIST, START, 0.01, 20, method="adam",
                                                 beta1=0.9, stride=5),
    "scalar_rmsprop_flow": lambda: scalar_rmsprop_flow(MINIMALIST, START, 1.0, 0.01, 0.99,
                                                       5.0),
    "rmsprop_flow": lambda: rmsprop_flow(MINIMALIST, START, [1.0, 1.0], 0.01, 0.99, 5.0),
    "adaptive_sweep": lambda: adaptive_sweep(MINIMALIST, START, [0.01, 0.02], [0.9], 20),
    "sgd_sweep": lambda: sgd_sweep(REGRESSION, np.zeros(REGRESSION.dim), [0.1], [2, 3],
                                   steps=20, stride=5),
}


def check_protocol(result):
    assert isinstance(result, Result)
    assert isinstance(result.status, Status)
    assert isinstance(result.message, str) and result.message
    assert result.success is (result.status is Status.OK)
    assert isinstance(result.counters, dict) and result.counters
    for key, value in result.counters.items():
        assert isinstance(key, str)
        assert isinstance(value, numbers.Real) and not isinstance(value, bool), (key, value)
    assert isinstance(result.parameters, dict) and result.parameters
    ds = result.to_xarray()
    assert isinstance(ds, xr.Dataset)
    for name, variable in ds.variables.items():  # data variables and coordinates
        assert variable.attrs.get("long_name"), name
        assert "units" in variable.attrs, name
    text = repr(result)
    assert len(text.splitlines()) <= 4, text
    assert text.startswith(type(result).__name__)


@pytest.mark.parametrize("name", sorted(CALLS))
def test_every_result_follows_the_protocol(name):
    with np.errstate(all="ignore"):
        result = CALLS[name]()
    check_protocol(result)


def _rank(status):
    return SEVERITY.index(status)


def test_the_combination_rule():
    # OK only if every part is; else the most severe part, whichever is most common
    assert combine_statuses([]) is Status.OK
    assert combine_statuses([Status.OK] * 3) is Status.OK
    parts = [Status.LEFT_DOMAIN] * 5 + [Status.NONFINITE, Status.OK]
    assert combine_statuses(parts) is Status.NONFINITE
    assert combine_statuses([Status.MAX_STEPS, Status.NOT_CONVERGED]) is Status.NOT_CONVERGED
    assert SEVERITY[-1] is Status.OK and set(SEVERITY) == set(Status)


def _coupled_sdcp():
    rng = np.random.default_rng(0)
    T = rng.normal(size=(2, 2, 3))
    G, C = sdcp_data(T + T.transpose(1, 0, 2), rng.normal(size=3))
    eigenvalues = np.linalg.eigvalsh(C)
    assert eigenvalues[0] < 0.0 < eigenvalues[-1]
    return G, C


#: a run of each kind that can fail, driven into the failure: (call, status, knob); the
#: message must name the knob (None: no budget ran out, the failure is the finding)
FAILING = {
    "run_gd-eig_max_products": (lambda: stabsim.run_gd(
        MINIMALIST, START, 0.1, 5, eigensolver="lanczos", eig_tol=1e-300, eig_max_products=1),
        Status.NOT_CONVERGED, "eig_max_products"),
    "run_adaptive-eig_max_products": (lambda: stabsim.run_adaptive(
        MINIMALIST, START, 0.01, 5, method="rmsprop", eigensolver="lanczos", eig_tol=1e-300,
        eig_max_products=1),
        Status.NOT_CONVERGED, "eig_max_products"),
    "run_sgd-eig_max_products": (lambda: stabsim.run_sgd(
        REGRESSION, np.zeros(REGRESSION.dim), 0.1, 5, batch_size=2, eigensolver="lanczos",
        eig_tol=1e-300, eig_max_products=1), Status.NOT_CONVERGED, "eig_max_products"),
    "run_reduced-steps": (lambda: stabsim.run_reduced(0.1, 0.0, 0.1, 1.0, 1.0, 20, cycles=50),
                          Status.MAX_STEPS, "steps"),
    "proj_M-max_iter": (lambda: stabsim.proj_M(MINIMALIST, START, 0.1, max_iter=1),
                        Status.NOT_CONVERGED, "max_iter"),
    "proj_M-passes": (lambda: stabsim.proj_M(MINIMALIST, START, 0.1, projection="paper",
                                             passes=1), Status.NOT_CONVERGED, "passes"),
    "constrained_trajectory-max_iter": (lambda: stabsim.constrained_trajectory(
        MINIMALIST, START, 0.1, 3, max_iter=1), Status.NOT_CONVERGED, "max_iter"),
    "constrained_trajectory-passes": (lambda: stabsim.constrained_trajectory(
        MINIMALIST, START, 0.1, 3, projection="paper", passes=1), Status.NOT_CONVERGED,
        "passes"),
    "limit_map-s_max": (lambda: stabsim.limit_map(MINIMALIST, START, s_max=1e-3),
                        Status.MAX_STEPS, "s_max"),
    # two_scale(η) reaches S = 2/η near t = 210 (gradient flow up to there): one switch
    "central_flow-max_switches": (lambda: stabsim.central_flow(
        TWO_SCALE, np.zeros(TWO_SCALE.dim), ETA, 300.0, stride=100.0, max_switches=0),
        Status.MAX_STEPS, "max_switches"),
    # λ1 = 1 + 2x² falls from 3 to meet λ2 = 2 (tests/test_manifold_geometry.py)
    "manifold_flow-eigengap": (lambda: stabsim.manifold_flow(
        ManifoldFamily([1.0, 2.0], [[4.0], [0.0]]), [1.0, 0.0, 0.0], 1.0, 2.0),
        Status.EIGENGAP_CLOSED, None),
    # a coupled two-eigenvalue problem whose C has a positive and a negative eigenvalue (the
    # free minimiser is not PSD) cannot reach a residual of 1e-300 within one iteration
    "solve_sdcp-max_iter": (lambda: solve_sdcp(*_coupled_sdcp(), tol=1e-300, max_iter=1),
                            Status.NOT_CONVERGED, "max_iter"),
    # G = 0 and C ⋠ 0: the objective −⟨C, S⟩ is unbounded below on the cone
    "solve_sdcp-flat": (lambda: solve_sdcp(np.zeros((1, 1, 1, 1)), np.eye(1)),
                        Status.FLAT_SHARPNESS, None),
    # L = −θ²/2: θ(t) = e^t (η = 1) passes divergence_norm = 1e8 at t = ln 1e8
    # an exact minimiser: the normalised step ∇L/|∇L| is 0/0
    "step-zero-gradient": (lambda: stabsim.step(Quadratic([1.0, 0.5]), [0.0, 0.0], 0.1,
                                                method="normalised"),
                           Status.ZERO_GRADIENT, None),
    "gradient_flow-diverges": (lambda: stabsim.gradient_flow(
        Quadratic([-1.0]), [1.0], 1.0, 100.0), Status.DIVERGED, None),
}


@pytest.mark.parametrize("name", sorted(FAILING))
def test_a_failing_run_names_the_knob_that_ran_out(name):
    call, status, knob = FAILING[name]
    with np.errstate(all="ignore"):
        result = call()
    check_protocol(result)
    assert result.status is status and not result.success
    if knob is not None:
        assert f"`{knob}`" in result.message, result.message
    assert result.message in repr(result)


def _check_whole(result, part_statuses):
    """The status of a whole is the combination of its parts' statuses, and its message
    names the knob of a part whose status it took (when that part has one)."""
    parts = list(part_statuses)
    assert result.status is combine_statuses(parts)
    worst = min((_rank(s) for s in parts), default=_rank(Status.OK))
    assert result.status is SEVERITY[worst]


def test_an_ensemble_takes_the_most_severe_status_not_the_most_common():
    # three trajectories leave the domain (1 + ηy0 ≤ 0 at once), one overflows (x0² = inf)
    result = stabsim.run_reduced_ensemble([0.1, 0.1, 0.1, 1e160], [-20.0, -20.0, -20.0, 0.0],
                                          0.1, 1.0, 1.0, 100)
    check_protocol(result)
    codes = result.status_codes.tolist()
    assert codes.count(Status.LEFT_DOMAIN) == 3 and codes.count(Status.NONFINITE) == 1
    assert result.status is Status.NONFINITE  # the most severe, though the rarest
    assert result.counters["LEFT_DOMAIN"] == 3 and result.counters["NONFINITE"] == 1
    assert result.counters["trajectories"] == 4
    _check_whole(result, codes)


def test_a_whole_lists_its_failed_parts_without_repeating_its_own_words():
    # a part whose message begins as the whole's is listed by its detail alone; a part with
    # another status (or another knob in its words) keeps its whole message
    def part(status, knob=None, detail=None):
        return Result(status=status, counters={}, parameters={}, knob=knob, detail=detail)

    parts = {"a": part(Status.EIGENGAP_CLOSED, "max_switches", "at t = 1"),
             "b": part(Status.EIGENGAP_CLOSED, "max_iter", "at step 2"),
             "c": part(Status.MAX_STEPS, "max_iter", "first at step 3"),
             "d": part(Status.OK)}
    status, knob, detail = combine_parts(parts)
    assert status is Status.EIGENGAP_CLOSED and knob == "max_switches"
    assert detail == f"a: at t = 1; b: at step 2; c: {parts['c'].message}"
    assert "`max_iter`" in detail  # c's advice survives
    # a part whose message is the whole's word for word is listed by its name alone (its
    # message had been repeated in full inside the whole's)
    parts = {"e": part(Status.ZERO_GRADIENT), "f": part(Status.ZERO_GRADIENT, None, "at 4")}
    assert combine_parts(parts)[2] == "e; f: at 4"


def test_an_undefined_result_leads_with_its_own_case():
    # UNDEFINED's general text lists cases (E_T/E_0 of the reduced map, compare from
    # S(θ₀) ≥ 2/η, ...); a result that knows its case says it first, in place of the list,
    # which would otherwise name cases that are not its own
    case = "the batch sharpness is 0/0 from step 3: every batch's gradient is zero there"
    result = Result(status=Status.UNDEFINED, counters={}, parameters={}, detail=case)
    assert result.message.startswith(case)
    assert "is NaN" in result.message and "E_0" not in result.message
    # with no case known, the general text (the list) is the message
    bare = Result(status=Status.UNDEFINED, counters={}, parameters={})
    assert bare.message == Status.UNDEFINED.message and "E_0 = 0" in bare.message
    # other statuses keep their text first, the detail after it
    other = Result(status=Status.DIVERGED, counters={}, parameters={}, detail="at step 7")
    assert other.message == f"{Status.DIVERGED.message} (at step 7)"


def test_a_comparison_takes_the_most_severe_part_and_names_its_knob():
    # one projection iteration per step cannot reach M: θ† is NOT_CONVERGED, GD and the flows
    # are OK
    result = stabsim.compare(TWO_SCALE, np.zeros(TWO_SCALE.dim), ETA, 400, max_iter=1,
                             warn=False)
    check_protocol(result)
    assert result.statuses["constrained"] is Status.NOT_CONVERGED
    assert result.statuses["gd"] is Status.OK
    _check_whole(result, result.statuses.values())
    assert result.status is Status.NOT_CONVERGED and "`max_iter`" in result.message
    assert "constrained:" in result.message


def test_a_sweep_combines_its_cells():
    result = stabsim.run_sweep(REDUCED_SWEEP, progress=False)
    codes = result.to_xarray()["status"].values.ravel().tolist()
    assert result.counters["cells"] == len(codes) == 4
    assert sum(result.counters.get(s.name, 0) for s in Status) == 4
    _check_whole(result, [Status(c) for c in codes])
    catapult = catapult_sweep([8], [1.0, 5.0], steps=50)
    codes = catapult.to_xarray()["status"].values.ravel().tolist()
    # ηλ0 = 5 is past the large-width boundary 4: that cell diverges
    assert Status.DIVERGED in codes
    _check_whole(catapult, [Status(c) for c in codes])


def _public_modules():
    """stabsim and every submodule that imports (an optional dependency may be missing),
    but ``stabsim.__main__``, which runs the command line when imported."""
    yield stabsim
    for info in pkgutil.walk_packages(stabsim.__path__, "stabsim."):
        if info.name.endswith("__main__"):
            continue
        try:
            yield importlib.import_module(info.name)
        except ImportError:
            continue


def _returns_a_result(function) -> bool:
    try:
        hint = typing.get_type_hints(function).get("return")
    except Exception:  # an annotation that does not resolve is no result annotation
        return False
    return inspect.isclass(hint) and issubclass(hint, Result)


def _public_names(module):
    """The module's ``__all__``; without one, its own public functions, if the module is
    public (no component of its dotted name starts with ``_``)."""
    if hasattr(module, "__all__"):
        return list(module.__all__)
    if any(part.startswith("_") for part in module.__name__.split(".")):
        return []
    return [name for name, value in vars(module).items() if not name.startswith("_")
            and inspect.isfunction(value) and value.__module__ == module.__name__]


def test_every_public_result_function_is_in_the_conformance_test():
    found = set()
    for module in _public_modules():
        if module.__name__.startswith("stabsim.demo"):
            continue
        for name in _public_names(module):
            value = getattr(module, name)
            if inspect.isfunction(value) and _returns_a_result(value):
                found.add(name)
    assert {"run_gd", "central_flow", "compare", "run_sweep"} <= found  # the search works
    assert found <= set(CALLS), f"add to CALLS: {sorted(found - set(CALLS))}"
    for name in stabsim.__all__:  # every curated function that returns a result says so
        value = getattr(stabsim, name)
        if inspect.isfunction(value) and name in CALLS:
            assert _returns_a_result(value), name


def test_parameters_name_the_loss_apart_and_hold_no_array_of_the_callers():
    from stabsim import compare
    from stabsim.losses import Network, Quadratic, QuadraticRegression
    from stabsim.maps import run_adaptive, run_gd, run_sgd

    # two networks and two quadratics whose reprs are the same: the results' parameters
    # had named them alike; a loss made again with the same parameters is named the same
    same = [(Network((4,), n_samples=8), Network((4,), n_samples=16, data="sine")),
            (Quadratic([3.0, 1.0]), Quadratic([30.0, 1.0]))]
    for a, b in same:
        assert repr(a) == repr(b)
        ra = run_gd(a, np.full(a.dim, 0.1), 0.01, 2)
        rb = run_gd(b, np.full(b.dim, 0.1), 0.01, 2)
        assert ra.parameters["loss"] != rb.parameters["loss"]
        assert ra.parameters["loss"].startswith(repr(a) + " sha256:")
    assert Quadratic([3.0, 1.0]).provenance == Quadratic([3.0, 1.0]).provenance
    # SGD and the adaptive methods had left the loss out
    loss = QuadraticRegression.random(4, 6, seed=0)
    theta0 = np.zeros(4)
    assert run_sgd(loss, theta0, 0.1, 2, batch_size=3).parameters["loss"] == loss.provenance
    assert run_adaptive(loss, theta0, 0.01, 2).parameters["loss"] == loss.provenance
    # compare had kept the caller's θ₀ itself: changing it changed the record
    two = QuadraticRegression.two_scale(0.01)
    start = np.zeros(two.dim)
    result = compare(two, start, 0.01, 3, warn=False)
    start[0] = 7.0
    assert result.parameters["theta0"] == [0.0] * two.dim
