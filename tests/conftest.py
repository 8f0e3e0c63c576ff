"""Test configuration: fixture modules are plugins, shared by every test package."""

pytest_plugins = [
    "tests.fixtures.services",
    "tests.fixtures.processes",
    "tests.fixtures.late_proxy",
]
