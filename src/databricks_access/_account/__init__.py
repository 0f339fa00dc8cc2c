"""Talking to the account API.

Configuration, models, sans-IO flows (`scim_api` ← `access_api` ← `api`), auth, drivers,
the clients (`client`) and their services (`services`, `principals`).
"""
