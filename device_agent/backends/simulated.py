"""The ``simulated`` backend: a modelled inference latency, no runtime, no CPU work.

Each call sleeps for a time drawn from a seeded lognormal distribution whose
median is the component's nominal latency for the job's model::

    nominal_ms = ms_per_inference + ms_per_mib * (size of the model file in MiB)

``ms_per_inference`` and ``ms_per_mib`` come from the component (an inventory
gives each SoC's components their own values: the per-SoC scale), so a larger
model (float32 against int8) takes longer; ``sigma`` is the lognormal's shape
(0: every call takes the nominal time). The generator is seeded from the
job's ``input_seed`` and the component's name, so a job repeats its sequence
of latencies. Sleeping costs the board's CPUs nothing: a farm of virtual
boards with simulated components measures the orchestrator's own cost, not
this machine's cores. Every figure it yields is modelled, not measured: the
``started`` event says ``simulated: true`` with the model's parameters, and
the controller labels the rows (docs/agent-protocol.md).
"""

from __future__ import annotations

import math
import os
import random
import time
import zlib
from typing import Callable

from device_agent.backends.base import Backend
from device_agent.errors import ModelError

DISTRIBUTION = "lognormal"
_MIB = 1024.0 * 1024.0


def nominal_ms(ms_per_inference: float, ms_per_mib: float, model_bytes: int) -> float:
    """The distribution's median for a model of ``model_bytes``."""
    return ms_per_inference + ms_per_mib * model_bytes / _MIB


def latency_source(median_ms: float, sigma: float, seed: int, name: str) -> Callable[[], float]:
    """Seconds of successive calls: lognormal with median ``median_ms``, shape ``sigma``, seeded."""
    rng = random.Random((int(seed) << 32) ^ zlib.crc32(name.encode("utf-8")))
    mu = math.log(median_ms / 1000.0)
    if sigma == 0:
        return lambda: median_ms / 1000.0
    return lambda: rng.lognormvariate(mu, sigma)


def open_simulated(model_path: str, ms_per_inference: float, ms_per_mib: float, sigma: float, seed: int,
                   name: str, sleep: Callable[[float], None] = time.sleep) -> Backend:
    """The backend; a model file that cannot be read is a ``ModelError`` (as for the other kinds)."""
    try:
        size = os.stat(model_path).st_size
    except OSError as exc:
        raise ModelError("cannot read model %s: %s" % (model_path, exc))
    median = nominal_ms(ms_per_inference, ms_per_mib, size)
    draw = latency_source(median, sigma, seed, name)

    def invoke() -> None:
        sleep(draw())

    info = {"simulated": True, "latency_model": {
        "distribution": DISTRIBUTION, "median_ms": round(median, 6), "sigma": sigma,
        "ms_per_inference": ms_per_inference, "ms_per_mib": ms_per_mib, "model_bytes": size}}
    return Backend(invoke=invoke, model={"input_shape": None, "input_dtype": None}, info=info)
