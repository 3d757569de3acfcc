"""
The bytes a decoder keeps between reads, shared by the incremental decoders
of L{protocols.netstringwire} and L{protocols.amp.wire}; plain Python, for
the blocking clients too.
"""


def keepReceived(kept: bytes | bytearray, offset: int, data: bytes) -> bytes | bytearray:
    """
    What a decoder holds to parse once C{data} has arrived after the bytes
    of C{kept} from C{offset} on (those before it are parsed already).

    When everything kept is parsed -- whole messages in each read, the usual
    case -- it is C{data} itself, not a copy.  Otherwise it is a
    C{bytearray} that grows in place, so that bytes trickling in a few at a
    time are not copied again and again.

    @return: the bytes to parse, from offset 0.
    """
    if offset == len(kept):
        return data
    if isinstance(kept, bytes):
        kept = bytearray(memoryview(kept)[offset:])
    elif offset:
        del kept[:offset]
    kept += data
    return kept
