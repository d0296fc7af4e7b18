"""Arrow schemas of the results store. Bump a table's version on any change."""

from __future__ import annotations

import pyarrow as pa

# 2: per-job clock estimates, energy definitions, meter rate, simulated power
# 3: thermal state per job (temp_start_c, temp_max_c, cooldown_wait_s, temp_simulated); freq_below_s also
#    counts the time a domain nobody pinned was throttled
# 4: emulated (the board's userland was emulated, e.g. qemu-user on a virtual board: its timings are not
#    performance figures); files of versions 2 and 3 read it as null (a real board)
SCHEMA_VERSION = 4

# One row per finished job: the measurement summary plus its provenance.
RESULTS = pa.schema(
    [
        ("schema_version", pa.int16()),
        # provenance
        ("run_id", pa.string()),
        ("job_id", pa.string()),
        ("experiment", pa.string()),
        ("board", pa.string()),
        ("soc", pa.string()),
        ("hostname", pa.string()),
        ("arch", pa.string()),
        # what emulated the board's userland (the inventory's socfarm_emulated, e.g. "qemu-user armhf,
        # Debian 12"): every timing of the row (throughput, latencies, window) is then the emulator's, not a
        # performance figure of the SoC; null: a real board (or the controller's own userland)
        ("emulated", pa.string()),
        ("component", pa.string()),
        ("component_class", pa.string()),
        ("cpus", pa.list_(pa.int32())),
        ("threads", pa.int32()),
        ("model", pa.string()),
        ("model_display", pa.string()),
        ("dtype", pa.string()),
        ("model_file", pa.string()),
        ("model_sha256", pa.string()),
        ("repeat", pa.int32()),
        ("runtime_module", pa.string()),
        ("runtime_version", pa.string()),
        ("agent_version", pa.string()),
        ("git_revision", pa.string()),
        # rules requested
        ("warmup_runs", pa.int32()),
        ("min_count", pa.int32()),
        ("min_duration_s", pa.float64()),
        ("max_duration_s", pa.float64()),
        # measurement
        ("started_wall", pa.timestamp("ns", tz="UTC")),
        ("window_start_mono_ns", pa.int64()),
        ("window_end_mono_ns", pa.int64()),
        ("count", pa.int64()),
        ("duration_s", pa.float64()),
        ("throughput_ips", pa.float64()),
        ("latency_mean_ms", pa.float64()),
        ("latency_p50_ms", pa.float64()),
        ("latency_p90_ms", pa.float64()),
        ("latency_p99_ms", pa.float64()),
        ("latency_min_ms", pa.float64()),
        ("latency_max_ms", pa.float64()),
        ("verdict", pa.string()),
        ("reasons", pa.list_(pa.string())),
        ("trace_sha256", pa.string()),
        # frequency: requested setting ("max", kHz, or null = untouched: then watched) and what the agent
        # sampled over the job's clusters: the lowest frequency, and the longest time a cluster ran below its
        # held frequency or, when nothing was requested, was throttled (its limit below its maximum, or below
        # its limit at full load: docs/agent-protocol.md)
        ("freq_requested", pa.string()),
        ("freq_min_khz", pa.int64()),
        ("freq_below_s", pa.float64()),
        # thermal (the SoC's zones from the inventory): the hottest zone at the window's start and over the
        # window (null: no zone sampled), what the board waited before the job for every zone to read below its
        # cooldown_c (null: no cool-down configured), and temp_simulated: the temperatures came from a model (a
        # virtual board), not a sensor (null: no temperature)
        ("temp_start_c", pa.float64()),
        ("temp_max_c", pa.float64()),
        ("cooldown_wait_s", pa.float64()),
        ("temp_simulated", pa.bool_()),
        # co-execution: the member components and their share of the frames (empty when isolated)
        ("coexec_members", pa.list_(pa.string())),
        ("coexec_share_pct", pa.list_(pa.float64())),
        # board clock minus controller clock: estimated by round trips right before and right after the
        # job, the offset used (interpolated at the window's centre) and the half-width of the interval the
        # round trips bound it to
        ("clock_offset_ns", pa.int64()),
        ("clock_uncertainty_ns", pa.int64()),
        ("clock_offset_before_ns", pa.int64()),
        ("clock_offset_after_ns", pa.int64()),
        # power (null when the board has neither meter nor sensors);
        # meter_measures: board_supply (SMU) or rails (sum of on-board rails);
        # power_simulated: the power came from a model (virtual meter, simulated sensors), not an instrument
        ("meter_kind", pa.string()),
        ("meter_measures", pa.string()),
        ("power_simulated", pa.bool_()),
        ("power_samples", pa.int64()),
        # the meter's configured interval and the rate its timestamps show over the window, largest gap
        ("meter_interval_s", pa.float64()),
        ("meter_rate_hz", pa.float64()),
        ("meter_max_gap_s", pa.float64()),
        # orchestrator.analysis.energy: energy_j is the total over the window; energy_per_image_j the ACTIVE
        # energy per image (frame) = (mean - idle power) / throughput; images_per_j its reciprocal
        ("mean_power_w", pa.float64()),
        ("energy_j", pa.float64()),
        ("idle_power_w", pa.float64()),
        ("active_power_w", pa.float64()),
        ("energy_per_image_j", pa.float64()),
        ("images_per_j", pa.float64()),
        ("total_energy_per_image_j", pa.float64()),
        ("energy_note", pa.string()),
    ]
)

# One row per measured inference.
LATENCIES = pa.schema(
    [
        ("run_id", pa.string()),
        ("job_id", pa.string()),
        ("index", pa.int64()),
        ("start_mono_ns", pa.int64()),
        ("end_mono_ns", pa.int64()),
        ("latency_ms", pa.float64()),
    ]
)

# One row per power sample inside (and around) the measurement window, on the
# board's monotonic clock. source: "meter" (controller-driven SMU, rail
# "board") or "sensor" (on-board sensors read by the agent, one rail each).
POWER = pa.schema(
    [
        ("run_id", pa.string()),
        ("job_id", pa.string()),
        ("source", pa.string()),
        ("rail", pa.string()),
        ("t_mono_s", pa.float64()),
        ("power_w", pa.float64()),
    ]
)

# Idle power of a board, measured in the same run (one row per source x rail x phase): phase "start"
# (after settle_s with nothing running, before the board's first job; subtracted by the analysis to
# get active power) and "end" (after its last job; checks that idle did not drift).
IDLE = pa.schema(
    [
        ("run_id", pa.string()),
        ("board", pa.string()),
        ("source", pa.string()),
        ("rail", pa.string()),
        ("phase", pa.string()),
        ("settle_s", pa.float64()),
        ("duration_s", pa.float64()),
        ("samples", pa.int64()),
        ("mean_power_w", pa.float64()),
    ]
)

# Memory bandwidth measured on a board per component (STREAM-like kernels), for the roofline.
MEMBW = pa.schema(
    [
        ("run_id", pa.string()),
        ("board", pa.string()),
        ("component", pa.string()),
        ("kernel", pa.string()),  # copy, scale, add, triad
        ("gb_per_s", pa.float64()),
    ]
)

TABLES = {"results": RESULTS, "latencies": LATENCIES, "power": POWER, "idle": IDLE, "membw": MEMBW}
