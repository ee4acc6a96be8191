"""The "bring your own loss" tutorial (docs/byol.md) runs as written and prints what it shows.

Its files (code blocks captioned with a file name) are written to a fresh directory, then its
Python blocks run there in order in one namespace, as a reader runs them in a session; a
``text`` block right after a Python block is the output that block prints, compared exactly
(the printed numbers are rounded far above run-to-run round-off). The shell block runs the
command line in a subprocess, as a reader runs it.
"""

import contextlib
import io
import os
import pathlib
import re
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
PAGE = ROOT / "docs" / "byol.md"
#: a fenced block: its info string (language or directive) and its body
FENCE = re.compile(r"^```(\{code-block\} )?(\w+)\n(?::caption: (\S+)\n\n)?(.*?)^```$",
                   re.S | re.M)


def blocks():
    """``(language, caption or None, body)`` of each fenced block of the page, in order."""
    return [(m.group(2), m.group(3), m.group(4)) for m in FENCE.finditer(PAGE.read_text())]


def test_page_has_the_module_the_config_and_runnable_blocks():
    kinds = [(language, caption) for language, caption, _ in blocks()]
    assert ("python", "my_losses.py") in kinds and ("toml", "sweep.toml") in kinds
    assert ("bash", None) in kinds and kinds.count(("python", None)) >= 4


@pytest.mark.slow
def test_every_block_runs_and_prints_what_the_page_shows(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    # the page's commands run in tmp_path with only the checkout on the path: a loss module
    # beside the config is found because it is in the working directory
    # (an empty entry in PYTHONPATH would be the working directory too)
    path = [str(ROOT), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(path)}
    installed = pathlib.Path(sys.executable).parent / "stabsim"  # the command pip installs
    program = f'"{installed}"' if installed.is_file() else f'"{sys.executable}" -m stabsim'
    namespace, printed = {}, None
    try:
        for number, (language, caption, body) in enumerate(blocks()):
            if caption is not None:
                (tmp_path / caption).write_text(body, encoding="utf-8")
            elif language == "python":
                out = io.StringIO()
                with contextlib.redirect_stdout(out):
                    exec(compile(body, f"byol.md block {number}", "exec"), namespace)  # noqa: S102
                printed = out.getvalue()
                continue
            elif language == "text":
                assert printed is not None, f"block {number}: output without code"
                assert printed.strip() == body.strip(), f"block {number}"
            elif language == "bash":
                # the page's commands, with `stabsim` the installed command where there is
                # one (it does not put the working directory on the path, as -m does)
                script = f'stabsim() {{ {program} "$@"; }}\n{body}'
                result = subprocess.run(["bash", "-ec", script], cwd=tmp_path, env=env,
                                        capture_output=True, text=True, check=False)
                assert result.returncode == 0, result.stderr
            printed = None
    finally:
        sys.modules.pop("my_losses", None)
    assert (tmp_path / "sweep.nc").is_file() and (tmp_path / "sweep.png").is_file()
