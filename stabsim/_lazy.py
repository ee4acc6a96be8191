"""Names of a package imported from their modules on first use (PEP 562), so that importing
the package loads none of them: ``import stabsim`` and the command line's parser stay light."""

import importlib
import sys


def lazy_names(package: str, homes: dict):
    """``__getattr__`` and ``__dir__`` for the package named ``package``: each name in
    ``homes`` (name → the absolute name of its module) is imported on first access and kept
    in the package's namespace."""
    namespace = vars(sys.modules[package])

    def __getattr__(name):
        if name in homes:
            value = getattr(importlib.import_module(homes[name]), name)
            namespace[name] = value
            return value
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    def __dir__():
        return sorted(set(namespace) | set(homes))

    return __getattr__, __dir__
