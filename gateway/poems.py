"""
The poems the web face serves at C{/poems}: the C{*.txt} files of one
directory, read once when the gateway starts.
"""

import sys
from pathlib import Path

from twisted.logger import Logger

log = Logger()


def defaultPoemsDirectory() -> Path:
    """
    The checkout's C{poems/} when running from one, else the copy installed
    with the package under C{sys.prefix/share/xform-gateway/poems}.
    """
    checkout = Path(__file__).resolve().parent.parent / "poems"
    if checkout.is_dir():
        return checkout
    return Path(sys.prefix) / "share" / "xform-gateway" / "poems"


def loadPoems(directory: Path) -> dict[str, str]:
    """
    The poems of C{directory} by name (the file name without C{.txt}), in
    order of name.  A file that is not UTF-8 is left out, with a warning;
    a directory that does not exist gives no poems.
    """
    poems = {}
    for path in sorted(directory.glob("*.txt")):
        try:
            poems[path.stem] = path.read_text("utf-8")
        except (OSError, UnicodeDecodeError) as error:
            log.warn("not serving poem {path}: {error}", path=str(path), error=error)
    return poems
