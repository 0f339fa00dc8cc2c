"""Secret stores: the protocol, the built-in stores and the cloud adapters."""
