"""``chemwatch bench e2e``: the whole pipeline on this machine, measured end to end.

Modules, one job each: ``plant`` (the generated registry), ``services`` (private names
and the ChemWatch processes), ``probes`` (latency probes and their observers),
``sampler`` (CPU, RSS and lag over time), ``ledger`` (loss check against the
simulator's ledger), ``stats`` (pure figures and verdicts), ``report`` (Markdown, JSON,
PNG) and ``runner`` (steps, configurations, soak).
"""
