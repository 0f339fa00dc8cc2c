"""Diagnosis: `doctor`'s checks and the account probe."""
