"""The public Hypothesis strategies refuse bad arguments when they are built, before any
draw, and take every argument their docstrings promise (NumPy integers as sizes)."""

import numpy as np
import pytest
from hypothesis import HealthCheck, find, given, settings
from hypothesis import strategies as st

from stabsim.losses import FAMILIES, Network, Quadratic, SelfRegulatingPotential, UVModel
from stabsim.testing import (
    losses,
    manifold_losses,
    networks,
    quadratic_losses,
    realisations,
    regression_models,
    scalar_networks,
    starts,
    step_sizes,
    unit_vectors,
    uv_models,
)

LOSS = Quadratic([1.0, 2.0])


# -- refused at construction: each call below only builds a strategy -------------------------


@pytest.mark.parametrize("scale", [np.inf, -np.inf, np.nan, 0.0, -1.0, "1", None, True])
def test_starts_refuses_a_scale_that_is_not_finite_and_positive(scale):
    with pytest.raises(ValueError, match="scale"):
        starts(LOSS, scale=scale)


@pytest.mark.parametrize("centre", [[1.0, 2.0, 3.0], [[1.0, 2.0]], 1.0, []])
def test_starts_refuses_a_centre_of_the_wrong_shape(centre):
    with pytest.raises(ValueError, match=r"centre must have shape \(2,\)"):
        starts(LOSS, centre=centre)


@pytest.mark.parametrize("centre", [[np.nan, 0.0], [0.0, np.inf]])
def test_starts_refuses_a_centre_that_is_not_finite(centre):
    with pytest.raises(ValueError, match="centre contains NaN or inf"):
        starts(LOSS, centre=centre)


def test_starts_refuses_a_box_past_the_largest_float():
    # each of centre and scale is finite, centre + scale is not
    with pytest.raises(ValueError, match="largest float"):
        starts(LOSS, scale=1e308, centre=[0.0, -1e308])


def test_starts_refuses_what_is_not_a_loss():
    with pytest.raises(TypeError, match="loss must be a stabsim.losses.Loss"):
        starts(np.zeros(2))


@pytest.mark.parametrize(("low", "high", "name"), [
    (1e-3, np.inf, "max_value"), (np.nan, 1.0, "min_value"), (1e-3, np.nan, "max_value"),
    (-1.0, 1.0, "min_value"), (0.0, 1.0, "min_value"), (1e-3, "1", "max_value"),
    (1.0, 0.5, "min_value <= max_value")])
def test_step_sizes_refuses_bounds_that_are_not_finite_positive_and_ordered(low, high, name):
    with pytest.raises(ValueError, match=name):
        step_sizes(low, high)


#: every argument that takes "int, strategy or None" as a size, its strategy and its minimum
SIZES = [(quadratic_losses, "dim", 1), (scalar_networks, "depth", 2),
         (regression_models, "d", 1), (regression_models, "n", 1), (manifold_losses, "m", 1),
         (manifold_losses, "k", 1), (networks, "n_samples", 1), (uv_models, "width", 1)]


@pytest.mark.parametrize(("strategy", "name", "minimum"), SIZES)
@pytest.mark.parametrize("value", [3.0, "3", True, [3]])
def test_a_size_that_is_not_an_integer_or_strategy_is_refused(strategy, name, minimum, value):
    # a ValueError, as run_gd(steps=2.0) raises; it had been a TypeError
    with pytest.raises(ValueError, match=f"{name} must be an int, a strategy or None"):
        strategy(**{name: value})


@pytest.mark.parametrize(("strategy", "name", "minimum"), SIZES)
def test_a_size_below_its_minimum_is_refused(strategy, name, minimum):
    with pytest.raises(ValueError, match=f"{name} must be >= {minimum}"):
        strategy(**{name: np.int64(minimum - 1)})


@pytest.mark.parametrize("gap", [0.5, 1.0, -2.0, np.nan, np.inf])
def test_manifold_losses_refuses_a_gap_not_above_one(gap):
    with pytest.raises(ValueError, match="gap must be"):
        manifold_losses(gap=gap)


def test_manifold_losses_refuses_a_curved_that_is_not_a_bool():
    with pytest.raises(TypeError, match="curved must be True or False"):
        manifold_losses(curved="no")


@pytest.mark.parametrize(("low", "high", "match"), [
    (3.0, 1.0, "min_eigenvalue <= max_eigenvalue"), (np.nan, 1.0, "min_eigenvalue"),
    (0.0, np.inf, "max_eigenvalue")])
def test_quadratic_losses_refuses_a_bad_eigenvalue_range(low, high, match):
    with pytest.raises(ValueError, match=match):
        quadratic_losses(min_eigenvalue=low, max_eigenvalue=high)


@pytest.mark.parametrize(("build", "name"), [
    (lambda: realisations(eta=-0.1), "eta"), (lambda: realisations(eta=np.inf), "eta"),
    (lambda: regression_models(j_scale=0.0), "j_scale"),
    (lambda: regression_models(z_scale=np.nan), "z_scale"),
    (lambda: networks(hidden=[2, 0]), r"hidden\[1\]"), (lambda: unit_vectors(0), "dim"),
    (lambda: unit_vectors(2.5), "dim")])
def test_other_numbers_out_of_range_are_refused(build, name):
    with pytest.raises(ValueError, match=name):
        build()


# -- accepted: NumPy integers as sizes, and what losses() promises ----------------------------


@pytest.mark.parametrize(("strategy", "name", "minimum"), SIZES)
@pytest.mark.parametrize("kind", [np.int64, np.int32, np.uint8])
def test_a_numpy_integer_size_is_a_fixed_size(strategy, name, minimum, kind):
    size = minimum + 1
    attribute = {"dim": "dim", "depth": "dim"}.get(name, name)  # a depth-L network has d = L

    @settings(max_examples=5)
    @given(loss=strategy(**{name: kind(size)}))
    def check(loss):
        assert getattr(loss, attribute) == size

    check()


@settings(suppress_health_check=[HealthCheck.too_slow])
@given(loss=networks(hidden=[2, 3], n_samples=np.int64(4)))
def test_networks_take_the_given_widths_and_examples(loss):
    assert isinstance(loss, Network) and loss.sizes[1:-1] == (2, 3) and loss.n_samples == 4


@given(loss=uv_models(width=3))
def test_uv_models_take_the_given_width(loss):
    assert isinstance(loss, UVModel) and loss.width == 3 and loss.X[0, 0] != 0.0


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_losses_draws_every_builtin_family(family):
    loss = find(losses(), lambda loss: loss.name == family,
                settings=settings(database=None, derandomize=True, max_examples=2000))
    assert isinstance(loss, FAMILIES[family])


def test_losses_shrinks_a_failure_on_every_loss_to_the_self_regulating_potential():
    # what its docstring says; it had said "towards the first of them", a quadratic loss
    loss = find(losses(), lambda loss: True, settings=settings(database=None))
    assert isinstance(loss, SelfRegulatingPotential)


@settings(max_examples=60, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_every_drawn_loss_is_small_and_finite_at_a_drawn_start(data):
    loss = data.draw(losses(), label="loss")
    theta = data.draw(starts(loss), label="theta")
    assert loss.dim <= 29  # the largest: a 2-3-3-2 teacher network with biases
    assert np.isfinite(loss.value(theta)) and np.all(np.isfinite(loss.grad(theta)))
