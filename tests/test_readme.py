"""The README's code runs and its quick start is what CI runs."""

import pathlib
import re
import warnings

README = pathlib.Path(__file__).resolve().parents[1] / "README.md"


def test_api_snippet_runs_and_succeeds(capsys):
    text = README.read_text(encoding="utf-8")
    block = re.search(r"## The API in twenty lines\n\n```python\n(.*?)```", text, re.S).group(1)
    namespace = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        exec(compile(block, "README.md", "exec"), namespace)  # noqa: S102
    for name in ("gd", "xy", "cmp", "ngd"):
        assert namespace[name].success, (name, namespace[name].message)
    assert "excess_loss" in capsys.readouterr().out


def test_quick_start_has_two_commands_and_ci_runs_the_second():
    text = README.read_text(encoding="utf-8")
    block = re.search(r"## Quick start\n\n```bash\n(.*?)```", text, re.S).group(1)
    commands = [line for line in block.splitlines() if line.strip()]
    assert len(commands) == 2 and "stabsim demo" in commands[0]
    ci = (README.parent / ".ci" / "run").read_text(encoding="utf-8")
    assert commands[1] in ci


def test_report_excerpt_quotes_the_claims_the_demo_checks():
    """The "What you get" table is an excerpt of the demo's report: each row's claim (the
    "theory says" column) is one that stabsim/demo/experiments.py writes."""
    text = README.read_text(encoding="utf-8")
    section = text[text.index("## What you get"):text.index("## Documentation")]
    header, *rows = [re.split(r"(?<!\\)\|", line)
                     for line in section.splitlines() if line.startswith("| ")]
    column = [cell.strip() for cell in header].index("theory says")
    source = (README.parent / "stabsim" / "demo" / "experiments.py").read_text(encoding="utf-8")
    assert rows
    for row in rows:
        claim = row[column].strip()
        assert claim in source, claim
