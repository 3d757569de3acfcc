"""
Composition and faces of xform-gateway: options, the service tree built from
endpoint strings, the command line, logging, metrics and the drain.
"""
