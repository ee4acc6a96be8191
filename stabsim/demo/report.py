"""The demo's one-page Markdown report: each prediction's measured error beside the claim."""

from __future__ import annotations

import dataclasses
import pathlib


@dataclasses.dataclass(frozen=True)
class Finding:
    """One row of the report.

    Attributes
    ----------
    experiment : str
        Which experiment measured it.
    quantity : str
        What was measured.
    measured : str
        The measured value, formatted.
    claim : str
        What the theory says (with its source).
    holds : bool
        Whether the measurement agrees with the claim within the stated tolerance.
    """

    experiment: str
    quantity: str
    measured: str
    claim: str
    holds: bool


def write_report(path: pathlib.Path, findings, figures, seconds: float, versions: dict) -> None:
    """Write ``report.md``: the table of findings, then the figures."""
    lines = [
        "# stabsim demo report",
        "",
        f"{len(findings)} checks, {sum(f.holds for f in findings)} agree with the theory; "
        f"run time {seconds:.1f} s. Versions: "
        + ", ".join(f"{name} {version}" for name, version in versions.items()) + ".",
        "",
        "| experiment | quantity | measured | theory says | agrees |",
        "|---|---|---|---|---|",
    ]
    lines += [" | ".join(["", *(_cell(text) for text in (f.experiment, f.quantity, f.measured,
                                                         f.claim)),
                          "yes" if f.holds else "**no**", ""]).strip() for f in findings]
    lines += ["", "## Figures", ""]
    lines += [f"![{name}]({name})" for name in figures]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def _cell(text: str) -> str:
    """Escape the pipes of |x| notation so they do not split a Markdown table cell."""
    return text.replace("|", "\\|")
