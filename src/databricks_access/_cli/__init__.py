"""The `databricks-access` command line.

`app.main` runs it: `parser` reads the arguments, `session` loads the configuration and
opens what a command needs, `commands` holds one function per command, `render` prints,
and `errors` turns a failure into one line and an exit code.
"""
