"""Command-line conventions: ``python -m stabsim``, ``--quiet``/``--verbose`` through logging,
the compile notice, ``demo --quick``, plain help texts and the documented exit codes."""

import os
import pathlib
import re
import subprocess
import sys
import textwrap

import pytest

import stabsim
import stabsim.demo
from stabsim import cli
from stabsim.demo.experiments import EXPERIMENTS

ROOT = pathlib.Path(__file__).resolve().parents[1]
SWEEP = """
[sweep]
model = "reduced"
steps = 200
[grid]
eta = [0.05, 0.1]
x0 = [0.01, 0.1]
"""


def _python(code_or_args, cwd, extra_path=()):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [*map(str, extra_path), str(ROOT), os.environ.get("PYTHONPATH", "")])}
    args = ["-c", code_or_args] if isinstance(code_or_args, str) else code_or_args
    return subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True,
                          text=True, check=False)


def test_python_m_stabsim_is_the_command(tmp_path):
    result = _python(["-m", "stabsim", "--version"], tmp_path)
    assert result.returncode == 0 and result.stdout.strip() == f"stabsim {stabsim.__version__}"
    result = _python(["-m", "stabsim", "demo", "--bogus"], tmp_path)
    assert result.returncode == cli.EXIT_USAGE and "stabsim: error:" in result.stderr


def _parsers():
    parser = cli.build_parser()
    subparsers = next(a for a in parser._actions if a.dest == "command").choices
    return [parser, *subparsers.values()]


def test_help_texts_have_no_restructuredtext_markup():
    for parser in _parsers():
        text = parser.format_help()
        # ``literal``, :role:`target` and `reference`_ are markup a terminal shows raw
        assert not re.search(r"``|:\w+:`|`_", text), parser.prog


def test_exit_codes_are_documented_in_the_help():
    text = cli.build_parser().format_help()
    for code in (cli.EXIT_OK, cli.EXIT_FAILURE, cli.EXIT_USAGE, cli.EXIT_INTERRUPTED):
        assert re.search(rf"^  {code} +\w", text, re.M), code
    assert (cli.EXIT_OK, cli.EXIT_FAILURE, cli.EXIT_USAGE, cli.EXIT_INTERRUPTED) == (0, 1, 2, 130)


def test_ctrl_c_exits_130(tmp_path, capsys, monkeypatch):
    def interrupted(out, **_):
        raise KeyboardInterrupt

    monkeypatch.setattr(stabsim.demo, "run", interrupted)
    assert cli.main(["demo", "--out", str(tmp_path)]) == 130
    assert capsys.readouterr().err.strip() == "stabsim: interrupted"


def test_a_warning_is_one_line_and_an_overflowing_cell_gives_none(tmp_path, capsys,
                                                                    monkeypatch):
    # a corrupt chunk's CorruptChunkWarning had come out as Python prints a warning: a
    # "file:line: CorruptChunkWarning: …" line, then the source line of the warn call
    import warnings

    import stabsim.sweep.runner as runner

    real = runner._compute_missing

    def warn_then_compute(*args):
        warnings.warn("chunk 3 is corrupt:\nbad checksum", UserWarning, stacklevel=1)
        return real(*args)

    monkeypatch.setattr(runner, "_compute_missing", warn_then_compute)
    config = tmp_path / "sweep.toml"
    config.write_text(SWEEP)
    assert cli.main(["-q", "sweep", str(config), "--no-progress"]) == 0
    lines = [line for line in capsys.readouterr().err.splitlines()
             if line != "compiling kernels, first run only…"]
    assert lines == ["stabsim: warning: chunk 3 is corrupt: bad checksum"]
    assert warnings.showwarning is not cli._log_warning  # restored after the command
    monkeypatch.undo()
    # η = 1e308: η y overflows in the cell's final S η/2 (an UNDEFINED statistic, no warning)
    config.write_text(SWEEP.replace("eta = [0.05, 0.1]", "eta = [1e308]"))
    assert cli.main(["-q", "sweep", str(config), "--no-progress", "-o",
                     str(tmp_path / "big.nc")]) == 0
    assert [line for line in capsys.readouterr().err.splitlines()
            if line != "compiling kernels, first run only…"] == []


@pytest.mark.parametrize(("flags", "shown"), [([], True), (["-q"], False), (["--verbose"], True)])
def test_quiet_silences_the_info_lines(tmp_path, capsys, flags, shown):
    config = tmp_path / "sweep.toml"
    config.write_text(SWEEP)
    # the option is accepted before or after the command
    for argv in ([*flags, "sweep", str(config)], ["sweep", str(config), *flags]):
        assert cli.main([*argv, "--no-progress"]) == 0
        captured = capsys.readouterr()
        assert ("wrote" in captured.err) is shown and captured.out == ""


def test_verbose_adds_the_traceback_of_a_failure(tmp_path, capsys):
    missing = str(tmp_path / "missing.nc")
    assert cli.main(["plot", missing]) == cli.EXIT_USAGE
    assert capsys.readouterr().err.strip() == f"stabsim: error: no such result: {missing}"
    assert cli.main(["-v", "plot", missing]) == cli.EXIT_USAGE
    err = capsys.readouterr().err
    assert "Traceback" in err and err.strip().endswith(f"no such result: {missing}")


_COMPILE = """
import logging, sys
sys.path.insert(0, ".")
from stabsim import cli
from stabsim._compile_log import compile_notice
with cli._logging_to_stderr(logging.DEBUG), compile_notice():
    import kernels
    kernels.double(1.0), kernels.double(2.0), kernels.triple(1.0)
"""

_KERNELS = """
import numba

@numba.njit(cache=True)
def double(x):
    return 2.0 * x

@numba.njit(cache=True)
def triple(x):
    return 3.0 * x
"""


def test_compile_notice_once_when_compiling_and_never_when_cached(tmp_path):
    (tmp_path / "kernels.py").write_text(textwrap.dedent(_KERNELS))
    cold = _python(_COMPILE, tmp_path)
    assert cold.returncode == 0, cold.stderr
    lines = cold.stderr.splitlines()
    # one notice for the run, then (debug) one line per function compiled
    assert lines.count("compiling kernels, first run only…") == 1
    assert sorted(line.split()[1] for line in lines[1:]) == ["double", "triple"]
    warm = _python(_COMPILE, tmp_path)  # both loaded from the disk cache: nothing printed
    assert warm.returncode == 0 and warm.stderr == ""


def test_quick_demo_runs_a_subset_of_the_experiments(tmp_path, capsys):
    titles = [title for title, _ in EXPERIMENTS]
    assert set(stabsim.demo.QUICK) <= set(titles)  # the quick set names real experiments
    assert cli.main(["demo", "--quick", "--out", str(tmp_path)]) == 0
    err = capsys.readouterr().err
    for number, title in enumerate(stabsim.demo.QUICK, start=1):
        assert f"[{number}/{len(stabsim.demo.QUICK)}] {title}:" in err
    assert (tmp_path / "report.md").is_file() and (tmp_path / "gd_eos.png").is_file()


def test_the_parser_imports_no_engine(tmp_path):
    # `stabsim --help` and a usage error build the parser only: the subcommands' modules
    # load their engines (Numba, SciPy, the kernels) when a command runs, not before
    code = ("import sys; from stabsim import cli; cli.build_parser(); "
            "print(sorted(m for m in ('numba', 'scipy', 'stabsim.maps', 'stabsim.flows') "
            "if m in sys.modules))")
    done = _python(["-c", code], tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
