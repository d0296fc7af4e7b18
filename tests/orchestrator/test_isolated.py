"""Co-execution gains are computed against the isolated series of the same setting, kept across a resume."""

from __future__ import annotations

import pytest

from orchestrator.config.experiment import MeasurementRules
from orchestrator.isolated import IsolatedBaselines
from orchestrator.jobs import Job, Member
from orchestrator.results.store import Store
from tests.analysis.synthetic import make_run, result_row

SHA = "a" * 64


def _job(component: str, frequency: str | None, members: tuple[str, ...] = ()) -> Job:
    names = members or (component,)
    return Job(job_id=f"{component}-{frequency}", experiment="e", board="b1", soc="socA", component=component,
               component_class="big", cpus=(4, 5), threads=2, model="tiny_cnn", model_display="Tiny CNN",
               dtype="float32", model_file="tiny_cnn_float32.tflite", model_sha256=SHA, repeat=1,
               rules=MeasurementRules(), frequency=frequency,
               members=tuple(Member(name=n, component_class="big", cpus=(4,), threads=1, agent_component="{}")
                             for n in names))


def _row(job_id: str, component: str, freq: str | None, ips: float, **over):
    return result_row("r1", job_id, **{"component": component, "freq_requested": freq, "throughput_ips": ips,
                                       "model_sha256": SHA, **over})


def test_baselines_come_from_the_store_and_match_the_frequency(tmp_path):
    run = make_run(Store(tmp_path / "runs"), "r1", [
        _row("j1", "a15", "max", 30.0), _row("j2", "a15", "max", 32.0), _row("j3", "a7", "max", 10.0),
        _row("j4", "a15", "1000000", 12.0), _row("j5", "a7", "1000000", 5.0),
        _row("j6", "a7", "1000000", 99.0, verdict="INVALID"),             # never a baseline
        _row("j7", "a7", "1000000", 77.0, board="b2"),                    # another board's
        _row("j8", "a7", "1000000", 55.0, model_sha256="b" * 64),          # another model file
        _row("j9", "a15+a7", "max", 40.0, coexec_members=["a15", "a7"]),   # not isolated
    ])
    base = IsolatedBaselines.from_store(run, "b1")
    assert base.for_job(_job("a15+a7", "max", ("a15", "a7"))) == {"a15": pytest.approx(31.0), "a7": 10.0}
    assert base.for_job(_job("a15+a7", "1000000", ("a15", "a7"))) == {"a15": 12.0, "a7": 5.0}
    # no isolated job at this setting yet: no gains rather than gains against another setting
    assert base.for_job(_job("a15+a7", None, ("a15", "a7"))) is None
    base.add(_job("a15", None), 20.0)
    assert base.for_job(_job("a15+a7", None, ("a15", "a7"))) is None  # a7 still missing
    base.add(_job("a7", None), 8.0)
    assert base.for_job(_job("a15+a7", None, ("a15", "a7"))) == {"a15": 20.0, "a7": 8.0}


def test_an_empty_run_has_no_baselines(tmp_path):
    run = make_run(Store(tmp_path / "runs"), "r1", [])
    assert IsolatedBaselines.from_store(run, "b1").for_job(_job("a15+a7", "max", ("a15", "a7"))) is None
