"""Fixtures shared by every test in the repository: real servers on free ports."""

pytest_plugins = ["paraphe_devstack.fixtures"]
