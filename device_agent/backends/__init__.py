"""Inference backends: one per component kind (``cpu``, ``gpu``, ``external``, ``simulated``)."""
