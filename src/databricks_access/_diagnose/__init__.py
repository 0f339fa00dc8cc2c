"""Diagnosis: `doctor`'s checks and the account probe (`probe_plan`, `probe_script`, `probe`)."""
