"""The curated top-level API resolves to the objects of the modules that define them."""

import importlib

import pytest

import stabsim


@pytest.mark.parametrize("name", stabsim.__all__)
def test_every_curated_name_resolves(name):
    module = importlib.import_module(stabsim._HOME[name])
    assert getattr(stabsim, name) is getattr(module, name)


def test_unknown_name_is_an_attribute_error():
    with pytest.raises(AttributeError, match="no attribute 'run_adam'"):
        _ = stabsim.run_adam
