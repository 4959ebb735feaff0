"""The worked examples in docstrings are part of the documentation: keep them true."""

import doctest
import importlib
import pkgutil

import pytest

import backfill_lab

MODULES = sorted(m.name for m in pkgutil.walk_packages(backfill_lab.__path__, "backfill_lab.")
                 if not m.name.endswith("__main__"))


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.failed == 0
