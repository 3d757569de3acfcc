"""
Thin wire adapters over the transform service, one module per protocol.
"""
