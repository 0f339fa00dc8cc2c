"""Discovery: who holds what across groups and workspaces (`discovery`, `inventory`, `progress`)."""
