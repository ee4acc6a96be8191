"""Sweeps interrupted, resumed on an edited loss module, and drawn from odd datasets.

- Ctrl-C inside an ``adaptive`` or ``sgd`` cell stops the sweep: the cell comes back
  INTERRUPTED from ``run_adaptive``/``run_sgd`` and is not stored as finished.
- The chunks of a user's loss family are keyed by its sources: an edited module starts afresh.
- Without ``output`` or ``workdir`` the chunks are in a temporary directory, and a Ctrl-C
  says they are lost.
- Every interrupted command says so, once, wherever the Ctrl-C comes.
- ``plot_phase_diagram`` on NaN regimes, empty or 0-d selections, short flag meanings, and
  a ``SweepResult``.
"""

import importlib
import os
import signal
import sys
import tempfile
import textwrap
import threading
import time

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import xarray as xr  # noqa: E402
from ctrl_c import ctrl_c_at_chunk  # noqa: E402
from matplotlib.colors import to_rgba  # noqa: E402

import stabsim.sweep.runner as runner  # noqa: E402
from stabsim import cli  # noqa: E402
from stabsim._interrupt import Interrupt  # noqa: E402
from stabsim.plot import plot_phase_diagram  # noqa: E402
from stabsim.plot.sweep import COLOURS  # noqa: E402
from stabsim.sweep import SweepConfig, SweepResult, run_sweep  # noqa: E402
from stabsim.sweep.runner import missing_cells  # noqa: E402
from stabsim.sweep.store import ChunkStore  # noqa: E402

#: a cell whose first step leaves |θ| < 1e8 (η/√(1 − β₂) ≈ 1e10 for RMSProp; SGD grows θ
#: by about η λ), then one of 10^9 steps (minutes): the Ctrl-C lands inside it
ETAS = [1e9, 1e-3]
LONG = {"steps": 10**9, "stride": 10**6 + 1, "chunk_size": 1, "grid": {"eta": ETAS}}
INTERRUPTIBLE = {
    "adaptive": SweepConfig(model="adaptive", loss={"name": "scalar_network", "depth": 3},
                            **LONG),
    "sgd": SweepConfig(model="sgd", loss={"name": "regression.random", "d": 5, "n": 7,
                                          "seed": 1},
                       params={"batch_size": 2, "batch_sharpness": "exact"}, **LONG),
}
#: how long the interrupted cell may take to stop (run_adaptive/run_sgd read the Ctrl-C
#: between compiled chunks of well under a second)
ANSWER_SECONDS = 2.0


def _ctrl_c_in_cell(first_chunk, after=0.2):
    """Start a thread that sends one SIGINT ``after`` seconds once ``first_chunk`` exists and
    the main thread is inside a chunked loop (its SIGINT handler an :class:`Interrupt`): in
    the second cell. Returns (thread, list receiving the time of the send)."""
    sent = []

    def send():
        deadline = time.perf_counter() + 120.0
        while not (first_chunk.exists()
                   and isinstance(signal.getsignal(signal.SIGINT), Interrupt)):
            if time.perf_counter() > deadline:
                return
            time.sleep(0.001)
        time.sleep(after)
        sent.append(time.perf_counter())
        os.kill(os.getpid(), signal.SIGINT)

    thread = threading.Thread(target=send)
    thread.start()
    return thread, sent


@pytest.mark.usefixtures("python_sigint")
@pytest.mark.parametrize("model", sorted(INTERRUPTIBLE))
def test_ctrl_c_in_an_adaptive_or_sgd_cell_stops_the_sweep_and_keeps_no_cut_cell(tmp_path,
                                                                                  model):
    config = INTERRUPTIBLE[model]
    output, workdir = tmp_path / "out.nc", tmp_path / "chunks"
    directory = ChunkStore(workdir, config).directory
    thread, sent = _ctrl_c_in_cell(directory / "chunk_0000000.npz")
    try:
        with pytest.raises(KeyboardInterrupt):
            run_sweep(config, output, workdir=workdir, progress=False)
    finally:
        thread.join()
    assert sent, "the sweep never reached its second cell"
    assert time.perf_counter() - sent[0] < ANSWER_SECONDS
    # the finished chunk is kept, the cut-short one is not: a rerun computes it
    assert sorted(p.name for p in directory.glob("chunk_*.npz")) == ["chunk_0000000.npz"]
    assert missing_cells(config, workdir) == 1
    assert not output.exists()


#: a user's loss family in its own module (as in docs/byol.md), times SCALE
USER_MODULE = '''
from typing import NamedTuple

import numba

from stabsim.losses import Loss, register_family

SCALE = {scale}


class Valley(NamedTuple):
    c: float
    mu: float
    m: float


@numba.njit
def value(theta, p):
    x, w = theta[0], theta[1]
    return SCALE * (0.5 * (p.c + w * w) * x * x + 0.5 * p.mu * (w - p.m) ** 2)


@numba.njit
def grad(theta, p, out):
    x, w = theta[0], theta[1]
    out[0] = SCALE * (p.c + w * w) * x
    out[1] = SCALE * (w * x * x + p.mu * (w - p.m))


@numba.njit
def hvp(theta, p, v, out):
    x, w = theta[0], theta[1]
    out[0] = SCALE * ((p.c + w * w) * v[0] + 2.0 * w * x * v[1])
    out[1] = SCALE * (2.0 * w * x * v[0] + (x * x + p.mu) * v[1])


@numba.njit
def d3(theta, p, u, v, out):
    x, w = theta[0], theta[1]
    out[0] = SCALE * (2.0 * w * (u[0] * v[1] + u[1] * v[0]) + 2.0 * x * u[1] * v[1])
    out[1] = SCALE * (2.0 * w * u[0] * v[0] + 2.0 * x * (u[0] * v[1] + u[1] * v[0]))


register_family(Valley, value=value, grad=grad, hvp=hvp, d3=d3)


def valley(c=3.0, mu=0.01, m=1.5):
    return Loss(Valley(c, mu, m), 2)
'''


def _valley_loss(scale, x, w, c=3.0, mu=0.01, m=1.5):
    return scale * (0.5 * (c + w * w) * x * x + 0.5 * mu * (w - m) ** 2)


@pytest.mark.slow
def test_a_sweep_resumed_after_its_loss_module_was_edited_uses_no_old_chunk(tmp_path,
                                                                           monkeypatch):
    name = "sweep_fixes_valley"
    module = tmp_path / f"{name}.py"
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(sys, "dont_write_bytecode", True)  # an edit within a second

    def config():
        return SweepConfig(model="gd", loss={"name": f"{name}:valley"}, steps=20,
                           params={"theta0": [0.1, 0.8]}, chunk_size=2,
                           grid={"eta": [0.1, 0.2, 0.3], "loss.m": [1.0, 1.5]})

    module.write_text(USER_MODULE.format(scale=1.0))
    old = config()
    output = tmp_path / "out.nc"
    run_sweep(old, output, keep_chunks=True, progress=False)
    # as if the run had been interrupted before its last chunk
    (ChunkStore(runner.default_workdir(output), old).directory / "chunk_0000002.npz").unlink()
    module.write_text(USER_MODULE.format(scale=2.0))
    monkeypatch.delitem(sys.modules, name)
    importlib.invalidate_caches()
    new = config()
    assert new == old  # the same config: only the module changed
    ds = run_sweep(new, output, progress=False).to_xarray()
    for m in (1.0, 1.5):
        np.testing.assert_allclose(ds["initial_loss"].sel({"loss.m": m}).values,
                                   _valley_loss(2.0, 0.1, 0.8, m=m), rtol=1e-12)


REDUCED = {"sweep": {"model": "reduced", "steps": 200, "chunk_size": 2},
           "grid": {"eta": [0.05, 0.1, 0.2], "x0": [0.01, 0.1]}}  # 6 cells, 3 chunks


def test_a_ctrl_c_without_a_work_directory_says_the_chunks_are_lost(tmp_path, monkeypatch,
                                                                    caplog):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # where the temporary one goes
    ctrl_c_at_chunk(monkeypatch, 2)
    with caplog.at_level("WARNING", logger="stabsim"), pytest.raises(KeyboardInterrupt):
        run_sweep(REDUCED, progress=False)
    (message,) = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert "2 of 3 chunks" in message
    assert "lost" in message and "workdir" in message
    assert "resume" not in message
    assert list(tmp_path.iterdir()) == []  # the temporary work directory is gone


def _interrupted_lines(capsys, code, where=""):
    """stderr's lines, the one that mentions an interruption "stabsim: interrupted"
    (``where``, a directory whose name may mention it, left out)."""
    assert code == 130
    lines = capsys.readouterr().err.strip().splitlines()
    said = [line for line in lines if "interrupt" in line.replace(where, "")]
    assert said == ["stabsim: interrupted"], lines
    return lines


def _raise_keyboard_interrupt(*args, **kwargs):
    raise KeyboardInterrupt


@pytest.mark.parametrize(("where", "call"), [
    ("check_result_size", 1),  # by the command, before the estimate
    ("check_result_size", 2),  # by run_sweep
    ("estimate_seconds", 1), ("chunk", 1), ("assemble", 1), ("write_dataset", 1)])
def test_every_interrupted_sweep_command_says_so_once(tmp_path, monkeypatch, capsys, where,
                                                      call):
    toml = tmp_path / "sweep.toml"
    toml.write_text(textwrap.dedent("""
        [sweep]
        model = "reduced"
        steps = 200
        chunk_size = 2
        [grid]
        eta = [0.05, 0.1, 0.2]
        x0 = [0.01, 0.1]
    """))
    if where == "chunk":
        ctrl_c_at_chunk(monkeypatch, 1)
    else:
        real, calls = getattr(runner, where), []

        def interrupted(*args, **kwargs):
            calls.append(args)
            if len(calls) == call:
                raise KeyboardInterrupt
            return real(*args, **kwargs)

        monkeypatch.setattr(runner, where, interrupted)
    lines = _interrupted_lines(capsys, cli.main(["sweep", str(toml), "--no-progress"]),
                               str(tmp_path))
    assert lines[-1] == "stabsim: interrupted"
    if where == "chunk":  # and first what it keeps
        assert lines[-2].startswith("1 of 3 chunks are saved in ")


def test_a_ctrl_c_while_the_commands_load_says_so(monkeypatch, capsys):
    monkeypatch.setattr(cli, "build_parser", _raise_keyboard_interrupt)
    _interrupted_lines(capsys, cli.main(["sweep", "x.toml"]))


def _dataset(regime, meanings="converged cycling diverged"):
    """A hand-made sweep result over eta (2 values) and x0 (2 values), classes 0, 1, 2."""
    regime = np.asarray(regime, dtype=np.float64)
    attrs = {"flag_values": [0, 1, 2], "flag_meanings": meanings}
    return xr.Dataset({"regime": (("eta", "x0"), regime, attrs),
                       "status": (("eta", "x0"), np.zeros(regime.shape, np.int8))},
                      coords={"eta": [0.1, 0.2], "x0": [1.0, 2.0]})


def test_cells_without_a_class_are_drawn_blank_not_as_a_class():
    # rows are x0 (the y axis), columns eta: cell (eta 0.2, x0 1.0) has no class
    fig = plot_phase_diagram(_dataset([[0.0, 1.0], [np.nan, 2.0]]))
    (ax,) = [a for a in fig.axes if a.collections]
    (mesh,) = ax.collections
    colours = mesh.to_rgba(mesh.get_array()).reshape(-1, 4)  # row-major over (x0, eta)
    expected = [to_rgba(COLOURS[0]), None, to_rgba(COLOURS[1]), to_rgba(COLOURS[2])]
    for colour, want in zip(colours, expected, strict=True):
        if want is None:
            assert colour[3] == 0.0  # transparent: blank
        else:
            np.testing.assert_allclose(colour, want)
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels == ["converged", "cycling", "diverged", "no data"]


def test_zipped_cells_without_a_class_are_not_coloured():
    ds = xr.Dataset({"regime": ("cell", [2.0, np.nan, 0.0],
                                {"flag_values": [0, 1, 2], "flag_meanings": "a b c"})},
                    coords={"eta": ("cell", [0.1, 0.2, 0.3]), "x0": ("cell", [1.0, 2.0, 3.0])})
    fig = plot_phase_diagram(ds)
    (ax,) = [a for a in fig.axes if a.collections]
    coloured, hollow = ax.collections
    np.testing.assert_allclose(coloured.get_offsets(), [[0.1, 1.0], [0.3, 3.0]])
    np.testing.assert_allclose(coloured.to_rgba(coloured.get_array()),
                               [to_rgba(COLOURS[2]), to_rgba(COLOURS[0])])
    np.testing.assert_allclose(hollow.get_offsets(), [[0.2, 2.0]])
    assert hollow.get_array() is None  # not colour-mapped
    assert not hollow.get_facecolor().any()  # no fill


@pytest.mark.parametrize(("make", "error", "match"), [
    (lambda ds: ds.isel(eta=[]), ValueError, r"no cells to draw.*\['eta'\]"),
    (lambda ds: ds.isel(eta=0, x0=0), ValueError, "no swept parameter"),
    (lambda ds: _dataset(ds["regime"].values, "converged cycling"), ValueError,
     r"3 flag_values \[0, 1, 2\] but 2 flag_meanings"),
    (lambda ds: SweepResult.of(ds, "reduced", {}, None), TypeError, r"to_xarray\(\)"),
], ids=["empty selection", "one cell", "short flag meanings", "a SweepResult"])
def test_a_phase_diagram_of_what_cannot_be_drawn_says_why(make, error, match):
    with pytest.raises(error, match=match):
        plot_phase_diagram(make(_dataset([[0.0, 1.0], [2.0, 1.0]])))


def test_a_factory_that_makes_another_loss_of_a_builtin_family_gets_another_key(tmp_path,
                                                                                 monkeypatch):
    # the factory's module is not a family's source: an edit of the matrix it builds had
    # left the work directory's key (and so its chunks) as they were
    name = "sweep_fixes_quadratic"
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(sys, "dont_write_bytecode", True)  # an edit within a second
    source = ("from stabsim.losses import Quadratic\n\n"
              "def make():\n    return Quadratic([{a}, 1.0])\n")

    def config():
        return SweepConfig(model="gd", loss={"name": f"{name}:make"}, steps=20,
                           params={"theta0": [0.1, 0.8]}, grid={"eta": [0.1, 0.2]})

    (tmp_path / f"{name}.py").write_text(source.format(a=3.0))
    first = config()
    (tmp_path / f"{name}.py").write_text(source.format(a=30.0))
    monkeypatch.delitem(sys.modules, name)
    importlib.invalidate_caches()
    second = config()
    assert second == first and second.key != first.key
    (tmp_path / f"{name}.py").write_text(source.format(a=3.0))
    monkeypatch.delitem(sys.modules, name)
    importlib.invalidate_caches()
    assert config().key == first.key  # the same loss again: the same key
    builtin = SweepConfig(model="gd", loss={"name": "quadratic", "A": [3.0, 1.0]}, steps=20,
                          params={"theta0": [0.1, 0.8]}, grid={"eta": [0.1, 0.2]})
    assert builtin._loss_sources == ()  # stabsim's own family: the config says it all
