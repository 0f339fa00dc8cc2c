"""Discovery: who holds what across groups and workspaces, with progress display."""
