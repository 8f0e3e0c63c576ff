"""Plant simulators: a registry-driven plant with scripted hazards and faults, ground
truth and scoring, a load generator and a dataset replayer (see docs/simulators.md)."""
