"""The integration: its configuration, owners, policy and access requests with approvals."""
