"""Talking to the account API.

Configuration, models, sans-IO flows, auth, drivers and the clients.
"""
