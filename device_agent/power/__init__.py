"""On-board power sensors, sampled in a background thread during the measurement window.

``base`` (the ``PowerSensor`` protocol and ``Sample``), ``gate`` (one sample
per sensor conversion), ``ina231`` (vendor-kernel INA231 sysfs), ``hwmon``
(mainline hwmon ina2xx), ``sampler`` (the thread), ``energy`` (per-rail
statistics over the window), ``powerfile`` (``power.csv``) and ``session``
(a job's rails from start to restore). Only ``device_agent.sysfs`` touches
sysfs.
"""
