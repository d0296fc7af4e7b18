"""The ``external`` backend: a command run once per batch of frames, e.g. over adb for the Kirin NPU.

Each call runs ``command`` (an argv list, no shell) to completion; it is
timed by the measurement loop like any inference, and counts
``frames_per_batch`` frames. In the argv, ``{model}`` is replaced by the
job's model path (an NPU runner finds its compiled model next to it),
``{frames}`` by ``frames_per_batch`` and ``{batch}`` by the call's sequence
number (0, 1, ...: warm-up calls included). A non-zero exit, a timeout (``timeout_s``) or a
command that cannot start is an ``InferenceError`` naming the command and the
end of its stderr. Its stdout is read and discarded.
"""

from __future__ import annotations

import shutil
import subprocess
from typing import List, Sequence

from device_agent.backends.base import Backend
from device_agent.errors import InferenceError, SpecError

_STDERR_TAIL = 400


class ExternalCommand:
    def __init__(self, command: Sequence[str], frames_per_batch: int, timeout_s: float, model_path: str = "") -> None:
        self.command = [a.replace("{model}", model_path) for a in command]
        self.frames_per_batch = frames_per_batch
        self.timeout_s = timeout_s
        self.calls = 0

    def argv(self, batch: int) -> List[str]:
        return [a.replace("{frames}", str(self.frames_per_batch)).replace("{batch}", str(batch))
                for a in self.command]

    def __call__(self) -> None:
        argv = self.argv(self.calls)
        self.calls += 1
        try:
            proc = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  timeout=self.timeout_s)
        except subprocess.TimeoutExpired:
            raise InferenceError("external command timed out after %s s: %s" % (self.timeout_s, argv))
        except OSError as exc:
            raise InferenceError("external command cannot run: %s: %s" % (argv, exc))
        if proc.returncode != 0:
            tail = proc.stderr.decode("utf-8", "replace")[-_STDERR_TAIL:].strip()
            raise InferenceError("external command exited with %d: %s: %s" % (proc.returncode, argv, tail))


def open_external(command: Sequence[str], frames_per_batch: int, timeout_s: float, field: str,
                  model_path: str = "") -> Backend:
    """The backend; a first argv element that is not an executable is a ``SpecError``."""
    if shutil.which(command[0]) is None:
        raise SpecError("%s.command: %r is not an executable (not found on PATH)" % (field, command[0]))
    run = ExternalCommand(command, frames_per_batch, timeout_s, model_path)
    info = {"command": list(command), "frames_per_batch": frames_per_batch}
    return Backend(invoke=run, frames_per_call=frames_per_batch, model={"input_shape": None, "input_dtype": None},
                   info=info)
