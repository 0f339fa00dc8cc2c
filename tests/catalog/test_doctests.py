"""The catalog modules' docstring examples run."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = ["_hosts", "_api", "_models", "_reports", "_summary", "_access"]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name: str):
    module = importlib.import_module(f"databricks_access._catalog.{name}")
    result = doctest.testmod(module)
    assert result.failed == 0
