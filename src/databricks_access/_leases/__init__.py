"""The just-in-time domain.

Lease values, audit events, the store protocol, membership and the tracker.
"""
