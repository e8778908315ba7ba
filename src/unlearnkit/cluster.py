"""Warm the caches of a chapter on Ray: every missing unit of its plan as a Ray task.

``python -m unlearnkit warm CHAPTER --profile P [--address HOST:PORT] [-p …]`` calls
:func:`warm`. Without ``--address`` a local Ray starts inside the process (its nodes bind to
127.0.0.1); with it, the driver joins that cluster. Units are Ray tasks with one CPU, or one GPU
when the chapter's device is CUDA (or ``auto`` on a cluster with GPUs), submitted in dependency
order (a task starts once the tasks it needs have finished: originals before the runs on them).
A task whose worker dies is retried by Ray (:data:`RETRIES`); the caches are written by atomic
rename, so a killed task leaves no entry and two tasks finishing the same entry leave one.

Ray is imported here only, on first use: importing :mod:`unlearnkit` never loads it.

Whoever reaches a Ray cluster's ports can run code on it, so a cluster should run with Ray's
token authentication (``RAY_AUTH_MODE=token``, Ray ≥ 2.52): the driver then needs the same
token, which Ray reads from the environment (``RAY_AUTH_TOKEN`` or ``RAY_AUTH_TOKEN_PATH``);
nothing here takes it as an argument or writes it anywhere. Joining a cluster without it prints
a warning.
"""

from __future__ import annotations

import ipaddress
import os
import socket
import sys
import time
from dataclasses import dataclass
from typing import Callable, Sequence

from .experiments.work import Context, Unit, execute, without_cached

RETRIES = 3
"""Ray's retries of a unit whose worker process died (application errors are not retried)."""
CONNECT_TIMEOUT_S = 3.0


def parse_address(address: str) -> tuple[str, int]:
    """``"HOST:PORT"`` → ``(host, port)``; anything else is an error naming the form."""
    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"--address {address!r} is not HOST:PORT (e.g. 127.0.0.1:6379, the head's "
                         "`ray start --head --port` address); leave it out for a local Ray")
    return host.strip("[]"), int(port)


def check_reachable(address: str, timeout: float = CONNECT_TIMEOUT_S) -> None:
    """Fail within ``timeout`` seconds, before any work, when nothing listens at ``address``."""
    host, port = parse_address(address)
    try:
        socket.create_connection((host, port), timeout=timeout).close()
    except OSError as err:
        raise ConnectionError(f"no Ray cluster answers at {address!r} ({err}); start one with "
                              "`ray start --head --port PORT`, or leave --address out for a local Ray") from None


def _loopback(address: str | None) -> bool:
    if address is None:
        return True
    host = parse_address(address)[0]
    try:
        return host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def connect(address: str | None = None, *, num_cpus: int | None = None):
    """Start a local Ray (``address`` None, ``num_cpus`` CPUs) or join the cluster at ``address``;
    returns the ``ray`` module.

    Ray maps a loopback address to the machine's outward IP unless told it runs on one machine
    (``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0``, read when ray is imported); a loopback address or a
    local Ray therefore keeps everything on 127.0.0.1.
    """
    if address is not None:
        check_reachable(address)
    if _loopback(address):
        os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    import ray

    if address is None:
        ray.init(address="local", num_cpus=num_cpus, include_dashboard=False, logging_level="ERROR",
                 log_to_driver=False)  # "local": a new Ray, never one an address file names
    else:
        if os.environ.get("RAY_AUTH_MODE") != "token":
            print(f"[warm] warning: joining {address} without token authentication (RAY_AUTH_MODE is not "
                  "'token'): whoever reaches a Ray cluster's ports can run code on it (README, On a cluster)",
                  file=sys.stderr, flush=True)
        try:
            ray.init(address=address, logging_level="ERROR", log_to_driver=False)
        except (ConnectionError, RuntimeError) as err:
            raise ConnectionError(f"could not join the Ray cluster at {address!r} ({err}). A cluster started with "
                                  "token authentication admits only drivers holding its token: set RAY_AUTH_MODE=token "
                                  "and RAY_AUTH_TOKEN (or RAY_AUTH_TOKEN_PATH) in this shell's environment") from None
    return ray


def _run_unit(job: tuple, context: Context, *dependencies) -> dict:
    """A Ray task: one unit (its ``dependencies``' results only order it)."""
    return execute(job, context)


@dataclass
class WarmReport:
    """What a warm did: units submitted, finished, failed (``{label: error}``), seconds, and
    the Ray overhead per unit (wall time minus the longest chain of units, over units)."""

    submitted: int
    done: int
    failed: dict
    seconds: float
    unit_seconds: list


def warm(units: Sequence[Unit], context: Context, *, address: str | None = None, num_cpus: int | None = None,
         gpu: bool | None = None, report: Callable[[str], None] = print) -> WarmReport:
    """Run the missing ``units`` (a chapter's :func:`~unlearnkit.experiments.work.plan`) as Ray
    tasks and wait for them; prints ``units done / total`` and names each failed unit."""
    todo = without_cached(units)
    if not todo:
        report("[warm] every unit is cached; nothing to do")
        return WarmReport(0, 0, {}, 0.0, [])
    ray = connect(address, num_cpus=num_cpus)
    try:
        if gpu is None:
            gpu = context.device == "cuda" or (context.device == "auto" and ray.cluster_resources().get("GPU", 0) >= 1)
        task = ray.remote(num_cpus=1, num_gpus=1 if gpu else 0, max_retries=RETRIES)(_run_unit)
        start = time.perf_counter()
        refs: dict[str, object] = {}
        for u in todo:  # dependency order: a unit's dependencies are submitted before it
            refs[u.id] = task.options(name=u.label[:60]).remote(u.job, context, *[refs[d] for d in u.deps])
        label = {ref: u.label for u, ref in zip(todo, refs.values())}
        pending, failed, done, unit_seconds = list(refs.values()), {}, 0, []
        report(f"[warm] {len(todo)} units on Ray ({'GPU' if gpu else 'CPU'} tasks, "
               f"{int(ray.cluster_resources().get('CPU', 0))} CPUs in the cluster)")
        while pending:
            ready, pending = ray.wait(pending, num_returns=1)
            try:
                result = ray.get(ready[0])
                done += 1
                unit_seconds.append(result.get("seconds", float("nan")))
                report(f"[warm] {done + len(failed)}/{len(todo)} done: {label[ready[0]]}")
            except Exception as err:  # a unit's error, or a dependency's, named with the unit
                cause = getattr(err, "cause", None) or err  # a RayTaskError wraps the unit's exception
                failed[label[ready[0]]] = f"{type(cause).__name__}: {str(cause).strip().splitlines()[-1][:300]}"
                report(f"[warm] {done + len(failed)}/{len(todo)} FAILED: {label[ready[0]]}: {failed[label[ready[0]]]}")
        return WarmReport(len(todo), done, failed, time.perf_counter() - start, unit_seconds)
    finally:
        ray.shutdown()
