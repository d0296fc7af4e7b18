"""The membw step's parsing of the agent's output (the run itself is in the local sweep test)."""

from __future__ import annotations

import json

import pytest

from orchestrator.errors import AgentError
from orchestrator.membw import membw_rows

GOOD = {"kernels": {k: {"best_gb_s": v, "best_s": 0.01, "bytes": 1} for k, v in
                    (("copy", 9.5), ("scale", 9.0), ("add", 10.5), ("triad", 10.25))}}


def test_rows_per_kernel_in_stream_order():
    rows = membw_rows("r1", "b", "a15", "some log line\n" + json.dumps(GOOD) + "\n")
    assert [(r["kernel"], r["gb_per_s"]) for r in rows] == [("copy", 9.5), ("scale", 9.0), ("add", 10.5),
                                                             ("triad", 10.25)]
    assert {(r["run_id"], r["board"], r["component"]) for r in rows} == {("r1", "b", "a15")}


@pytest.mark.parametrize("stdout, needle", [
    ("", "printed no JSON result"),
    ("Traceback ...", "printed no JSON result"),
    (json.dumps({"error": "SpecError", "message": "--cpus: CPU 9 does not exist"}), "SpecError: --cpus: CPU 9"),
    (json.dumps({"kernels": {"copy": {"best_gb_s": 1.0}}}), "lacks kernel(s) scale, add, triad"),
])
def test_bad_output_is_an_agent_error_naming_board_and_component(stdout, needle):
    with pytest.raises(AgentError, match="b/a15: membw") as info:
        membw_rows("r1", "b", "a15", stdout)
    assert needle in str(info.value)
