"""
Command line conventions shared by the C{xform} commands.
"""

import getopt

from twisted.python import usage


class InterleavedOptions(usage.Options):
    """
    Options that may come before, between or after the positional arguments,
    as GNU tools allow (C{xform transform NAME --server URL FILE});
    C{usage.Options} alone stops at the first positional argument.  A C{--}
    still ends the options.
    """

    def parseOptions(self, options=None):
        if options is None:
            return super().parseOptions(options)
        try:
            found, positional = getopt.gnu_getopt(options, self.shortOpt, self.longOpt)
        except getopt.GetoptError as error:
            raise usage.UsageError(str(error)) from None
        ordered = []
        for name, value in found:
            if name.startswith("--"):
                ordered.append(f"{name}={value}" if f"{name[2:]}=" in self.longOpt else name)
            else:
                ordered.append(name + value)
        return super().parseOptions([*ordered, "--", *positional])
