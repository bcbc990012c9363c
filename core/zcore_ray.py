"""The Ray backend of the converging ZCore engine (``backend="ray"``).

The driver keeps the rounds, the reliability and the time budget of
:func:`.zcore_expected.zcore_expected_run`; only the pair visits run as Ray
tasks. Each column, with its grid cells and triangular parameters, is put in
the object store once; a round's visits are grouped by blocks of columns, so a
task reads at most ``2 * _BLOCK`` columns (never the N x D matrix) and returns
its (4, N) int64 sums, which the driver adds. Integer sums do not depend on
the order of additions, so a seed gives the scores of the local engine.

Workers import this package's ``core`` from a copy shipped with the job
(:func:`runtime_env`, Ray's ``py_modules``: passed to ``ray.init`` when this
module connects; a process that initialises Ray itself passes it too, unless
its workers can import the package); they need numpy, scipy and numba. This
module imports without Ray; Ray is an optional extra (requirements-ray.txt).
"""

import atexit
import os
import shutil
import tempfile

import numpy as np

from . import params

#: where the converging engine runs: this process's threads, or a Ray cluster
BACKENDS = ("local", "ray")
#: pairs are grouped in blocks of _BLOCK x _BLOCK columns; a task's visits lie in one block
_BLOCK = 16
#: most pair visits per task
_TASK_VISITS = _BLOCK * _BLOCK
#: attempts after the first when a worker dies (the result does not change)
MAX_RETRIES = 3
# Seconds between progress reports while tasks run.
_POLL = 0.25
# Seconds a cancelled run waits for its tasks to stop.
_CANCEL_WAIT = 10.0
# The staged copy of the package, per package name (made once per process).
_STAGED = {}


def check_backend(backend, ray_address=None):
    """Validates ``backend`` and ``ray_address``; returns them (``"ray"`` needs Ray installed)."""
    backend = params.choice("backend", BACKENDS[0] if backend is None else backend, BACKENDS)
    ray_address = params.optional(params.text, "ray_address", ray_address)
    if backend == "ray":
        require_ray()
    return backend, ray_address


def require_ray():
    """The ``ray`` module, or a ValueError saying how to install it."""
    try:
        import ray
    except ImportError:
        raise ValueError(
            "backend='ray' needs the optional ray package, which is not installed: "
            "pip install -r requirements-ray.txt (or use backend='local')"
        ) from None
    return ray


def connect(ray_address=None):
    """The initialised ``ray``: this process's Ray, else ``ray_address`` or ``RAY_ADDRESS``, else a local one."""
    ray = require_ray()
    if not ray.is_initialized():
        ray.init(address=ray_address, runtime_env=runtime_env(), include_dashboard=False, log_to_driver=False)
    return ray


def runtime_env():
    """The Ray ``runtime_env`` that lets workers import this package's ``core`` (for ``ray.init``)."""
    return {"py_modules": [_staged_package()]}


class RayVisits:
    """``run_visits(first, last, acc, report)`` for :func:`.zcore_expected.zcore_expected_run` on Ray."""

    def __init__(self, engine, ray_address=None):
        self.ray = connect(ray_address)
        self.engine = engine
        columns = engine.columns
        self.refs = [self.ray.put(tuple(field[d] for field in columns)) for d in range(len(columns[0]))]
        self.task = self.ray.remote(_run_task).options(
            num_cpus=1, max_retries=MAX_RETRIES, retry_exceptions=False
        )
        self.cpus = max(1, int(self.ray.cluster_resources().get("CPU", 1)))

    def __call__(self, first, last, acc, report, deadline=None):
        """Adds pair visits first..last-1 to ``acc``; calls ``report(visits)`` as tasks finish; returns ``last``.

        An exception (from ``report`` or a task) cancels the tasks still
        queued or running before it propagates. A round on Ray runs to its
        end (``deadline`` is not checked inside it): its tasks are all
        submitted at once, and the time budget stops the next round.
        """
        ray = self.ray
        pairs, parity, shifts = self.engine.visits(first, last)
        size = max(1, min(_TASK_VISITS, -(-len(pairs) // (2 * self.cpus))))
        sizes = {}
        for rows in _tasks(pairs, size):
            dims, local = np.unique(pairs[rows], return_inverse=True)
            ref = self.task.remote(self.engine.settings, local.reshape(-1, 2), parity[rows], shifts[rows],
                                   *[self.refs[d] for d in dims])
            sizes[ref] = len(rows)
        pending = list(sizes)
        done = 0
        try:
            while pending:
                ready, pending = ray.wait(pending, num_returns=len(pending), timeout=_POLL)
                for ref in ready:
                    acc += ray.get(ref)
                    done += sizes.pop(ref)
                report(first + done)
            return last
        except BaseException as error:
            _cancel(ray, pending)
            package = __name__.rsplit(".", 2)[0]
            if f"No module named '{package}" in str(error):
                raise ValueError(
                    f"the Ray workers cannot import {package}: call ray.init with "
                    f"runtime_env={package}.core.zcore_ray.runtime_env(), or let the plugin connect (ray_address)"
                ) from error
            raise


def _cancel(ray, refs):
    """Cancels tasks (killing the workers that run them) and waits until they stop."""
    for ref in refs:
        ray.cancel(ref, force=True)
    if refs:
        ray.wait(refs, num_returns=len(refs), timeout=_CANCEL_WAIT)


def _tasks(pairs, size):
    """Row indices of ``pairs`` per task: pairs of one block of columns together, at most ``size`` per task."""
    blocks = pairs // _BLOCK
    order = np.lexsort((pairs[:, 1], pairs[:, 0], blocks[:, 1], blocks[:, 0]))
    keys = blocks[order, 0] * (pairs.max() + 1) + blocks[order, 1]
    tasks = []
    for group in np.split(order, np.flatnonzero(np.diff(keys)) + 1):
        tasks.extend(group[i : i + size] for i in range(0, len(group), size))
    return tasks


def _run_task(settings, pairs, parity, shifts, *columns):
    """A Ray task: the (4, N) int64 sums of pair visits over the given columns (``pairs`` index them)."""
    from .zcore_expected import add_visits

    stacked = tuple(np.stack([column[i] for column in columns]) for i in range(len(columns[0])))
    acc = np.zeros((4, stacked[0].shape[1]), dtype=np.int64)
    add_visits(stacked, settings, pairs, parity, shifts, acc)
    return acc


def _staged_package():
    """A directory holding this package's ``__init__.py`` and ``core``, to ship to Ray workers."""
    package = __name__.rsplit(".", 2)[0]
    if package not in _STAGED:
        here = os.path.dirname(os.path.abspath(__file__))
        staging = tempfile.mkdtemp(prefix="zcore-ray-")
        atexit.register(shutil.rmtree, staging, True)
        target = os.path.join(staging, package)
        shutil.copytree(here, os.path.join(target, "core"), ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        shutil.copy(os.path.join(os.path.dirname(here), "__init__.py"), target)
        _STAGED[package] = target
    return _STAGED[package]
