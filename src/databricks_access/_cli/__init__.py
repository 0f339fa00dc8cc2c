"""The `databricks-access` command line."""
