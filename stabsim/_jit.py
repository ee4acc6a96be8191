"""The package's Numba flags, in one place.

Every compiled kernel in stabsim is decorated with :func:`jit`, so the caching and
error-model policy is set here and nowhere else.

- ``cache=True``: compiled machine code is written next to the module and reused by
  later processes (compile time is part of speed); :class:`KernelCache` keeps it fresh
  across every file with compiled code, not only the kernel's own.
- ``error_model="numpy"``: a division by zero gives ``inf``/``nan`` instead of raising, so
  kernels never raise; they report a status code that the Python wrapper turns into a
  message.
- ``no_cfunc_wrapper=True``, here and for the functions only kernels call (:data:`KERNEL_ONLY`):
  no C entry point. Nothing calls one (Python calls go through the Python wrapper, kernels
  call the function itself), yet each was lowered, optimised by LLVM and made into machine
  code.
- no ``fastmath``: it would let the compiler assume that no value is NaN, and detecting
  divergence is part of every kernel's job. Kernels that never test for NaN may opt into
  :data:`ARITH_FASTMATH` (reassociation and fused multiply-add only).

Compile time. Numba compiles every function a kernel calls as a unit of its own, and each
unit links in, optimises and generates machine code for all the code below it. Code under k
such units is compiled k times, so the shape of the call tree sets the cold cost of a kernel.
A function spliced into its caller (``inline="always"``) is no unit there, but Numba compiles
it alone as well before splicing it, which stabsim spares its own functions
(:func:`_splice_without_compiling_alone`). A large unit below a stabsim kernel is linked in
after the kernel's optimisation rather than before it, so that only its machine code is made
again (:func:`_link_large_libraries_after_optimising`), and a function that only other
kernels link in gets no machine code of its own (:func:`_no_machine_code_when_only_linked`).
LLVM optimises stabsim's code at level 1, not Numba's 3 (:func:`_optimise_stabsim_code_at_level`).
While stabsim's code compiles, Python collects its garbage less often
(:class:`_CollectingLessOften`) and no timing events go around LLVM's calls
(:func:`_no_lock_events_while_stabsim_compiles`); and Numba does less of its own work:
operators on scalars are not looked up among NumPy's ufunc loops
(:func:`_operators_on_scalars_not_typed_as_ufuncs`), reference counts are changed without
writing out every member of a value (:func:`_reference_counts_read_only_the_meminfos`),
post-processing leaves out the analyses nothing reads
(:func:`_post_processing_without_unread_analyses`) and a call is typed again by the template
that typed it before (:func:`_calls_typed_by_the_template_that_typed_them_before`). The 87
functions of first ``run_gd``, ``constrained_trajectory`` and Adam calls on a network
compile to the same instructions with and without these four. Numba's messages of the errors
that typing raises and catches are built without terminal markup
(:func:`_messages_unmarked_while_stabsim_compiles`). A helper is compiled once for
callers that differ only in their entry points, whoever's code it is
(:func:`_overloads_resolved_whatever_the_callers_entry_points`).

Run time. A stabsim function takes its arguments as its caller's references
(:func:`_arguments_borrowed`): Numba gives each argument a reference of its own, an atomic
update of every array in it at each call: GD on the scalar network at d = 10² made 258
updates a step at the edge of stability (a third of the step's time) and 86 at rest; 97
and 42 with the arguments borrowed, its anchored measurement a call rather than a splice
(:func:`stabsim._lanczos.anchored_top_eigenpair`) and Lanczos's step taking its
workspace's arrays one by one.

The rules the kernels follow:

- an engine's entry point is the engine itself (``gd_chunk = jit(gd_steps)``), not a
  wrapper that calls it;
- a kernel's helpers are :func:`inline` functions, not :func:`jit` dispatchers: a
  dispatcher called from compiled code is compiled once more for every literal value a
  caller passes it as a constant, and gets a Python wrapper no one calls;
- an :func:`inline` function or overload reached both from an entry point and from inside
  another overload (spliced in or not) was compiled twice (once per set of compiler flags
  it is reached with; a dispatcher is compiled once per signature whatever the flags), and
  still is where the two callers differ in an option it inherits, ``fastmath`` above all
  (:func:`_overloads_resolved_whatever_the_callers_entry_points`). So
  the engines' Lanczos measurement is an overload that is not inlined, the engines call a
  family's ``value_grad`` in the step itself (the overload that evaluates a measured step
  only forms the dense Hessian), and a loss family's functions, which are spliced into the
  engines, keep their large parts in dispatchers (a network's backpropagation pass, the
  regression model's passes over Q);
- such a dispatcher is ``jit(kernel_only=True)``: without a Python entry point of its own it
  gets no machine code of its own either, and its cache entry holds only its optimised code,
  which later kernels link in. Python reaches it, if at all, through a one-line kernel that
  :func:`entry_for` compiles on the first call from Python. Measured cold, alternating with
  the passes as plain dispatchers (two rounds): the first ``run_gd`` on the 1-6-6-6-1 network
  10.92, 11.30 → 10.64, 10.59 s, Adam 12.40, 12.62 → 11.45, 11.48 s, SGD 12.76, 12.15 →
  11.45, 11.35 s; ``compare``, which also calls the passes from Python, 16.33, 16.71 →
  16.50, 16.37 s;
- spliced code is compiled with its caller's options: a family function compiled with
  ``fastmath`` is called through its dispatcher instead (:mod:`stabsim.losses._protocol`),
  or its reductions would run in strict order inside the engines.
"""

from __future__ import annotations

import functools
import gc
import hashlib
import importlib
import os
import pickle
from pathlib import Path

import numba
from llvmlite import binding as llvm
from numba import _dynfunc
from numba.core import (
    codegen,
    compiler,
    cpu,
    errors,
    event,
    ir,
    lowering,
    postproc,
    registry,
    target_extension,
    targetconfig,
    transforms,
    types,
    utils,
)
from numba.core.caching import FunctionCache, IndexDataCacheFile
from numba.core.runtime import context as nrt_context
from numba.core.typing import npydecl, templates
from numba.extending import register_jitable

JIT_FLAGS = {"cache": True, "nogil": True, "error_model": "numpy", "no_cfunc_wrapper": True}
#: Numba options of the functions only kernels call (:func:`inline` helpers, overloads)
KERNEL_ONLY = {"error_model": JIT_FLAGS["error_model"], "no_cfunc_wrapper": True}
ARITH_FASTMATH = {"contract", "reassoc"}


class _TolerantIndex(IndexDataCacheFile):
    """A cache index that an unreadable file makes empty instead of failing.

    An index pickles the argument types of every compiled signature, stabsim's parameter
    records among them: after an upgrade that renames or removes a record class, Numba's own
    loader raises while unpickling (before it even compares the source stamp). Here that is a
    cache miss, and the kernel is compiled and the index rewritten.
    """

    def _load_index(self):
        try:
            return super()._load_index()
        except (AttributeError, ImportError, EOFError, pickle.UnpicklingError, TypeError,
                ValueError):
            return {}


_COMPILED_MARKERS = (b"@jit", b"@inline", b"overload(", b"register_family(")


def _sources_digest(compiled_only: bool, root: Path = Path(__file__).parent) -> str:
    """SHA-256 of the modules under ``root`` (stabsim's; their paths and bytes), or of
    those with compiled code."""
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        text = path.read_bytes()
        if not compiled_only or any(marker in text for marker in _COMPILED_MARKERS):
            digest.update(path.relative_to(root).as_posix().encode())
            digest.update(text)
    return digest.hexdigest()


@functools.lru_cache(maxsize=1)
def compiled_sources_stamp() -> str:
    """A hash of every stabsim module that holds compiled code.

    Numba stamps a cache entry with the kernel's own file only, so an engine compiled for a
    loss family would outlive an edit of the family's kernels (or of Lanczos) in another
    file. Every stabsim kernel is stamped with this instead: an edit of any file with compiled
    code recompiles them all, an edit of anything else recompiles nothing.
    """
    return _sources_digest(compiled_only=True)


@functools.lru_cache(maxsize=1)
def package_sources_stamp() -> str:
    """A hash of every stabsim module: what a sweep's chunks are keyed by besides its config
    (:attr:`stabsim.sweep.SweepConfig.key`), since the Python around the kernels (a cell's
    statistics, the classification) decides what a chunk holds as much as they do, and the
    version number stays the same between releases."""
    return _sources_digest(compiled_only=False)


class KernelCache(FunctionCache):
    """Numba's function cache with a :class:`_TolerantIndex`, stamped with
    :func:`compiled_sources_stamp` (and, for a user's loss family, with the family's sources
    and in a directory beside them: see :mod:`stabsim.losses._engines`)."""

    def __init__(self, py_func, directory=None, extra_stamp=()):
        super().__init__(py_func)
        if directory is not None:
            directory.mkdir(parents=True, exist_ok=True)
            self._cache_path = str(directory)
        stamp = (compiled_sources_stamp(), *extra_stamp)
        self._cache_file = _TolerantIndex(self._cache_path, self._impl.filename_base, stamp)


def _splice_without_compiling_alone():
    """Type stabsim's ``inline="always"`` functions from their spliced code alone.

    Numba types a call to an always-inlined overload (``register_jitable`` included) by
    first compiling its implementation on its own, through a dispatcher it makes for it:
    typing, lowering, LLVM optimisation and machine code for the function and everything it
    calls, linked in. It then types the implementation's IR again (that typing gives the
    call's signature) and splices it into the caller; the first compilation is never used.
    Here a dispatcher Numba makes for one of stabsim's implementations (a function defined
    in a stabsim module: the engines' helpers, the loss protocol's resolutions) is made
    unable to compile, so only the typing and the splice remain. Measured cold, CPU time:
    the first ``run_gd`` on the 1-6-6-6-1 network 36.3 → 25.3 s, because every protocol
    function spliced into an engine (a network's ``value_grad``, its linearised product)
    had been compiled alone with its whole pass linked in.

    This uses two private parts of Numba, checked on 0.68 (``_OverloadFunctionTemplate.
    _get_jit_decorator``, the dispatcher's ``_can_compile``); where they are missing,
    nothing changes and the kernels compile as Numba compiles them.
    """
    template = getattr(templates, "_OverloadFunctionTemplate", None)
    original = getattr(template, "_get_jit_decorator", None)
    if original is None or getattr(original, "splices_alone", False):
        return

    def _get_jit_decorator(self):
        jitter = original(self)
        if not self._inline.is_always_inline:
            return jitter

        def splicing_jitter(**options):
            decorate = jitter(**options)

            def make(pyfunc):
                dispatcher = decorate(pyfunc)
                if (getattr(pyfunc, "__module__", "") or "").startswith("stabsim.") \
                        and hasattr(dispatcher, "_can_compile"):
                    dispatcher._can_compile = False
                return dispatcher

            return make

        return splicing_jitter

    _get_jit_decorator.splices_alone = True
    template._get_jit_decorator = _get_jit_decorator


_splice_without_compiling_alone()

#: a library linked into a stabsim kernel holding more basic blocks than this (its functions
#: and everything linked into them) is linked after the kernel's optimisation
LATE_LINK_BLOCKS = 150
#: the functions (by qualified name) whose libraries are linked after a kernel's optimisation
#: whatever their size (:func:`inline` with ``link_late=True``)
_LINKED_LATE: set = set()
_STABSIM_SYMBOL = "_ZN7stabsim"  # how Numba's mangled names of stabsim's functions begin


def _link_large_libraries_after_optimising():
    """Link the large libraries below a stabsim kernel into it after its optimisation.

    Numba finalises a compiled function by linking in the LLVM modules of every function it
    calls, each already optimised and holding its own callees the same way, then running the
    whole optimisation pipeline over the result and making machine code for all of it. So
    every level above a network's backpropagation pass optimises the pass again: the first
    ``run_gd`` on a network spent 7.9 s of its 31 s in LLVM's optimisation, 5.2 s of it on
    code optimised before. Here a stabsim library links the modules of more than
    :data:`LATE_LINK_BLOCKS` basic blocks after its own optimisation instead, and the rest
    (small helpers, which the optimiser inlines) before it, as Numba does. The machine code
    is still made for everything, so the library stays self-contained, as Numba's cache
    needs. What is given up is any inlining of such a library's functions into the kernel,
    and whatever the optimiser would have made of them there; measured, it made nothing.

    Measured cold (CPU time of the process, alternating with Numba's own linking, two runs
    each): the first ``run_gd`` on the 1-6-6-6-1 network 31.0, 33.5 → 23.8, 21.0 s (LLVM's
    optimisation 7.9–8.6 → 2.4–2.9 s), on the regression model 13.8, 13.3 → 12.5, 11.8 s;
    ``run_adaptive`` (Adam) 16.5, 13.7 → 13.0, 12.3 s on the regression model and 36.4 → 30.2 s
    on the network. The results are the same bit for bit (GD on the regression model, a tanh
    network of d = 1201, the minimalist loss) and the steps take as long.

    Uses private parts of Numba's ``CPUCodeLibrary`` (checked on 0.68: ``finalize`` links
    ``_linking_libraries``, then calls ``_optimize_final_module``); where they are missing,
    nothing changes.
    """
    library_class = getattr(codegen, "CPUCodeLibrary", None)
    finalize = getattr(library_class, "finalize", None)
    optimize = getattr(library_class, "_optimize_final_module", None)
    if (finalize is None or optimize is None
            or not hasattr(library_class, "_get_module_for_linking")
            or getattr(finalize, "links_late", False)):
        return

    def finalize_linking_late(self):
        linking = getattr(self, "_linking_libraries", None)
        if not isinstance(linking, list) or not _reaches_stabsim_code(self):
            return finalize(self)
        self._stabsim_linked_late = [lib for lib in linking if lib.name in _LINKED_LATE
                                     or _blocks(lib) > LATE_LINK_BLOCKS]
        self._linking_libraries = [lib for lib in linking
                                   if lib not in self._stabsim_linked_late]
        try:
            finalize(self)
        finally:
            self._linking_libraries = linking

    def optimize_then_link(self):
        optimize(self)
        for library in dict.fromkeys(getattr(self, "_stabsim_linked_late", ())):
            if hasattr(self, "_reload_init"):  # what finalize does for a library it links
                self._reload_init.update(library._reload_init)
            self._final_module.link_in(library._get_module_for_linking(), preserve=True)

    finalize_linking_late.links_late = True
    library_class.finalize = finalize_linking_late
    library_class._optimize_final_module = optimize_then_link


def _reaches_stabsim_code(library) -> bool:
    """Whether ``library`` holds stabsim's code or links a library that does (the parts of a
    ``prange`` loop in a stabsim kernel: its body, which calls stabsim's functions, and the
    wrappers Numba builds around it; counted once a library)."""
    reaches = getattr(library, "_stabsim_reaches", None)
    if reaches is None:
        reaches = (any(_STABSIM_SYMBOL in function.name
                       for function in library._final_module.functions
                       if not function.is_declaration)
                   or any(_reaches_stabsim_code(linked)
                          for linked in getattr(library, "_linking_libraries", ())))
        library._stabsim_reaches = reaches
    return reaches


def _blocks(library) -> int:
    """Basic blocks of the module ``library`` is linked in as (counted once a library)."""
    count = getattr(library, "_stabsim_blocks", None)
    if count is None:
        count = sum(1 for function in library._get_module_for_linking().functions
                    for _ in function.blocks)
        library._stabsim_blocks = count
    return count


_link_large_libraries_after_optimising()


#: LLVM's optimisation level for the code compiled for stabsim (Numba's default is 3)
STABSIM_OPT_LEVEL = 1


def _compiled_module(ev) -> str:
    """The module of the function a ``numba:compile`` event is about ("" if none is named)."""
    data = ev.data if isinstance(ev.data, dict) else {}  # Numba's own events carry a dict
    function = getattr(data.get("dispatcher"), "py_func", None)
    return getattr(function, "__module__", None) or ""


class _StabsimCompiles(event.Listener):
    """Whether the function being compiled is stabsim's, or one of Numba's own compiled for a
    stabsim function (its implementation of a NumPy function a kernel calls). A user's
    function is not, even when a stabsim kernel calls it (a loss family of the user's)."""

    def __init__(self):
        self.stabsim = []

    def on_start(self, ev):
        module = _compiled_module(ev)
        if module.startswith("numba."):
            self.stabsim.append(self.active())
        else:
            self.stabsim.append(module.startswith("stabsim."))

    def on_end(self, ev):
        self.stabsim.pop()

    def active(self) -> bool:
        return bool(self.stabsim) and self.stabsim[-1]


#: whether the code Numba is compiling now is stabsim's (:class:`_StabsimCompiles`)
STABSIM_COMPILES = _StabsimCompiles()
event.register("numba:compile", STABSIM_COMPILES)


def _optimise_stabsim_code_at_level():
    """Optimise the code compiled for stabsim at :data:`STABSIM_OPT_LEVEL`.

    Applies to every pass Numba runs at its own level (``NUMBA_OPT``) while a stabsim
    function is compiled, and while Numba compiles its own implementations of the NumPy
    functions a stabsim function calls (:class:`_StabsimCompiles`); the cheap pass Numba runs
    first, at level 0, is left alone, and so is the level of the machine code. A user's
    function keeps Numba's level, even compiled for a stabsim kernel (a loss of the user's):
    only the kernel's passes over the code it links in, which holds the user's, run at this
    level. Code compiled for anything else keeps Numba's level, and so does every code where
    the environment sets ``NUMBA_OPT`` (a level asked for, as for debugging, is the level).

    Level 1 still simplifies, inlines and vectorises, and measured, the kernels' steps run as
    fast as at level 3 (below). Measured cold, alternating levels 3, 2 and 1 (CPU s, three runs
    each): the first ``run_gd`` on the 1-6-6-6-1 network 11.73, 11.94, 11.87 (3) → 11.54,
    11.50, 11.46 (2) → 10.79, 10.88, 11.35 (1). Warm, 3 → 1, in the same minutes:
    ``bench_gd.py``'s regression step 14.3–16.5 µs at every level (two modes, whatever the
    level); ``bench_matrix_free.py`` at d = 10³, 10⁵, 10⁶ 7.2, 727, 12,872 → 7.1, 730, 13,368
    µs; ``bench_networks.py`` on one thread 10,773, 8,355, 1,116, 783 → 10,887, 8,270, 1,125,
    808 µs; ``bench_adaptive.py`` on one thread 26,245, 22,286 → 26,471, 22,598 µs;
    ``bench_gd_sweep.py`` (60 × 60) 56.7 → 56.2 M steps/s. Results are the same bit for bit
    except where a kernel allows reassociation (:data:`ARITH_FASTMATH`), which each level may
    use differently: 300 steps of GD on that network and on the regression model and 100 of
    Adam on the network gave the same iterates and losses bit for bit at levels 1 and 3, and
    sharpnesses within 8.4e-16 of each other, relative (Lanczos's sums allow reassociation).

    Uses private parts of Numba (checked on 0.68: ``JITCPUCodegen._pass_builder``, called
    without ``opt`` for Numba's own level, and the ``numba:compile`` event of
    :data:`STABSIM_COMPILES`); where they are missing, nothing changes.
    """
    codegen_class = getattr(codegen, "JITCPUCodegen", None)
    pass_builder = getattr(codegen_class, "_pass_builder", None)
    if pass_builder is None or getattr(pass_builder, "stabsim_level", False):
        return

    def pass_builder_at_level(self, **kwargs):
        if ("opt" not in kwargs and STABSIM_COMPILES.active()
                and "NUMBA_OPT" not in os.environ):
            kwargs["opt"] = STABSIM_OPT_LEVEL
        return pass_builder(self, **kwargs)

    pass_builder_at_level.stabsim_level = True
    codegen_class._pass_builder = pass_builder_at_level


_optimise_stabsim_code_at_level()


def _no_lock_events_while_stabsim_compiles():
    """Leave out Numba's ``numba:llvm_lock`` events while stabsim code is compiled.

    llvmlite takes a lock around each of its calls into LLVM, and Numba has it call back into
    Python on every acquisition and release, to start and end a ``numba:llvm_lock`` event.
    The event goes to the timer of every compilation under way (one for each level of
    nesting: a kernel's helpers are compiled inside its own compilation), and each timer only
    adds up the time into its compile result's ``metadata["timers"]["llvm_lock"]``. A first
    ``run_gd`` on the 1-6-6-6-1 network makes about 42,000 LLVM calls, so 84,000 events.
    Here the two callbacks are skipped while :data:`STABSIM_COMPILES` says the code compiled
    now is stabsim's, and run as before otherwise: a user's function keeps its events, even
    when compiled for a stabsim kernel. What a stabsim kernel's ``llvm_lock`` timer then
    holds is the time of its user code's LLVM calls, if any (zero, or no entry, for the
    rest). Whether the events are left out is decided at the acquisition and remembered for
    the release, so that each event that starts also ends.

    Measured in that first ``run_gd``, timed around the callbacks: 0.26 s in them with
    Numba's, 0.02 s with these.

    Uses llvmlite's private lock object (``ffi.lib._lock._cblist``, checked on llvmlite
    0.50) and recognises Numba's callbacks by name (``_initialize_llvm_lock_event``, checked
    on Numba 0.68); where either is missing, nothing changes.
    """
    callbacks = getattr(getattr(getattr(llvm.ffi, "lib", None), "_lock", None), "_cblist",
                        None)
    if not isinstance(callbacks, list):
        return
    left_out = []

    def acquired(start):
        def on_acquire():
            quiet = STABSIM_COMPILES.active()
            left_out.append(quiet)
            if not quiet:
                start()

        on_acquire.stabsim_quiet = True
        return on_acquire

    def releasing(end):
        def on_release():
            if not left_out.pop():
                end()

        return on_release

    for i, (on_acquire, on_release) in enumerate(callbacks):
        if (getattr(on_acquire, "__qualname__", "").startswith("_initialize_llvm_lock_event.")
                and not getattr(on_acquire, "stabsim_quiet", False)):
            callbacks[i] = (acquired(on_acquire), releasing(on_release))


_no_lock_events_while_stabsim_compiles()

#: the youngest generation's threshold of Python's garbage collector while a stabsim kernel
#: compiles (Python's default is 700)
COMPILE_GC_THRESHOLD = 20_000


class _CollectingLessOften(event.Listener):
    """Raise the garbage collector's first threshold to :data:`COMPILE_GC_THRESHOLD` for the
    length of an outermost compilation of a stabsim function, and set it back after.

    Numba's compiler allocates millions of short-lived objects, and every 100 collections of
    the youngest generation Python collects the oldest one: the whole heap, which Numba and
    SciPy fill with some 250,000 objects. In a first ``run_gd`` on the 1-6-6-6-1 network the
    collector took 1.1 s (10 full collections 0.8–0.9 s); at a threshold of 20,000 it takes
    0.3–0.4 s (one or two full collections, 0.01–0.05 s), and the peak resident memory grows
    from 269 to about 280 MB (measured with ``gc.callbacks``, two runs each; 2,000: 0.6 s,
    5,000: 0.3 s, and with the collector off 0.04 s but 367 MB). Only the collector's
    schedule changes: what it would have freed during the compilation it frees later. A
    threshold a user set higher stays, a collector a user disabled stays disabled, and
    compilations of anything else keep the user's threshold.
    """

    def __init__(self):
        self.depth = 0
        self.saved = None

    def on_start(self, ev):
        self.depth += 1
        if self.depth == 1 and gc.isenabled() and _compiled_module(ev).startswith("stabsim."):
            self.saved = gc.get_threshold()
            gc.set_threshold(max(self.saved[0], COMPILE_GC_THRESHOLD), *self.saved[1:])

    def on_end(self, ev):
        self.depth -= 1
        if self.depth == 0 and self.saved is not None:
            gc.set_threshold(*self.saved)
            self.saved = None


event.register("numba:compile", _CollectingLessOften())


def _no_machine_code_when_only_linked():
    """Make no machine code for a stabsim function that only other kernels link in.

    Numba makes machine code for every function it compiles, the helpers compiled only to be
    linked into their callers included (Lanczos, a loss family's overloads, the engines'
    helpers: none has a Python entry point), so that code is made once at every level of the
    call tree. Here a library of a stabsim function without Python entry point is linked and
    optimised as before but kept out of the execution engine; its machine code is made if
    anything asks for an address in it (then its environment is set, as Numba does at once).
    The kernels that call it carry their own copy, exactly as they do when loaded from the
    cache, where only the entry point's library is loaded. Measured cold, alternating with
    Numba's own finalisation: LLVM's machine-code generation in the first ``run_gd`` on the
    regression model 2.38 → 0.98 s, on the 1-6-6-6-1 network 7.22 → 4.12 s, in Adam's first
    call 3.50 → 1.53 s; the process's CPU time for Adam 14.1–14.5 → 11.5–12.9 s. The results
    are the same bit for bit.

    Such a function that is cached on its own (a ``jit(kernel_only=True)`` dispatcher) is
    cached as its optimised LLVM module (Numba's "bitcode" kind) rather than as machine code,
    and loaded so, with its machine code pending again: a later process that compiles a new
    kernel on it links the module in and makes no code for it alone (Numba loads a bitcode
    entry by making its code at once). The environments Numba sets on loading it wait for
    that code too (it writes them into the code's global variables).

    Uses private parts of Numba (checked on 0.68: ``CPUContext.get_executable``,
    ``_finalize_final_module``, which adds the module to the engine and makes its code with
    ``_finalize_specific``, ``CPUCodeLibrary._unserialize`` and ``JITCPUCodegen.set_env``);
    where they are missing, nothing changes.
    """
    library_class = getattr(codegen, "JITCodeLibrary", None)
    finalize_module = getattr(codegen.CPUCodeLibrary, "_finalize_final_module", None)
    get_executable = getattr(cpu.CPUContext, "get_executable", None)
    if (library_class is None or finalize_module is None or get_executable is None
            or not hasattr(library_class, "_finalize_specific")
            or not isinstance(codegen.CPUCodeLibrary.__dict__.get("_unserialize"), classmethod)
            or not hasattr(getattr(codegen, "JITCPUCodegen", None), "set_env")
            or getattr(get_executable, "defers_machine_code", False)):
        return
    get_pointer = library_class.get_pointer_to_function
    serialize = codegen.CPUCodeLibrary.serialize_using_object_code
    serialize_bitcode = codegen.CPUCodeLibrary.serialize_using_bitcode
    unserialize = codegen.CPUCodeLibrary._unserialize.__func__
    set_env = codegen.JITCPUCodegen.set_env

    def get_executable_deferring(self, library, fndesc, env):
        if ((library._finalized and not _machine_code_pending(library))
                or not _only_linked(library, fndesc)):
            return get_executable(self, library, fndesc, env)
        library._stabsim_environment = (self.get_env_name(fndesc), env)
        library._ensure_finalized()
        # what Numba's get_executable returns for a function without Python entry point
        return _dynfunc.make_function(fndesc.lookup_module(), fndesc.qualname.split(".")[-1],
                                      f"compiled wrapper for {fndesc.qualname!r}", 0, env,
                                      (library,))

    def finalize_module_deferring(self):
        if (getattr(self, "_stabsim_environment", None) is None
                and not _machine_code_pending(self)
                and not _is_stabsim_parallel_loop(self)):
            return finalize_module(self)
        codegen_ = self._codegen
        codegen_._add_module = _skip
        self._finalize_specific = _skip
        try:
            finalize_module(self)
        finally:
            del codegen_._add_module
            del self._finalize_specific
        self._stabsim_machine_code_pending = True

    def get_pointer_making_code(self, name):
        self._ensure_finalized()
        _make_pending_machine_code(self)
        return get_pointer(self, name)

    def serialize_making_code(self):
        self._ensure_finalized()
        if _machine_code_pending(self):
            return serialize_bitcode(self)
        return serialize(self)

    def unserialize_deferring(cls, codegen_, state):
        name, kind, data = state
        if kind != "bitcode":
            return unserialize(cls, codegen_, state)
        # as Numba loads a module of bitcode, but with its machine code left pending when no
        # Python entry point is in it (only kernels link it in, and they carry its code)
        library = codegen_.create_library(name)
        library._final_module = llvm.parse_bitcode(data)
        if not any(function.name.startswith(_CPYTHON_WRAPPER)
                   for function in library._final_module.functions
                   if not function.is_declaration):
            library._stabsim_machine_code_pending = True
        library._finalize_final_module()
        return library

    def set_env_when_defined(self, env_name, env):
        # the environment of a function in a library whose machine code is pending: set when
        # the code is made (_make_pending_machine_code), as Numba sets it when the code exists
        if self._engine.get_global_value_address(env_name) == 0:
            self.__dict__.setdefault("_stabsim_pending_environments", {})[env_name] = env
            return
        set_env(self, env_name, env)

    get_executable_deferring.defers_machine_code = True
    cpu.CPUContext.get_executable = get_executable_deferring
    codegen.CPUCodeLibrary._finalize_final_module = finalize_module_deferring
    library_class.get_pointer_to_function = get_pointer_making_code
    codegen.CPUCodeLibrary.serialize_using_object_code = serialize_making_code
    codegen.CPUCodeLibrary._unserialize = classmethod(unserialize_deferring)
    codegen.JITCPUCodegen.set_env = set_env_when_defined


def _only_linked(library, fndesc) -> bool:
    """Whether only the kernels that link ``library`` in run its code: a stabsim function
    without Python entry point, or the body of a ``prange`` loop of a stabsim kernel."""
    if fndesc.modname.startswith("stabsim."):
        return not _defines(library, fndesc.llvm_cpython_wrapper_name)
    return _is_stabsim_parallel_loop(library)


#: in the name of every function Numba makes for a ``prange`` loop: the loop's body and the
#: two wrappers that run it on the threads, each compiled into a library of its own that the
#: kernel links in (and nothing calls otherwise)
_PARALLEL_LOOP_MARK = "__numba_parfor_gufunc"


def _is_stabsim_parallel_loop(library) -> bool:
    return _reaches_stabsim_code(library) and any(
        _PARALLEL_LOOP_MARK in function.name for function in library._final_module.functions
        if not function.is_declaration)


def _defines(library, name) -> bool:
    try:
        return not library._final_module.get_function(name).is_declaration
    except NameError:
        return False


def _skip(*_):
    return None


def _machine_code_pending(library) -> bool:
    return library.__dict__.get("_stabsim_machine_code_pending", False)


#: how the names of Numba's Python entry points begin (itanium-mangled in namespace cpython)
_CPYTHON_WRAPPER = "_ZN7cpython"


def _make_pending_machine_code(library):
    if library.__dict__.pop("_stabsim_machine_code_pending", False):
        codegen_ = library._codegen
        codegen_._add_module(library._final_module)
        library._finalize_specific()
        environment = getattr(library, "_stabsim_environment", None)
        if environment is not None:  # a prange loop's wrappers have none
            codegen_.set_env(*environment)
        pending = codegen_.__dict__.get("_stabsim_pending_environments", {})
        for name in list(pending):
            if codegen_._engine.get_global_value_address(name) != 0:
                codegen_.set_env(name, pending.pop(name))


_no_machine_code_when_only_linked()


def _compiler_flags_compared_quickly():
    """Hash and compare Numba's compiler flags without reading every option of both.

    Resolving a call to an overload, Numba looks its implementation up in a dict keyed by
    the argument types and the compiler flags. ``TargetConfig.__hash__`` is that of the
    sorted option names (the same for every instance of a class: it sorts the keys of
    ``values()``), yet it builds ``values()``, reading each of some forty options through a
    property; ``__eq__`` builds ``values()`` of both sides. A first ``run_gd`` on a network
    makes about 16,500 such look-ups and 22,000 comparisons. Here the hash is that same
    number, computed once per class, and two instances of a class compare equal when the
    options set on either side read the same on both (an option set on neither reads as its
    default on both): the same answer as comparing ``values()``, from the few options set
    rather than all forty. About 70% of the 32,000 comparisons of a first ``run_gd`` on a
    network are between flags that differ, which read every option of both before: 0.23 s
    of the process, 0.07 s since (timed around ``__eq__``). The hash is checked
    against Numba's own on a fresh instance before anything changes (uses ``TargetConfig``'s
    private ``_values``, checked on 0.68); where it differs, nothing changes, and a class
    whose options are not all read as Numba's metaclass makes them is compared by
    ``values()``.
    """
    config_class = getattr(targetconfig, "TargetConfig", None)
    flags_class = getattr(compiler, "Flags", None)
    if (config_class is None or flags_class is None
            or getattr(config_class.__eq__, "compares_quickly", False)):
        return
    hash_of = config_class.__hash__
    equal = config_class.__eq__
    try:
        if hash_of(flags_class()) != hash(tuple(sorted(flags_class.options))):
            return
    except (AttributeError, TypeError):
        return
    hashes = {}

    def hash_of_names(self):
        cls = type(self)
        value = hashes.get(cls)
        if value is None:
            value = hashes[cls] = hash(tuple(sorted(cls.options)))
        return value

    def equal_quickly(self, other):
        cls = type(self)
        if cls is not type(other) or not isinstance(other, config_class):
            return equal(self, other)
        mine, theirs = self._values, other._values
        if mine == theirs:
            return True
        defaults = _plain_defaults(cls)
        if defaults is None:
            return equal(self, other)
        # an option set on neither side reads as its default on both
        return all(mine.get(name, defaults[name]) == theirs.get(name, defaults[name])
                   for name in mine.keys() | theirs.keys())

    equal_quickly.compares_quickly = True
    config_class.__hash__ = hash_of_names
    config_class.__eq__ = equal_quickly


_compiler_flags_compared_quickly()

#: compiler options that shape only the function's own entry points, which a function it
#: calls neither inherits nor sees
_ENTRY_POINT_OPTIONS = ("no_cpython_wrapper", "no_cfunc_wrapper", "release_gil")


def _overloads_resolved_whatever_the_callers_entry_points():
    """Resolve a call to an overload once for callers that differ only in their entry points.

    Numba keys the implementation it compiles for a call to an overload (a
    ``register_jitable`` function, an ``@overload``, its own NumPy functions) by the caller's
    compiler flags, all of them. A stabsim kernel with a Python entry point (``jit``), one
    without (``kernel_only``) and an :func:`inline` helper differ in the options that make
    the caller's own entry points (:data:`_ENTRY_POINT_OPTIONS`), so the same helper with
    the same argument types was compiled once for each kind of caller. The implementation
    inherits from its caller only ``nrt``, ``fastmath``, ``error_model`` and
    ``forceinline`` (Numba's ``CPUTargetOptions.finalize``), and those options are left as
    they are: here the flags the lookup keys by, and that the implementation inherits from,
    are the caller's with the entry-point options unset. Counted by Numba's compile events:
    a first ``run_gd`` on the 1-6-6-6-1 network compiled 72 functions, now 65 (the seven
    left out took 15–40 ms each); a first ``compare`` on it 94, now 84.

    Uses Numba's private ``_OverloadFunctionTemplate._get_impl`` and ``ConfigStack``
    (checked on 0.68); where they are missing, nothing changes.
    """
    template = getattr(templates, "_OverloadFunctionTemplate", None)
    original = getattr(template, "_get_impl", None)
    stack_class = getattr(targetconfig, "ConfigStack", None)
    if (original is None or stack_class is None
            or getattr(original, "keys_without_entry_points", False)):
        return
    last = [(None, None)]  # the caller's flags seen last, and their form without entry points

    def without_entry_points(flags):
        seen, plain = last[0]
        if seen is not flags:
            plain = None
            if any(flags.is_set(name) for name in _ENTRY_POINT_OPTIONS):
                plain = flags.copy()
                for name in _ENTRY_POINT_OPTIONS:
                    plain.discard(name)
            last[0] = flags, plain
        return plain

    def _get_impl(self, args, kws):
        flags = stack_class.top_or_none()
        plain = None if flags is None else without_entry_points(flags)
        if plain is None:
            return original(self, args, kws)
        with stack_class().enter(plain):
            return original(self, args, kws)

    _get_impl.keys_without_entry_points = True
    template._get_impl = _get_impl


_overloads_resolved_whatever_the_callers_entry_points()


@functools.cache
def _plain_defaults(cls):
    """The default of every option of the ``TargetConfig`` class ``cls``, if each option is
    read as Numba's metaclass makes it (``_values.get(name, default)``), else None."""
    defaults = {}
    for name, option in cls.options.items():
        getter = getattr(getattr(cls, name, None), "fget", None)
        if getattr(getter, "__qualname__", "") != "_MetaTargetConfig.__init__.<locals>." \
                                                  "make_prop.<locals>.getter":
            return None
        defaults[name] = option.default
    return defaults


def _cached_libraries_keep_their_reload_hooks():
    """Give a function loaded from the disk cache the reload hooks its entry holds.

    A function with a ``prange`` loop needs Numba's threads started before it runs: its
    compile result carries a hook that does it (``reload_init``), run when its cache entry is
    loaded, and every kernel that links the function in inherits the hook from the linked
    library, into its own cache entry. A library loaded from the cache has no hooks (Numba
    keeps them on the compile result only), so a kernel compiled in a process that had loaded
    the parallel function from the cache was cached without the hook, and loaded alone in a
    later process it ran the loop without threads: a segmentation fault. (With stabsim's
    networks in blocks: ``run_gd``, then ``run_adaptive`` in a second process, then
    ``run_adaptive`` again in a third.) Here the loaded library gets its entry's hooks.

    Uses Numba's private ``CompileResult._rebuild`` and ``CodeLibrary._reload_init``,
    checked on 0.68; where they are missing, nothing changes.
    """
    result_class = getattr(compiler, "CompileResult", None)
    rebuild = getattr(result_class, "__dict__", {}).get("_rebuild")
    if not isinstance(rebuild, classmethod) or getattr(rebuild.__func__, "keeps_hooks", False):
        return

    def rebuild_keeping_hooks(cls, *args, **kwargs):
        result = rebuild.__func__(cls, *args, **kwargs)
        hooks = getattr(result.library, "_reload_init", None)
        if isinstance(hooks, set) and result.reload_init:
            hooks.update(result.reload_init)
        return result

    rebuild_keeping_hooks.keeps_hooks = True
    result_class._rebuild = classmethod(rebuild_keeping_hooks)


_cached_libraries_keep_their_reload_hooks()


def _operators_on_scalars_not_typed_as_ufuncs():
    """Type an arithmetic or comparison operator on scalars without NumPy's ufunc loops.

    Typing ``a + b``, Numba tries its template for NumPy arrays too, which finds NumPy's
    loop for the argument types and only then turns the operator down when no argument is
    an array. While stabsim code is compiled (:data:`STABSIM_COMPILES`), an operator with no
    array argument is turned down before the search: the answer is the same, a ``None``
    that sends typing on to the scalar templates. A first ``run_gd`` on the 1-6-6-6-1
    network asks the template about 3,900 operators on scalars, which took 0.18 s (timed
    around it).

    Uses ``NumpyRulesArrayOperator`` of ``numba.core.typing.npydecl`` (checked on 0.68);
    where it is missing, nothing changes.
    """
    rules = getattr(npydecl, "NumpyRulesArrayOperator", None)
    generic = getattr(rules, "generic", None)
    if generic is None or getattr(generic, "scalars_turned_down", False):
        return

    def generic_turning_scalars_down(self, args, kws):
        if STABSIM_COMPILES.active() and not any(
                isinstance(arg.type if isinstance(arg, types.Optional) else arg,
                           types.ArrayCompatible) for arg in args):
            return None
        return generic(self, args, kws)

    generic_turning_scalars_down.scalars_turned_down = True
    rules.generic = generic_turning_scalars_down


_operators_on_scalars_not_typed_as_ufuncs()


def _reference_counts_read_only_the_meminfos():
    """Take a value's meminfos out of only the members that hold one.

    To change the reference counts of a value, Numba finds its meminfos by taking every
    member out of it, recursively: an array's seven members and the entries of its shape and
    strides, for the one meminfo among them. Each is an LLVM instruction that Numba builds
    and writes out in Python, and that LLVM parses and then removes as unused. While
    stabsim code is compiled (:data:`STABSIM_COMPILES`), only the members whose type holds
    a meminfo are taken out, found once per type; the meminfos found, and their order, are
    the same. A first ``run_gd`` on the 1-6-6-6-1 network generates 62,500 lines of LLVM
    IR instead of 81,700.

    Uses ``NRTContext.get_meminfos`` and the data models' ``traverse`` (checked on 0.68);
    where they are missing, nothing changes.
    """
    context_class = getattr(nrt_context, "NRTContext", None)
    get_meminfos = getattr(context_class, "get_meminfos", None)
    if get_meminfos is None or getattr(get_meminfos, "reads_only_meminfos", False):
        return
    holds = {}  # per data model manager, whether a type holds a meminfo anywhere inside it

    def holds_meminfo(models, typ, builder):
        known_here = holds.setdefault(models, {})
        known = known_here.get(typ)
        if known is None:
            known_here[typ] = True  # a type met again while it is being looked into
            model = models[typ]
            known = model.has_nrt_meminfo() or any(
                holds_meminfo(models, member, builder) for member, _ in model.traverse(builder))
            known_here[typ] = known
        return known

    def get_meminfos_of_holders(self, builder, typ, value):
        if not STABSIM_COMPILES.active():
            return get_meminfos(self, builder, typ, value)
        models = self._context.data_model_manager
        model = models[typ]
        meminfos = [(typ, model.get_nrt_meminfo(builder, value))] if model.has_nrt_meminfo() \
            else []
        for member, take_out in model.traverse(builder):
            if holds_meminfo(models, member, builder):
                meminfos.extend(get_meminfos_of_holders(self, builder, member, take_out(value)))
        return meminfos

    get_meminfos_of_holders.reads_only_meminfos = True
    context_class.get_meminfos = get_meminfos_of_holders


_reference_counts_read_only_the_meminfos()


def _arguments_borrowed():
    """Take the arguments of a stabsim function as the caller's references, not new ones.

    Numba gives each argument a reference of its own as it binds it to the function's
    variable (an atomic increment of every meminfo in it: a workspace of nine arrays is nine)
    and drops it where that variable dies. The caller holds each argument for the whole
    call, so while stabsim code is compiled (:data:`STABSIM_COMPILES`) the variable an
    argument is bound to, where nothing else defines it, takes neither. Every way its value
    leaves the variable takes a reference of its own as before: a copy into another
    variable (a loop's merge of values included), a tuple or a return (Numba's cast of the
    returned value).

    Wraps ``Lower.lower_assign`` (its binding of an ``ir.Arg``) and ``Lower.delvar`` (its
    decrement), checked on Numba 0.68.
    """
    lower_assign, delvar = lowering.Lower.lower_assign, lowering.Lower.delvar
    if getattr(lower_assign, "borrows_arguments", False):
        return

    def assignments(blocks, counts, arguments):
        # every assignment of the IR being lowered, a parallel loop's body included (the
        # IR's own table of definitions is not kept up to date by every pass)
        for block in blocks:
            for inst in block.body:
                if isinstance(inst, ir.Assign):
                    counts[inst.target.name] = counts.get(inst.target.name, 0) + 1
                    if isinstance(inst.value, ir.Arg):
                        arguments.append(inst.target.name)
                body = getattr(inst, "loop_body", None)  # a parfor's
                if body is not None:
                    assignments([inst.init_block, *body.values()], counts, arguments)

    def borrowed(self):
        names = self.__dict__.get("_stabsim_borrowed")
        if names is None:
            names = set()
            if STABSIM_COMPILES.active():
                counts, arguments = {}, []
                assignments(self.func_ir.blocks.values(), counts, arguments)
                names = {name for name in arguments if counts[name] == 1}
            self._stabsim_borrowed = names
        return names

    def lower_assign_borrowing(self, ty, inst):
        if isinstance(inst.value, ir.Arg) and inst.target.name in borrowed(self):
            self.incref = _skip
            try:
                return lower_assign(self, ty, inst)
            finally:
                del self.incref
        return lower_assign(self, ty, inst)

    def delvar_borrowing(self, name):
        if name in borrowed(self):
            self.decref = _skip
            try:
                return delvar(self, name)
            finally:
                del self.decref
        return delvar(self, name)

    lower_assign_borrowing.borrows_arguments = True
    lower_assign_borrowing.numbas, delvar_borrowing.numbas = lower_assign, delvar
    lowering.Lower.lower_assign = lower_assign_borrowing
    lowering.Lower.delvar = delvar_borrowing


_arguments_borrowed()


def _post_processing_without_unread_analyses():
    """Post-process a nopython function's IR without the analyses nothing reads there.

    Numba post-processes a function's IR after each pass that changes it, about 14 times per
    function. Each time it computes the control-flow graph, every block's uses and
    definitions, the live and dead variables, and from them the variables alive on entry to
    each block (``block_entry_vars``). Of these, only object mode's lowering and generators
    read the variables alive on entry, and the rest is read only by some passes and
    transforms, through ``variable_lifetime``, whose properties Numba computes when first
    read (``functools.cached_property``). While stabsim code is compiled in nopython mode
    (:data:`STABSIM_COMPILES`, the compiler flags neither forcing nor allowing object mode,
    not a generator), post-processing leaves these to be computed when read.

    What the readers get is what they got: in Numba 0.68, outside tests, ``variable_lifetime``
    is read right after a post-processing (the deletion of dead variables that it runs
    itself; with-lifting, which post-processes just before, and reads first before it
    changes any block), or by parts that stabsim's compilations never run (loop-lifting in
    object mode, ``literal_unroll``). The functions of a first ``run_gd`` on a network
    compile to the same instructions with and without this. In that ``run_gd``,
    post-processing took 0.60 s in its 970 runs, and 0.25 s since (timed around it).

    Uses ``PostProcessor.run`` and ``VariableLifetime`` of ``numba.core.postproc`` and
    ``ConfigStack`` (checked on 0.68); where they are missing, nothing changes.
    """
    processor = getattr(postproc, "PostProcessor", None)
    run = getattr(processor, "run", None)
    lifetime = getattr(postproc, "VariableLifetime", None)
    stack_class = getattr(targetconfig, "ConfigStack", None)
    if (run is None or lifetime is None or stack_class is None
            or getattr(run, "leaves_analyses_unread", False)):
        return

    def nopython(flags):
        return (flags is not None and not flags.enable_pyobject
                and not flags.force_pyobject)

    def run_without_unread_analyses(self, emit_dels=False, extend_lifetimes=False):
        function_ir = self.func_ir
        if (not STABSIM_COMPILES.active() or function_ir.is_generator
                or not nopython(stack_class.top_or_none())):
            return run(self, emit_dels, extend_lifetimes)
        function_ir.blocks = transforms.canonicalize_cfg(function_ir.blocks)
        function_ir.variable_lifetime = lifetime(function_ir.blocks)
        function_ir.block_entry_vars = {}  # a reader fails rather than reads an earlier IR's
        function_ir.generator_info = None
        if emit_dels:
            self._insert_var_dels(extend_lifetimes=extend_lifetimes)

    run_without_unread_analyses.leaves_analyses_unread = True
    processor.run = run_without_unread_analyses


_post_processing_without_unread_analyses()


def _calls_typed_by_the_template_that_typed_them_before():
    """Type a call to a function again by the template that typed it before.

    Numba types a call to a function (an operator, a builtin, a NumPy function) by trying the
    function's templates in order until one gives a signature. ``a[i]`` has about 20
    templates ahead of the one for arrays, and a first ``run_gd`` on the 1-6-6-6-1 network
    types 4,730 calls with 38,400 templates turned down, for only 246 different pairs of
    function and argument types. While stabsim code is compiled (:data:`STABSIM_COMPILES`),
    the template (and literal or not) that gave the signature is remembered for the function,
    the target and the argument types, and tried first next time; the templates before it
    would be turned down again (they answer from the types alone). The template still runs,
    so an overload still compiles its implementation for the flags of the caller. The first
    time the templates are tried in Numba's order, literal arguments first where a template
    prefers them; where no template answers, or the remembered one gives no signature now,
    Numba's own search runs, which also raises Numba's error.

    Uses ``BaseFunction.get_call_type``, ``_unlit_non_poison``, ``get_local_target`` and
    ``order_by_target_specificity`` (checked on 0.68); where they are missing, nothing
    changes.
    """
    function_class = getattr(types.functions, "BaseFunction", None)
    get_call_type = getattr(function_class, "get_call_type", None)
    unliteral = getattr(types.functions, "_unlit_non_poison", None)
    target_of = getattr(target_extension, "get_local_target", None)
    in_order = getattr(utils, "order_by_target_specificity", None)
    if (None in (get_call_type, unliteral, target_of, in_order)
            or getattr(get_call_type, "remembers_templates", False)):
        return
    answered = {}  # (function, target, argument types) → (template class, literal or not)

    def signature_from(template, args, kws, literal):
        try:
            if literal:
                return template.apply(args, kws)
            return template.apply(tuple(unliteral(a) for a in args),
                                  {k: unliteral(v) for k, v in kws.items()})
        except errors.NumbaError:
            return None

    def get_call_type_remembering(self, context, args, kws):
        if not STABSIM_COMPILES.active():
            return get_call_type(self, context, args, kws)
        target = target_of(context)
        key = (self, target, args, tuple(sorted(kws.items())))
        known = answered.get(key)
        templates = [known[0]] if known else in_order(target, self.templates, fnkey=self.key[0])
        self._depth += 1  # as in Numba's search, for the messages of nested failures
        try:
            for template_class in templates:
                template = template_class(context)
                if known:
                    choices = (known[1],)
                else:  # Numba's order: literal arguments first where the template prefers them
                    choices = (True, False) if template.prefer_literal else (False, True)
                for literal in choices:
                    signature = signature_from(template, args, kws, literal)
                    if signature is not None:
                        self._impl_keys[signature.args] = template.get_impl_key(signature)
                        answered[key] = template_class, literal
                        return signature
        finally:
            self._depth -= 1
        return get_call_type(self, context, args, kws)

    get_call_type_remembering.remembers_templates = True
    function_class.get_call_type = get_call_type_remembering


_calls_typed_by_the_template_that_typed_them_before()


def _messages_unmarked_while_stabsim_compiles():
    """Build Numba's messages without terminal markup while stabsim code compiles.

    Where colorama is installed (on Windows it comes with tqdm; the Anaconda distribution
    holds it), Numba marks up every message of its errors for the terminal, and for each it
    sets up and tears down colorama's wrappers of ``sys.stdout`` and ``sys.stderr``. Typing
    raises and catches thousands of such errors that nobody reads: a template that turns
    arguments down, a global that is not a value. A first ``run_gd`` on the 1-6-6-6-1
    network builds about 12,000 messages. While stabsim code is compiled
    (:data:`STABSIM_COMPILES`) they are built plain, as Numba builds them without colorama;
    a message of an error that does reach the user then has no bold face. Measured cold with
    colorama installed, alternating: 8.37, 8.27, 8.39 → 8.07, 7.96, 8.16 s of CPU.

    Uses ``HighlightColorScheme._markup`` of ``numba.core.errors`` (checked on 0.68), defined
    only where colorama is installed; elsewhere nothing changes.
    """
    scheme = getattr(errors, "HighlightColorScheme", None)
    markup = getattr(scheme, "_markup", None)
    if markup is None or getattr(markup, "plain_while_stabsim_compiles", False):
        return

    @functools.wraps(markup)
    def markup_unless_stabsim_compiles(self, msg, *args, **kwargs):
        if STABSIM_COMPILES.active():
            return msg
        return markup(self, msg, *args, **kwargs)

    markup_unless_stabsim_compiles.plain_while_stabsim_compiles = True
    scheme._markup = markup_unless_stabsim_compiles


_messages_unmarked_while_stabsim_compiles()


class KernelOnlyDispatcher(registry.CPUDispatcher):
    """A dispatcher compiled without a Python entry point (``jit(kernel_only=True)``): a call
    from Python goes to the kernel :func:`entry_for` gave it, and raises ``TypeError``
    without one."""

    python_entry = None

    def __call__(self, *args, **kwargs):
        if self.python_entry is None:
            raise TypeError(f"{self.py_func.__qualname__} is called only from compiled kernels")
        return self.python_entry(*args, **kwargs)

    def __reduce__(self):
        # by name, as a function is: Numba would pickle the compiled function and make a new
        # dispatcher of it in the other process, without its entry point and its cache
        return _kernel_only_named, (self.py_func.__module__, self.py_func.__qualname__)


def _kernel_only_named(module, qualname):
    """The :class:`KernelOnlyDispatcher` ``qualname`` of ``module`` (how one is unpickled)."""
    return functools.reduce(getattr, qualname.split("."), importlib.import_module(module))


def entry_for(kernel):
    """Compile the decorated function, a one-line call of the :class:`KernelOnlyDispatcher`
    ``kernel``, as ``kernel``'s entry point from Python.

    Its machine code holds ``kernel``'s, made when Python first calls it: a process that
    only runs kernels never makes machine code for ``kernel`` alone."""

    def wrap(f):
        kernel.python_entry = jit(f)
        return kernel.python_entry

    return wrap


def jit(func=None, *, parallel=False, fastmath=False, inline=False, kernel_only=False):
    """Compile ``func`` with the package-wide flags (usable bare or with options).

    ``kernel_only=True``: no Python entry point, for a function that kernels call (Python
    calls it through :func:`entry_for`, or not at all). Its compiled form is linked into
    those kernels and cached without machine code of its own
    (:func:`_no_machine_code_when_only_linked`).

    ``inline=True``: a call from another kernel splices the function's body into the caller
    before typing (Numba's ``inline="always"`` on a dispatcher), so it is no separate
    function there (calls from Python are compiled as usual).
    """

    def wrap(f):
        flags = dict(JIT_FLAGS, parallel=parallel)
        if fastmath:
            flags["fastmath"] = ARITH_FASTMATH
        if inline:
            flags["inline"] = "always"
        if kernel_only:
            flags["no_cpython_wrapper"] = True
        kernel = numba.njit(**flags)(f)
        kernel._cache = KernelCache(kernel.py_func)
        if kernel_only:
            kernel.__class__ = KernelOnlyDispatcher
        return kernel

    return wrap if func is None else wrap(func)


def inline(func=None, *, fastmath=False, always=False, link_late=False):
    """Make ``func`` callable from kernels, compiled into each caller rather than on its own.

    A helper that calls a loss must be one of these, not a :func:`jit` dispatcher: a
    dispatcher would compile (and cache, in its own shared index) one copy per loss
    family, user families included, whereas an inline helper is part of the caller's
    machine code and of the caller's cache entry (see :mod:`stabsim.losses._engines`).

    It is still a function of its own inside that code, which LLVM may not inline: a call
    costs the call (its arrays' references are the caller's: :func:`_arguments_borrowed`).
    ``always=True`` inlines the helper's body into every caller (Numba's
    ``inline="always"``): for small helpers of a step's hot path. A splice binds each
    parameter to a variable of the caller, which takes a reference of every array in it (an
    atomic update, which LLVM removes only where no call or branch comes between it and the
    variable's end), so a helper that takes a workspace of many arrays and calls others is
    cheaper as a function. A helper with only scalars in and out is small enough for LLVM to
    inline it, so it stays a function: each splice costs Numba a typing pass at the call
    site (the 2 × 2 eigenvalue helpers of :mod:`stabsim._lanczos` as splices made
    a cold first ``run_gd`` on the regression model 6.7–7.2 s of CPU instead of 6.1–6.4 s,
    with steps and sweeps as fast either way).

    ``link_late=True`` links the helper into its callers after their optimisation, as a
    large library is (:func:`_link_large_libraries_after_optimising`), however small it is:
    for vectorised loops that gain nothing from being optimised again inside each caller
    (Lanczos's sweeps over the basis: 0.2–0.3 s of a first ``run_gd``).
    """

    def wrap(f):
        if link_late:
            _LINKED_LATE.add(f.__qualname__)
        flags = dict(KERNEL_ONLY)
        if fastmath:
            flags["fastmath"] = ARITH_FASTMATH
        if always:
            flags["inline"] = "always"
        return register_jitable(**flags)(f)

    return wrap if func is None else wrap(func)
