"""Shared contracts of ChemWatch: message formats, plant registry, settings, storage.

Imports none of the process packages (ingest, detectors, alerting, simulators).
"""
