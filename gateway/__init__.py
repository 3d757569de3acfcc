"""
Composition and faces of xform-gateway: options, the service tree built from
endpoint strings, the command line, logging and worker threads.
"""
