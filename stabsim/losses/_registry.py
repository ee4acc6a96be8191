"""Build a built-in loss from its family name: :func:`make_loss`."""

from __future__ import annotations

import inspect

from .. import _validate as check
from .manifold import ManifoldFamily
from .minimalist import Minimalist
from .network import Network, UVModel
from .potential import SelfRegulatingPotential
from .quadratic import Quadratic
from .realisation import ReducedMapRealisation
from .regression import QuadraticRegression
from .scalar_network import ScalarNetwork

#: family name → class, for every built-in family
FAMILIES = {
    cls.name: cls
    for cls in (
        Quadratic,
        SelfRegulatingPotential,
        ReducedMapRealisation,
        ScalarNetwork,
        Minimalist,
        QuadraticRegression,
        ManifoldFamily,
        Network,
        UVModel,
    )
}


def make_loss(name: str, **params):
    """Build the built-in loss of family ``name`` from keyword parameters.

    Parameters
    ----------
    name : str
        One of ``FAMILIES``: 'quadratic', 'self_regulating', 'realisation',
        'scalar_network', 'minimalist', 'regression', 'manifold', 'network',
        'uv_model'.
    **params
        The constructor arguments of that family's class.

    Raises
    ------
    ValueError
        For an unknown family name (the message lists the known ones), or parameters the
        family does not take or needs but did not get (the message names them).

    Examples
    --------
    >>> make_loss("scalar_network", depth=3)
    ScalarNetwork(depth=3)
    """
    check.choice("name", name, FAMILIES)
    cls = FAMILIES[name]
    signature = inspect.signature(cls.__init__)
    accepted = [p for p in signature.parameters.values() if p.name != "self"]
    unknown = sorted(set(params) - {p.name for p in accepted})
    if unknown:
        raise ValueError(
            f"unknown parameter(s) {unknown} for loss family {name!r}; it takes "
            f"{[p.name for p in accepted]}"
        )
    missing = [p.name for p in accepted if p.default is p.empty and p.name not in params]
    if missing:
        raise ValueError(f"loss family {name!r} needs the parameter(s) {missing}")
    return cls(**params)
