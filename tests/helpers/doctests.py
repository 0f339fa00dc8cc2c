"""Run a module's docstring examples, including those of the names it exports."""

from __future__ import annotations

import doctest


def run_doctests(module, optionflags: int = 0) -> doctest.TestResults:
    """Run the docstring examples of a module and of each name in its `__all__`.

    `doctest.testmod` skips objects whose `__module__` is not the module's own; the
    package shows its classes as `databricks_access.X`, so collect them by name instead.
    """
    runner = doctest.DocTestRunner(optionflags=optionflags)
    shallow, deep = doctest.DocTestFinder(recurse=False), doctest.DocTestFinder()
    globs = dict(vars(module))
    seen: set[str] = set()
    found = list(shallow.find(module, module.__name__, module=False, globs=globs))
    for name in getattr(module, "__all__", ()):
        found += deep.find(
            getattr(module, name), f"{module.__name__}.{name}", module=False, globs=globs
        )
    for test in found:
        if test.examples and test.name not in seen:
            seen.add(test.name)
            runner.run(test)
    return runner.summarize(verbose=False)
