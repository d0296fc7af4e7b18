"""Device agent: the measuring instrument that runs on the boards.

It speaks the protocol in ``docs/agent-protocol.md`` (job spec in, JSON-lines
events out, ``trace.csv`` left in the job's output folder) and depends only on
the Python standard library (>= 3.8), numpy and a TFLite interpreter module.
It never imports ``orchestrator`` or TensorFlow.
"""

AGENT_VERSION = "1.9.0"
PROTOCOL_VERSION = 1
