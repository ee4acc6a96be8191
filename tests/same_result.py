"""Comparison of exported datasets that differ only in when they were made."""

import xarray as xr


def assert_same_result(a, b):
    """``xarray.testing.assert_identical`` of ``a`` and ``b`` but for their ``created``
    attribute (the time of export, part of every dataset's provenance)."""
    def timeless(ds):
        ds = ds.copy()
        ds.attrs.pop("created", None)
        return ds

    xr.testing.assert_identical(timeless(a), timeless(b))
