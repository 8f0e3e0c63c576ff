"""ChemWatch tooling: the ``chemwatch`` command, the local service stack and the demo.

This package sits above the four service packages (it starts them); none of them
imports it.
"""
