"""Figures of mini-batch SGD runs."""

from __future__ import annotations

from ._figure import figure_and_axes, require_records, require_result


def plot_batch_sharpness(results, *, ax=None):
    """Batch sharpness and full-batch sharpness against step, with 2/η.

    Parameters
    ----------
    results : SGDResult or sequence of SGDResult
        Runs at one step size (the threshold drawn is 2/η of the first); each gets one
        colour, the batch sharpness solid (its confidence band shaded when sampled) and
        λ_max(∇²L) dotted.
    ax : matplotlib Axes, optional

    Returns
    -------
    matplotlib.figure.Figure

    Raises
    ------
    ValueError
        If ``results`` is an empty sequence, or a run has no records (it failed at its
        start: the message says why).
    """
    runs = [results] if not isinstance(results, list | tuple) else list(results)
    if not runs:
        raise ValueError("results is empty: give at least one SGDResult")
    for run in runs:
        require_result(run, "stabsim.maps:SGDResult", name="results")
        require_records(run, name="a run of results")
    fig, ax = figure_and_axes(ax, 1, figsize=(7.0, 3.8))
    for run in runs:
        line, = ax.plot(run.step, run.batch_sharpness, lw=0.8,
                        label=f"batch sharpness, b = {run.batch_size}")
        if run.bs_method == "sampled":
            ax.fill_between(run.step, run.bs_low, run.bs_high, color=line.get_color(),
                            alpha=0.25, lw=0)
        ax.plot(run.step, run.sharpness, lw=1.0, ls=":", color=line.get_color(),
                label=f"λ_max(∇²L), b = {run.batch_size}")
    ax.axhline(runs[0].threshold, color="k", ls="--", lw=1.0, label="2/η")
    ax.set_xlabel("step t")
    ax.set_ylabel("sharpness")
    ax.set_title(f"SGD, η = {runs[0].eta:.4g}, N = {runs[0].n_examples}")
    ax.legend(fontsize="small", loc="lower right")
    return fig
