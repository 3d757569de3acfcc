"""
The transform service over AMP, Twisted's Asynchronous Messaging Protocol;
docs/protocols.md (section AMP) is the contract on the wire.

One module per job, each imported only where needed:

    - L{protocols.amp.wire}: the framing (boxes, split values, error codes,
      the box limit), plain Python, shared by every side, the blocking
      client of L{gateway.syncclient} included;
    - L{protocols.amp.commands}: the AMP commands and argument types;
    - L{protocols.amp.connection}: one connection on Twisted's public AMP
      API, the boxes dispatched by C{amp.BoxDispatcher};
    - L{protocols.amp.server}: L{TransformAMPFactory}, the server;
    - L{protocols.amp.client}: L{AMPTransformClient}, the asynchronous
      client.
"""
