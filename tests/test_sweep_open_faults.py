"""Sweep faults (2026-12-05): each test failed on the code before its fix."""

import importlib
import sys

import numpy as np
import pytest

from stabsim.sweep import SweepConfig

# --- combine = "zip" with no swept loss parameter: the loss is still built and checked ----

#: a user's factory module; DEPTH is edited between two configs
FACTORY = '''
from stabsim.losses import make_loss

DEPTH = {depth}


def net():
    return make_loss("scalar_network", depth=DEPTH)
'''


def _zip(**kwargs):
    return SweepConfig(model="gd", combine="zip", steps=10, grid={"eta": [0.1, 0.1, 0.1]},
                       **kwargs)


def test_zip_keys_chunks_by_the_factory_module(tmp_path, monkeypatch):
    name = "open_faults_factory"
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(sys, "dont_write_bytecode", True)  # an edit within a second
    module = tmp_path / f"{name}.py"
    keys = []
    for depth in (3, 4):
        module.write_text(FACTORY.format(depth=depth))
        monkeypatch.delitem(sys.modules, name, raising=False)
        importlib.invalidate_caches()
        keys.append(_zip(loss={"name": f"{name}:net"}).key)
    assert keys[0] != keys[1]  # the same config: only the factory's module changed


def test_zip_refuses_an_unseeded_random_loss():
    with pytest.raises(ValueError, match="different loss each time"):
        _zip(loss={"name": "regression.random", "d": 3, "n": 5})
    _zip(loss={"name": "regression.random", "d": 3, "n": 5, "seed": 0})  # seeded: accepted


def test_zip_refuses_sqrt_on_a_loss_without_a_known_minimum():
    with pytest.raises(ValueError, match="method 'sqrt'.*has none"):
        _zip(method="sqrt", loss={"name": "regression.random", "d": 3, "n": 5, "seed": 0})


def test_zip_checks_theta0_against_the_loss():
    with pytest.raises(ValueError, match="theta0 has length 2"):
        _zip(loss={"name": "scalar_network", "depth": 3}, params={"theta0": [1.0, 1.0]})


def test_zip_default_chunk_size_counts_the_loss_dimension():
    # TARGET_CHUNK_WORK["gd"] = 5e7 parameter-steps: 1e7 steps × dimension 3 is one cell per
    # chunk (5 with the dimension taken as 1)
    config = SweepConfig(model="gd", combine="zip", steps=10**7, stride=5,
                         loss={"name": "scalar_network", "depth": 3},
                         grid={"eta": [0.1] * 10})
    assert config.chunk_size == 1


# --- counts and steps of 2³¹ or more are refused, never wrapped -----------------------------

#: steps_run of a cell that ran 2.2e9 steps (over 2³¹ − 1 = 2147483647), which int32 wrapped
#: to −2094967296 with status OK; the reduced map takes about 25 s a cell for it
BIG = 2_200_000_000


@pytest.mark.parametrize("model", ["reduced", "gd"])
def test_steps_of_2_to_the_31_are_refused(model):
    loss = {"loss": {"name": "scalar_network", "depth": 2}} if model == "gd" else {}
    with pytest.raises(ValueError, match=r"steps = 2147483648 is over 2\*\*31 - 1"):
        SweepConfig(model=model, steps=2**31, grid={"eta": [0.1]}, **loss)
    SweepConfig(model="reduced", steps=2**31 - 1, grid={"eta": [0.1]})  # the largest


def test_a_statistic_outside_int32_is_refused_not_wrapped(monkeypatch):
    from stabsim.sweep import compute
    from stabsim.sweep.map_cells import map_cells

    def big_steps(config, values):
        out = map_cells(config, values)
        out["steps_run"] = np.full(out["steps_run"].shape, BIG, np.int64)
        return out

    monkeypatch.setitem(compute._MODELS, "reduced", big_steps)
    config = SweepConfig(model="reduced", steps=10, grid={"eta": [0.1, 0.2]})
    with pytest.raises(OverflowError, match="'steps_run' holds 2200000000, outside int32"):
        compute.compute_cells(config, np.arange(2))


# --- a GD sweep's stride is odd: records on both sides of the period-2 orbit ----------------

#: the misled cells: normalised GD on a depth-3 scalar network (stride 1: regime [1, 1],
#: mean_rel_sharpness [1.0694, 1.0783]; stride 2 had given [4, 4], [4.8445, 1.1594]), and
#: GD on the minimalist loss at η = 1/2 (stride 2 had moved its class off the edge)
PERIOD_TWO = {
    "normalised": dict(loss={"name": "scalar_network", "depth": 3},
                       params={"theta0": [0.9, 1.3, 0.7]}, grid={"eta": [0.05, 0.3]}),
    "gd": dict(loss={"name": "minimalist"}, grid={"eta": [0.5]}),
}


@pytest.mark.parametrize("method", sorted(PERIOD_TWO))
def test_a_gd_sweep_refuses_an_even_stride_and_its_class_holds_over_odd_ones(method):
    from stabsim.sweep import GDClass, run_sweep

    def config(stride):
        return SweepConfig(model="gd", method=method, steps=1000, stride=stride,
                           **PERIOD_TWO[method])

    for stride in (2, 4, 10):
        with pytest.raises(ValueError, match=f"odd stride, got stride = {stride}.*period-2"):
            config(stride)
    # an odd stride pairs records stride steps apart: close to consecutive ones at 5 (the
    # normalised cells' mean 1.0826, 1.0795); at 25 the η = 0.05 cell's is 1.1474, outside
    # the band (the config docstring says so)
    regimes = [run_sweep(config(s), progress=False).to_xarray()["regime"].values.tolist()
               for s in (1, 5)]
    assert regimes[0] == regimes[1]
    assert set(regimes[0]) == {GDClass.EDGE_OF_STABILITY}  # at the edge, where the sides differ


def test_a_gd_sweep_whose_steps_have_no_odd_factor_says_so():
    # steps = 2^24: stride 1 makes too many records, 3 does not divide steps, 1024 is even;
    # the messages had sent the user round that circle
    for stride in (1, 3):
        with pytest.raises(ValueError, match="the odd strides that divide steps = 16777216 "
                                             "divide 1; .*larger odd factor"):
            SweepConfig(model="gd", steps=2**24, stride=stride, loss={"name": "minimalist"},
                        grid={"eta": [0.1]})
    SweepConfig(model="gd", steps=3 * 2**22, stride=3, loss={"name": "minimalist"},
                grid={"eta": [0.1]})


def test_adaptive_and_sgd_sweeps_refuse_an_even_stride_too():
    # RMSProp on a regression model with a manifold of minimisers, at the edge: its mean
    # relative sharpness was 1.0007 at strides 1 and 11, 0.9994 at 2 and 10 (adaptive_sweep's
    # default was 10), and at η = 0.02 the class moved from edge of stability to converged
    from stabsim.losses import QuadraticRegression
    from stabsim.sweep import GDClass
    from stabsim.sweep.adaptive_cells import adaptive_sweep
    from stabsim.sweep.sgd_cells import sgd_sweep

    loss = QuadraticRegression.random(4, 2, seed=0)

    def rmsprop(stride):
        return adaptive_sweep(loss, np.zeros(4), [0.02], [0.99], 5500, stride=stride,
                              eps=1e-12).to_xarray()

    for stride in (2, 10):
        with pytest.raises(ValueError, match=f"'adaptive' needs an odd stride, got stride = "
                                             f"{stride}"):
            rmsprop(stride)
        with pytest.raises(ValueError, match=f"'sgd' needs an odd stride, got stride = "
                                             f"{stride}"):
            sgd_sweep(loss, np.zeros(4), [0.1], [1], steps=10, stride=stride)
        with pytest.raises(ValueError, match="needs an odd stride"):
            SweepConfig(model="adaptive", steps=100, stride=stride, grid={"eta": [0.01]},
                        loss={"name": "minimalist"})
    regimes = [rmsprop(stride).regime.item() for stride in (1, 11)]
    assert regimes == [GDClass.EDGE_OF_STABILITY] * 2


# --- the run-time estimate charges a call's fixed cost per chunk, not per step ---------------

#: a fake cost of compute_cells: A seconds a call and B seconds a cell-step (a GD call on
#: the minimalist loss measured about 1 ms and 30-60 ns)
A, B = 0.05, 1e-7
ESTIMATED = {
    # the misestimated sweep (stride 125: a GD sweep's stride is odd); it took 11.3 s here, and
    # was estimated at 5558 s
    "gd": SweepConfig(model="gd", loss={"name": "minimalist"}, steps=400000, stride=125,
                      grid={"eta": np.linspace(0.1, 0.6, 40).tolist(),
                            "seed": list(range(25))}),
    "reduced": SweepConfig(model="reduced", steps=20000,
                           grid={"eta": np.linspace(0.01, 0.5, 200).tolist(),
                                 "x0": np.geomspace(1e-4, 1, 200).tolist()}),
}


@pytest.mark.parametrize("model", sorted(ESTIMATED))
def test_the_estimate_is_the_fixed_cost_per_chunk_plus_the_steps_of_every_cell(model,
                                                                               monkeypatch):
    from types import SimpleNamespace

    import stabsim.sweep.runner as runner

    clock = [0.0]

    def compute_cells(config, cells):
        clock[0] += A + B * len(cells) * config.steps

    monkeypatch.setattr(runner, "compute_cells", compute_cells)
    monkeypatch.setattr(runner, "time", SimpleNamespace(perf_counter=lambda: clock[0]))
    config = ESTIMATED[model]
    for n in (config.n_cells, 1, 2 * config.chunk_size + 1):
        chunks = -(-n // config.chunk_size)
        # what the sweep costs under this model: one call per chunk, every cell every step
        assert runner.estimate_seconds(config, n) == pytest.approx(
            chunks * A + n * B * config.steps, rel=1e-9)


# --- the configs of `stabsim sweep --help` load ---------------------------------------------

#: a [loss] for the epilog's blocks that leave it out (adaptive: "and a [loss]"; SGD: a
#: finite-sum loss of N ≥ 8 examples, its largest batch)
EPILOG_LOSSES = {"adaptive": {"name": "scalar_network", "depth": 3},
                 "sgd": {"name": "regression.random", "d": 5, "n": 8, "seed": 0}}


def _epilog_configs():
    """The epilog's example config, and each commented model block as its own config."""
    import re
    import tomllib

    from stabsim.sweep.cli import EXAMPLE

    body = EXAMPLE.split("example config (sweep.toml):", 1)[1].split("then:", 1)[0]
    lines = body.splitlines()
    first = next(i for i, line in enumerate(lines) if re.match(r'  # model = "', line))
    yield "reduced", tomllib.loads("\n".join(line[2:] for line in lines[:first]))
    blocks = {}
    for line in lines[first:]:
        match = re.match(r'  # model = "(\w+)"', line)
        if match:
            model = match.group(1)
            blocks[model] = []
        elif line.startswith("  #   "):
            blocks[model].append(line[len("  #   "):])
    assert sorted(blocks) == ["adaptive", "gd", "sgd"]
    for model, block in blocks.items():
        data = tomllib.loads("\n".join(block))
        data["sweep"] = {"model": model}
        data.setdefault("loss", EPILOG_LOSSES.get(model))
        if model == "sgd":
            data["params"] = {"batch_sharpness": "exact"}
        yield model, data


def test_the_configs_of_the_sweep_help_load():
    # model "gd" had given depth = 3 in [loss] and swept loss.depth: refused
    models = []
    for model, data in _epilog_configs():
        assert SweepConfig.from_dict(data).model == model
        models.append(model)
    assert models == ["reduced", "gd", "adaptive", "sgd"]


# --- clear messages for bad config files and a worker that cannot import the loss ------------

def _sweep_error(tmp_path, capsys, content: bytes):
    from stabsim import cli

    path = tmp_path / "sweep.toml"
    path.write_bytes(content)
    code = cli.main(["sweep", str(path), "-o", str(tmp_path / "out.nc"), "--no-progress"])
    return code, capsys.readouterr().err


REDUCED_TOML = b'[sweep]\nmodel = "reduced"\nsteps = 10\n[grid]\neta = [0.1]\n'


def test_params_not_a_table_is_named(tmp_path, capsys):
    code, err = _sweep_error(tmp_path, capsys, b"params = 3\n" + REDUCED_TOML)
    assert code == 2 and "[params] must be a table, got 3" in err  # had: 'int' object ...


def test_a_config_not_in_utf8_is_named(tmp_path, capsys):
    code, err = _sweep_error(tmp_path, capsys, REDUCED_TOML + "# café\n".encode("latin-1"))
    assert code == 2 and "sweep.toml: not UTF-8 text" in err and "0xe9" in err


def test_a_config_with_a_byte_order_mark_is_read(tmp_path, capsys):
    code, err = _sweep_error(tmp_path, capsys, b"\xef\xbb\xbf" + REDUCED_TOML)
    assert code == 0, err  # had: malformed TOML: Invalid statement (at line 1, column 1)


def test_an_integer_loss_parameter_swept_as_a_range_says_to_give_a_list():
    with pytest.raises(ValueError, match="depth must be an integer, got 2.0; a {start, stop, "
                                         "num} range gives floats: give loss.depth as a list"):
        SweepConfig.from_dict({"sweep": {"model": "gd", "steps": 10},
                               "loss": {"name": "scalar_network"},
                               "grid": {"eta": [0.1],
                                        "loss": {"depth": {"start": 2, "stop": 4, "num": 3}}}})
    # beside another swept float of an integer value, the hint names the one refused (it had
    # named the first in order: "give loss.frequency as a list" for n_samples)
    with pytest.raises(ValueError, match="n_samples must be an integer, got 4.0; .*give "
                                         "loss.n_samples as a list"):
        SweepConfig(model="gd", steps=9, loss={"name": "network", "hidden": [3], "data": "sine"},
                    grid={"eta": [0.1], "loss.n_samples": {"start": 4, "stop": 8, "num": 3},
                          "loss.frequency": [1.0, 2.0]})


def test_a_factory_module_a_dask_worker_cannot_import_is_named(tmp_path, monkeypatch):
    from types import SimpleNamespace

    import distributed

    from stabsim.sweep import backends

    name = "open_faults_worker_factory"
    monkeypatch.syspath_prepend(str(tmp_path))
    (tmp_path / f"{name}.py").write_text(FACTORY.format(depth=3))
    config = _zip(loss={"name": f"{name}:net"})
    # the worker: another machine, whose path does not hold the module
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p != str(tmp_path)])
    monkeypatch.delitem(sys.modules, name)
    importlib.invalidate_caches()
    worker = SimpleNamespace(address="tcp://10.0.0.2:4000", state=SimpleNamespace(nthreads=1))
    monkeypatch.setattr(distributed, "get_worker", lambda: worker)
    with pytest.raises(ValueError, match=f"importing '{name}' failed on the Dask worker "
                                         "tcp://10.0.0.2:4000 .* importable on every worker"):
        backends._dask_task(config, 0)


# --- Dask workers running other stabsim sources are refused ---------------------------------

def test_dask_workers_with_other_stabsim_sources_are_refused_by_address():
    from stabsim._jit import package_sources_stamp
    from stabsim.sweep import backends

    class Client:  # client.run(f) → {address: f() on that worker}
        def __init__(self, stamps):
            self.stamps = stamps
            self.submitted = []

        def run(self, function):
            assert function() == package_sources_stamp()  # what a worker computes
            return dict(self.stamps)

        def submit(self, *args, **kwargs):
            self.submitted.append(args)

    mine = package_sources_stamp()
    client = Client({"tcp://10.0.0.1:1": mine, "tcp://10.0.0.2:2": "0" * 64,
                     "tcp://10.0.0.3:3": mine})
    config = SweepConfig(model="reduced", steps=10, grid={"eta": [0.1]})
    with pytest.raises(ValueError, match=r"1 of 3 Dask worker\(s\) run stabsim sources that "
                                         r"differ from this process's \(tcp://10.0.0.2:2\)"):
        next(backends.dask_chunks(client, config, [0]))
    assert client.submitted == []  # refused before any chunk was submitted
    backends.check_worker_sources(Client({"tcp://10.0.0.1:1": mine}))  # the same: accepted


def test_a_local_dask_cluster_runs_the_same_sources():
    distributed = pytest.importorskip("distributed")
    from stabsim.sweep import backends

    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=False,
                                  dashboard_address=None) as cluster, \
            distributed.Client(cluster) as client:
        backends.check_worker_sources(client)
