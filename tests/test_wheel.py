"""A wheel built from this checkout installs into a fresh environment, where the demo runs
and the documentation builds against the installed package.

The environment is a venv with ``--system-site-packages``, so the dependencies (NumPy,
Numba, Sphinx, …) come from the environment running the tests and nothing is downloaded to
install them; stabsim itself is installed from the wheel, and the test checks that it is
the wheel's copy that imports (not this checkout, nor an editable install of it). The wheel
is built by ``pip wheel`` in its isolated build environment (setuptools and wheel, per
``pyproject.toml``, from the package index or pip's cache). ``conftest.py`` runs this file
last: the docs build renders the gallery from the notebooks that ``tests/test_notebooks.py``
executed and stored.
"""

import os
import pathlib
import subprocess
import sys

import pytest

#: one worker runs the gallery chain in order (tests/conftest.py)
pytestmark = pytest.mark.xdist_group("gallery")
ROOT = pathlib.Path(__file__).resolve().parents[1]


def _run(args, cwd, **env):
    """Run ``args`` without this checkout on the path; fail with its output if it fails."""
    environ = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"} | env
    result = subprocess.run(args, cwd=cwd, env=environ, capture_output=True, text=True,
                            check=False)
    assert result.returncode == 0, f"{args}\n{result.stdout}\n{result.stderr}"
    return result.stdout


@pytest.mark.slow
def test_wheel_installs_and_runs_the_demo_and_the_docs(tmp_path):
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path / "dist"),
          str(ROOT)], cwd=tmp_path)
    (wheel,) = (tmp_path / "dist").glob("stabsim-*.whl")
    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", "--system-site-packages", str(venv)], cwd=tmp_path)
    python = venv / "bin" / "python"
    _run([str(python), "-m", "pip", "install", "-q", "--no-deps", "--no-index", str(wheel)],
         cwd=tmp_path)

    # the wheel's copy imports, from the venv's site-packages
    where = pathlib.Path(_run([str(python), "-c", "import stabsim; print(stabsim.__file__)"],
                              cwd=tmp_path).strip())
    assert where.is_relative_to(venv) and "site-packages" in where.parts, where
    assert not where.is_relative_to(ROOT / "stabsim")

    # the entry point the wheel installs runs the quick demo; its report states its checks
    # (kernels cached in this test's directory: the installed copy compiles from nothing)
    cache = str(tmp_path / "numba")
    out = tmp_path / "demo"
    _run([str(venv / "bin" / "stabsim"), "-q", "demo", "--quick", "--out", str(out)],
         cwd=tmp_path, NUMBA_CACHE_DIR=cache)
    report = (out / "report.md").read_text(encoding="utf-8")
    assert "| experiment |" in report and "**no**" not in report

    # the docs build documents the installed package (docs/conf.py with
    # STABSIM_DOCS_INSTALLED=1 leaves this checkout off the path)
    conf = _run([str(python), "-c", "import runpy; runpy.run_path('conf.py'); import stabsim; "
                 "print(stabsim.__file__)"], cwd=ROOT / "docs", STABSIM_DOCS_INSTALLED="1")
    assert pathlib.Path(conf.strip().splitlines()[-1]) == where
    _run([str(python), "-m", "sphinx", "-W", "--keep-going", "-b", "html", "-q",
          "-d", str(tmp_path / "doctrees"), str(ROOT / "docs"), str(tmp_path / "html")],
         cwd=tmp_path, STABSIM_DOCS_INSTALLED="1", NUMBA_CACHE_DIR=cache)
    assert (tmp_path / "html" / "api").is_dir() and (tmp_path / "html" / "gallery.html").is_file()
