"""The experiments file: what to measure, on which boards, under which rules.

Data only; ``config/load.py`` reads it from YAML and ``planner.py`` expands it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    NonNegativeFloat,
    NonNegativeInt,
    PositiveFloat,
    PositiveInt,
    field_validator,
    model_validator,
)

Dtype = Literal["float32", "int8", "uint8"]
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"


def is_model_path(item: str) -> bool:
    """A ``models:`` item that is a .tflite file (``./my_net.tflite``), not a zoo name."""
    return item.lower().endswith(".tflite") or "/" in item or "\\" in item


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class MeasurementRules(Strict):
    """When a measurement window may close (benchmark_model / LoadGen discipline)."""

    warmup_runs: NonNegativeInt = Field(5, description="inferences run and discarded before the window")
    min_count: PositiveInt = Field(50, description="the window needs at least this many inferences ...")
    min_duration_s: PositiveFloat = Field(2.0, description="... AND at least this long")
    max_duration_s: PositiveFloat = Field(60.0, description="hard cap; hitting it first makes the run INVALID")

    @model_validator(mode="after")
    def _max_not_below_min(self) -> "MeasurementRules":
        if self.max_duration_s < self.min_duration_s:
            raise ValueError(
                f"max_duration_s ({self.max_duration_s}) must be >= min_duration_s ({self.min_duration_s})"
            )
        return self


def _unique(values: list[str], what: str) -> list[str]:
    seen = set()
    for v in values:
        if v in seen:
            raise ValueError(f"{what} {v!r} listed twice")
        seen.add(v)
    return values


class MatchRule(Strict):
    """Matches a job when every field given lists the job's value (boards: name or group; components:
    name, class or an 'a+b' set)."""

    boards: list[str] | None = None
    components: list[str] | None = None
    models: list[str] | None = None
    dtypes: list[Dtype] | None = None


class Experiment(Strict):
    name: str = Field(pattern=NAME_PATTERN)
    boards: list[str] = Field(default=["all"], min_length=1, description="board names or inventory groups; 'all'")
    models: list[str] = Field(
        min_length=1,
        description="model names from the zoo manifest, or .tflite files (relative to this file) that are "
                    "checked and added to the zoo when the sweep is planned, then named by their added name",
    )
    dtypes: list[Dtype] = Field(
        default=["float32", "int8"], min_length=1,
        description="when not given: float32 and int8 for the zoo's built networks, and each added model "
                    "(zoo add, or a path) in the dtype(s) the zoo has it in",
    )
    components: list[str] = Field(default=["all"], min_length=1, description="component names or classes (big, little, ...); 'all'")
    repeats: PositiveInt = 1
    frequencies: list[Literal["max"] | PositiveInt] | None = Field(
        None, description="per job, pin every measured cluster: 'max' (performance governor) or kHz"
    )
    rules: MeasurementRules | None = Field(None, description="overrides the file-level rules")
    include: list[MatchRule] | None = Field(None, description="keep only jobs matching one of these")
    exclude: list[MatchRule] = Field(default_factory=list, description="drop jobs matching one of these")

    @field_validator("boards", "models", "components")
    @classmethod
    def _no_duplicates(cls, v: list[str], info) -> list[str]:
        return _unique(v, info.field_name.rstrip("s"))

    @field_validator("dtypes")
    @classmethod
    def _no_duplicate_dtypes(cls, v: list[str]) -> list[str]:
        return _unique(v, "dtype")


class ExperimentsFile(Strict):
    version: Literal[1] = 1
    zoo: Path = Field(Path("models"), description="folder with the zoo's manifest.json, relative to this file")
    rules: MeasurementRules = MeasurementRules()
    idle_s: NonNegativeFloat = Field(
        3.0, description="idle power measured per board before its first job and after its last, with its "
                         "supply meter and its on-board sensors (0: none)"
    )
    idle_settle_s: NonNegativeFloat = Field(
        1.0, description="seconds with nothing running before each idle measurement, so that the board settles"
    )
    membw_mb: NonNegativeFloat = Field(
        32.0, description="MiB per array of the memory-bandwidth microbenchmark, run per board and CPU "
                          "component before its first job, for the roofline (0: none)"
    )
    idle_max_age_h: NonNegativeFloat = Field(
        24.0, description="a board's idle power measured by an earlier sweep with the same --state is reused for "
                          "this many hours, unless what it depends on changed (0: measure in every run)"
    )
    membw_max_age_h: NonNegativeFloat = Field(
        168.0, description="the same for the memory bandwidth of each CPU component (0: measure in every run)"
    )
    experiments: list[Experiment] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique_names(self) -> "ExperimentsFile":
        _unique([e.name for e in self.experiments], "experiment name")
        return self
