"""The documentation builds with Sphinx, warning-free, and covers the API and the CLI.

The build runs in a subprocess exactly as a developer runs it (``python -m sphinx -W
--keep-going -b html docs OUT``), into a temporary directory. It needs no network access. It
renders the gallery's notebooks from the store of executed notebooks that
``tests/test_notebooks.py`` fills (``conftest.py`` runs this file after the notebook tests),
so no notebook runs a second time; a notebook missing from the store (this file run alone,
after a code change) is executed by the build, in a Jupyter kernel at its small size.
"""

import importlib
import pathlib
import re
import subprocess
import sys

import pytest

import stabsim

#: one worker runs the gallery chain in order (tests/conftest.py)
pytestmark = pytest.mark.xdist_group("gallery")
ROOT = pathlib.Path(__file__).resolve().parents[1]
THEORY = ROOT / "docs" / "theory.md"
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.py"))


@pytest.fixture(scope="module")
def html(tmp_path_factory):
    out = tmp_path_factory.mktemp("docs")
    result = subprocess.run(
        [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-b", "html", "-q",
         "-d", str(out / "doctrees"), str(ROOT / "docs"), str(out / "html")],
        capture_output=True, text=True, cwd=ROOT, check=False)
    # -W: any warning (a broken docstring, a missing page, a bad reference) fails the build
    assert result.returncode == 0, result.stderr
    return out / "html"


@pytest.mark.slow
def test_every_curated_name_is_documented_at_its_home(html):
    pages = "".join(p.read_text(encoding="utf-8") for p in (html / "api").glob("*.html"))
    for name in stabsim.__all__:
        anchor = f'id="{stabsim._HOME[name]}.{name}"'  # autodoc's id: home module + name
        assert anchor in pages, name


@pytest.mark.slow
def test_cli_page_shows_the_parser_help_of_every_command(html):
    sys.path.insert(0, str(ROOT / "docs" / "_ext"))
    try:
        from stabsim_cli import commands
    finally:
        sys.path.remove(str(ROOT / "docs" / "_ext"))
    page = (html / "cli.html").read_text(encoding="utf-8")
    names = [name for name, _ in commands()]
    assert {"stabsim", "stabsim demo", "stabsim sweep", "stabsim plot"} <= set(names)
    for _, text in commands():
        usage = text.splitlines()[0]  # "usage: stabsim sweep [-h] ..."
        assert usage.replace("<", "&lt;").replace(">", "&gt;") in page, usage


@pytest.mark.slow
def test_gallery_shows_every_notebook_executed_with_its_figures(html):
    index = (html / "gallery.html").read_text(encoding="utf-8")
    assert NOTEBOOKS
    for notebook in NOTEBOOKS:
        assert f'href="gallery/{notebook.stem}.html"' in index, notebook.stem
        page = (html / "gallery" / f"{notebook.stem}.html").read_text(encoding="utf-8")
        # every notebook draws at least one figure; its output is a PNG the build wrote
        images = re.findall(r'<img[^>]*src="\.\./(_images/[^"]+\.png)"', page)
        assert images, notebook.stem
        assert all((html / image).is_file() for image in images), notebook.stem


@pytest.mark.slow
def test_tutorial_and_gallery_are_in_the_table_of_contents(html):
    index = (html / "index.html").read_text(encoding="utf-8")
    assert 'href="byol.html"' in index and 'href="gallery.html"' in index


@pytest.mark.slow
def test_theory_page_renders_its_sections_and_mathematics(html):
    page = (html / "theory.html").read_text(encoding="utf-8")
    assert "mathjax" in page.lower()  # MathJax is referenced by the page, loaded by the browser
    for number in range(9):  # §0–§8, the numbering the code's references use
        assert f"§{number}" in page, number


# --- the theory page stays current (fast: no build) -----------------------------------------


def test_theory_page_cites_tests_and_notebooks_that_exist():
    """Every `tests/…py::name` (or `::name` after one) and `notebooks/…py` named exists, and
    each implemented section (§0–§5) names a test as its evidence."""
    sections = re.split(r"^## (?=§\d )", THEORY.read_text(encoding="utf-8"), flags=re.M)
    current = None
    for section in sections:
        cited = 0
        for path, name in re.findall(
                r"`((?:tests|notebooks|stabsim)/[\w./]+\.py)?(?:::(\w+))?`", section):
            if not path and not name:
                continue
            current = ROOT / path if path else current
            assert current is not None and current.is_file(), path
            if name:
                source = current.read_text(encoding="utf-8")
                assert re.search(rf"^\s*def {name}\(", source, re.M), f"{current.name}::{name}"
            cited += current.parent.name == "tests"
        if section[:2] in {f"§{n}" for n in range(6)}:
            assert cited, section.splitlines()[0]


def test_theory_page_names_objects_that_exist():
    """Every `stabsim.…` name on the page imports (a module) or resolves (an attribute)."""
    text = THEORY.read_text(encoding="utf-8")
    for dotted in sorted(set(re.findall(r"`(stabsim(?:\.\w+)+)", text))):
        try:
            importlib.import_module(dotted)
        except ModuleNotFoundError:
            module, _, name = dotted.rpartition(".")
            assert hasattr(importlib.import_module(module), name), dotted


def test_every_section_reference_has_a_section():
    """"docs/theory.md §n" / "theory.md §n" in the code, tests, notebooks and README: §n exists."""
    headings = set(re.findall(r"^## §(\d+) ", THEORY.read_text(encoding="utf-8"), re.M))
    assert headings == {str(n) for n in range(9)}
    files = [ROOT / "README.md"] + [p for d in ("stabsim", "tests", "notebooks")
                                    for p in (ROOT / d).rglob("*.py")]
    cited = set()
    for path in files:
        for first, last in re.findall(r"(?:THEORY|theory\.md) §(\d+)(?:[–-]§(\d+))?",
                                      path.read_text(encoding="utf-8")):
            cited.update({first, last} - {""})
    assert cited and cited <= headings, sorted(cited - headings)
