"""What a group unlocks: Unity Catalog privileges behind every group, read through workspaces.

- `WorkspaceClient` / `AsyncWorkspaceClient`: one workspace's Unity Catalog read API, on
  the account's service principal (OAuth M2M at the workspace's own token endpoint).
- `CatalogReader` / `AsyncCatalogReader`: every metastore of the account read once, and
  the answers `unlocks(group)` and `explain_access(principal)`.
- `unlocks`, `explain_access` (and `aunlocks`, `aexplain_access`): one-call forms.
"""
