"""Engines compiled for loss families defined outside stabsim, cached beside them.

A kernel such as the GD engine is compiled once per loss family (from the type of the
family's parameter record). For stabsim's own families that happens in the kernel's
dispatcher, cached on disk in stabsim's ``__pycache__`` like any ``cache=True`` function.

A family defined by a user gets its own copy of the dispatcher, :func:`engine_for`, whose
cache lives beside the module that defines the family's record, in
``__pycache__/stabsim-<record>/`` (or under ``NUMBA_CACHE_DIR`` when that is set, in
``stabsim-<record>-<hash of the defining file's path>/``). Two
reasons for a separate cache rather than the kernel's shared one:

- Numba keys a cache entry by the kernel's own source file only. A copy whose freshness stamp
  also holds a hash of the files that define the family (record and functions), besides
  stabsim's own compiled sources, is recompiled when the user edits their loss, instead of
  loading stale machine code.
- The shared index of a stabsim kernel would otherwise name the user's record class, and every
  later process would have to import the user's module just to read the index.

A family defined in the script run as ``__main__`` is compiled in memory only, with a
warning (:func:`_defined_in_main`): Numba would store its class by value, never to be found
again.

This uses private pieces of Numba (``Dispatcher._cache``, ``FunctionCache`` and
``IndexDataCacheFile``, through :class:`stabsim._jit.KernelCache`), stable across the Numba
versions stabsim supports; ``tests/test_loss_protocol.py`` checks a second process reads the
cache.
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import os
import warnings
from pathlib import Path

import numba

from .._jit import KernelCache
from ._protocol import Family


def file_digest(obj) -> str:
    """The SHA-256 (hex) of the file that defines ``obj`` (a module, class or function)."""
    path = inspect.getfile(getattr(obj, "py_func", obj))
    with open(path, "rb") as handle:
        return hashlib.sha256(handle.read()).hexdigest()


def family_stamp(family: Family) -> tuple:
    """Hashes of the source files that define the family's record and functions."""
    objects = [family.record, *family.functions.values()]
    return tuple(sorted({file_digest(obj) for obj in objects}))


def _cache_directory(family: Family) -> Path | None:
    """Where the engines of ``family`` are cached: ``__pycache__/stabsim-<module.Class>``
    beside the file that defines the record, or under ``NUMBA_CACHE_DIR``
    ``stabsim-<module.Class>-<hash>``, the hash (12 hex digits of SHA-256) of that file's
    absolute path, as Numba names its own directories there: two projects with a
    ``my_losses.Valley`` each (two git worktrees) had shared one directory, and each process
    overwrote the other's index and compiled again (3-4.5 s a first ``run_gd`` instead of
    0.02). None where there is no file (a class defined interactively)."""
    name = f"stabsim-{family.qualified_name}".replace("<", "").replace(">", "")
    try:
        source = os.path.abspath(inspect.getfile(family.record))
    except TypeError:  # defined interactively: no file to cache beside
        source = None
    root = numba.config.CACHE_DIR
    if root:
        if source is None:
            return Path(root) / name
        digest = hashlib.sha256(source.encode()).hexdigest()[:12]
        return Path(root) / f"{name}-{digest}"
    if source is None or not os.path.exists(source):
        return None
    return Path(source).parent / "__pycache__" / name


@functools.cache
def _defined_in_main(family: Family) -> bool:
    """Whether the family's record is defined in the script run as ``__main__``, warning
    once a process (UserWarning) that its engines are then not cached. Numba pickles a class
    of ``__main__`` by value into the cache's index, so no later process finds its entry:
    each compiled the engines again (4.4 s a first ``run_gd``) and added an entry of 240 kB
    to the cache."""
    if family.record.__module__ != "__main__":
        return False
    warnings.warn(
        f"the loss family {family.name} is defined in the script run as __main__, so the "
        "engines compiled for it are not cached on disk and are compiled again in each "
        "process; define the family in a module and import it to have them cached",
        UserWarning, stacklevel=5)  # the caller of run_gd, run_sgd, ...
    return True


@functools.cache
def _copy(kernel, family: Family):
    options = {k: v for k, v in kernel.targetoptions.items() if k not in ("cache", "nopython")}
    copy = numba.njit(**options)(kernel.py_func)
    directory = None if _defined_in_main(family) else _cache_directory(family)
    if directory is not None:
        try:
            copy._cache = KernelCache(kernel.py_func, directory, family_stamp(family))
        except OSError:  # not writable: compile in memory only
            pass
    return copy


def engine_for(kernel, family: Family):
    """``kernel`` as compiled for ``family``: itself for stabsim's families, else a cached copy."""
    if family.builtin:
        return kernel
    return _copy(kernel, family)
