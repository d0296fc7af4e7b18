"""Component kind -> backend: the one place a component spec becomes something to invoke."""

from __future__ import annotations

from typing import TYPE_CHECKING, Optional

from device_agent.backends.base import Backend
from device_agent.backends.external import open_external
from device_agent.backends.simulated import open_simulated
from device_agent.spec import JobSpec
from device_agent.spec_components import ComponentSpec

if TYPE_CHECKING:
    from device_agent.runtime import Runtime


def open_backend(spec: JobSpec, component: ComponentSpec, field: str, runtime: Optional["Runtime"] = None) -> Backend:
    """Build the component's backend (in the process and on the CPUs that will drive it)."""
    if component.kind == "external":
        return open_external(component.command, component.frames_per_batch, component.timeout_s, field,
                             spec.model.path)
    if component.kind == "simulated":
        return open_simulated(spec.model.path, component.ms_per_inference, component.ms_per_mib, component.sigma,
                              spec.input_seed, component.name)
    # the TFLite backends (and numpy, which the runtime needs) are imported only by a job that uses them: a
    # board of simulated components never pays for them (~0.15 s of CPU per agent, 64 agents at once)
    from device_agent.backends.delegate import open_gpu
    from device_agent.backends.tflite import open_cpu
    from device_agent.runtime import import_runtime

    runtime = runtime if runtime is not None else import_runtime()
    if component.kind == "gpu":
        return open_gpu(runtime, spec.model.path, component.threads, spec.input_seed,
                        component.delegate_path or "", dict(component.delegate_options), component.name, field,
                        spec.model.input_shape)
    return open_cpu(runtime, spec.model.path, component.threads, spec.input_seed, spec.model.input_shape)
