"""`python -m databricks_access`: the command line (see `_cli`)."""

from __future__ import annotations

import sys

from databricks_access._cli.app import main

__all__ = ["main"]

if __name__ == "__main__":
    sys.exit(main())
