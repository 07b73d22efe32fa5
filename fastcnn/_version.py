"""The package version (one copy: pyproject.toml's [project] version must equal it, tests/test_api.py)."""

__version__ = "0.1.0"
