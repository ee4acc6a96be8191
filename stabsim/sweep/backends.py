"""Where chunks run: this process (Numba threads over the cores) or a Dask cluster.

Both backends run the same function, ``compute.compute_chunk``, and yield
``(index, arrays)`` pairs as chunks finish; the caller stores them. Dask is imported only
when a Dask backend is made (it is an optional extra: ``pip install stabsim[dask]``).
"""

from __future__ import annotations

import importlib

from .compute import compute_chunk


def local_chunks(config, indices):
    """Compute the chunks one after another here; each uses every Numba thread."""
    for index in indices:
        yield index, compute_chunk(config, index)


def _dask_task(config, index):
    """``compute_chunk`` on a Dask worker, with as many Numba threads as the worker has.

    A worker with one thread then runs single-threaded kernels, so several worker
    processes on one machine do not oversubscribe its cores.
    """
    import numba
    from distributed import get_worker

    worker = get_worker()
    _import_factory_module(config, worker.address)
    threads = worker.state.nthreads
    numba.set_num_threads(max(1, min(threads, numba.config.NUMBA_NUM_THREADS)))
    return compute_chunk(config, index)


def _import_factory_module(config, address):
    """Import the module of a ``"module:factory"`` loss on the worker ``address``, or raise
    ``ValueError`` saying that it failed there: the config was checked where the sweep was
    started, whose path may hold modules the worker's does not."""
    name = (config.loss or {}).get("name", "")
    if ":" not in name:
        return
    module = name.partition(":")[0]
    try:
        importlib.import_module(module)
    except Exception as exc:  # not found, or its code failed there
        raise ValueError(f"loss {name!r}: importing {module!r} failed on the Dask worker "
                         f"{address} ({type(exc).__name__}: {exc}); a factory's module must "
                         "be importable on every worker (installed there, or on its "
                         "PYTHONPATH), not only where the sweep is started") from None


def connect(scheduler=None, client=None):
    """A ``distributed.Client``: ``client`` as given, or a new one for ``scheduler``.

    Returns
    -------
    client, owned : distributed.Client, bool
        ``owned`` is True when the client was created here (the caller closes it).
    """
    if client is not None:
        return client, False
    try:
        from distributed import Client
    except ImportError:
        raise ValueError("a Dask scheduler needs dask[distributed]: "
                         "pip install 'stabsim[dask]'") from None
    try:
        return Client(scheduler, timeout="20s"), True
    except OSError as exc:
        raise ValueError(f"cannot reach the Dask scheduler at {scheduler!r}: {exc}") from None


def check_worker_sources(client) -> None:
    """Raise ``ValueError`` naming the workers whose stabsim sources differ from this
    process's (:func:`stabsim._jit.package_sources_stamp`).

    A sweep's key (``SweepConfig.key``) and its result's ``versions`` describe the stabsim
    of the process that starts it; a worker running other code would compute chunks that
    the key does not describe.
    """
    from .._jit import package_sources_stamp

    mine = package_sources_stamp()
    theirs = client.run(package_sources_stamp)  # worker address → its stamp there
    differ = sorted(address for address, stamp in theirs.items() if stamp != mine)
    if differ:
        raise ValueError(f"{len(differ)} of {len(theirs)} Dask worker(s) run stabsim sources "
                         f"that differ from this process's ({', '.join(differ)}): their "
                         "chunks would not be those the sweep's key describes; install the "
                         "same stabsim on every worker and restart them")


def dask_chunks(client, config, indices):
    """Submit every chunk to the cluster, once every worker runs this process's stabsim
    sources (:func:`check_worker_sources`); yield the chunks as they complete.

    Closing the generator early (an error, or Ctrl-C in the caller) cancels the chunks
    not yet collected.
    """
    from distributed import as_completed

    check_worker_sources(client)
    futures = {client.submit(_dask_task, config, index, pure=False): index
               for index in indices}
    try:
        for future, arrays in as_completed(futures, with_results=True):
            yield futures[future], arrays
    finally:
        client.cancel(list(futures))
