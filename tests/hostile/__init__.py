"""
The hostile-client suite: attacks on a real C{xform serve} over loopback,
each while a polite client is served on every protocol (docs/reliability.md).
"""
