"""Small helpers with no knowledge of the domain: JSON bounds, redaction, files, terminal, HTML."""
