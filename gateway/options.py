"""
Command line conventions shared by the C{xform} commands, and by the
C{xform-gateway} twistd plugin, whose options are those of C{xform serve}.

The options of every command are a L{CommandOptions}, which adds to Twisted's
C{usage.Options}:

    - B{one line per usage error}, with a hint, never the whole help::

          xform serve: --deadline: 'abc' is not a positive number; see 'xform serve --help'

    - B{the option named in every error about its value}: a coercer of
      C{optParameters}, or an C{opt_} handler, raises C{ValueError} with the
      reason alone, and the option's name is put in front of it (Twisted's
      own message, "Parameter type enforcement failed", names nothing);
    - B{options from the environment}, for a command with an
      L{CommandOptions.environmentPrefix}: option C{--max-poem-bytes} can
      also be given as C{XFORM_MAX_POEM_BYTES}, and the command line wins.
      The variable of a L{repeatable} option holds its values separated by
      spaces; a flag's holds C{1}, C{true}, C{yes} or C{on} for set (C{0},
      C{false}, C{no}, C{off} or nothing for not set).  Where each value came
      from is kept in L{CommandOptions.sources}, for C{--print-config} and
      for the errors, which name the variable a bad value came from;
    - B{help texts} that end with one period and say each option's default
      and variable.

All of it works on what C{usage.Options} declares (C{optFlags},
C{optParameters}, C{opt_} methods), so that every option gets it, new ones
included.
"""

import functools
import getopt
import inspect
import os
import sys
import textwrap
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, NoReturn

from twisted.python import reflect, usage

if TYPE_CHECKING:
    from twisted.internet.interfaces import IStreamServerEndpoint

#: Where a value came from, besides C{environment VARIABLE}.
DEFAULT = "default"
COMMAND_LINE = "command line"

#: What a flag's variable may hold, to set it or not.
TRUE_WORDS = frozenset({"1", "true", "yes", "on"})
FALSE_WORDS = frozenset({"", "0", "false", "no", "off"})


def version() -> str:
    """
    The installed version of xform-gateway, or C{unknown}.
    """
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as installedVersion

    try:
        return installedVersion("xform-gateway")
    except PackageNotFoundError:
        return "unknown"


class OptionError(usage.UsageError):
    """
    A value of an option that cannot be used.

    @ivar option: the option's long name, without dashes.
    @ivar reason: what is wrong with the value.
    """

    def __init__(self, option: str, reason: str) -> None:
        super().__init__(f"--{option}: {reason}")
        self.option = option
        self.reason = reason


def repeatable(handler: Callable) -> Callable:
    """
    Mark an C{opt_} handler as an option that may be given several times:
    its environment variable holds several values, separated by spaces, and
    the handler is called once for each.
    """
    handler.repeatable = True
    return handler


def _namingErrors(option: str, function: Callable) -> Callable:
    """
    C{function} (a coercer or an C{opt_} handler of C{--option}), raising
    L{OptionError} about C{option} where it raises C{ValueError}.
    """

    @functools.wraps(function)
    def named(*arguments):
        try:
            return function(*arguments)
        except ValueError as error:
            raise OptionError(option, str(error)) from None

    return named


def _arity(function: Callable) -> int:
    """
    How many parameters C{function} takes, as C{inspect} (and so
    C{usage.Options}) sees it, through the wrappers of L{_namingErrors}.
    """
    return len(inspect.signature(function).parameters)


def _parameter(declaration: list) -> list:
    """
    An entry of C{optParameters} with all five fields: long and short name,
    default, help, coercer.
    """
    return [*declaration, None, None, None, None][:5]


class CommandOptions(usage.Options):
    """
    The options of an C{xform} command; see the module's docstring.

    @cvar commandName: the command's name in messages when it is not a
        subcommand (a subcommand is named by its parents: C{xform serve},
        C{twistd xform-gateway}).
    @cvar environmentPrefix: the prefix of the environment variables the
        options also come from, or C{None} for none.
    @cvar notConfiguration: the options that ask the command to do something
        rather than configure it: never from the environment, never shown as
        configuration.
    @cvar interleaved: whether options may come between and after the
        positional arguments, as GNU tools allow (C{xform transform NAME
        --server URL FILE}); a C{--} still ends the options.

    @ivar environ: the environment that L{parseOptions} reads.
    @ivar sources: where the value of each option came from: L{DEFAULT},
        L{COMMAND_LINE} or C{environment VARIABLE}.
    @ivar variables: the variable of each option that came from the
        environment.
    """

    commandName: str | None = None
    environmentPrefix: str | None = None
    notConfiguration = frozenset({"help", "version"})
    interleaved = False

    def __init_subclass__(cls, **keywords) -> None:
        """
        Have the coercers and C{opt_} handlers that the class declares name
        their option in their errors.
        """
        super().__init_subclass__(**keywords)
        if "optParameters" in cls.__dict__:
            cls.optParameters = [
                [long, short, default, doc, coerce and _namingErrors(long, coerce)]
                for long, short, default, doc, coerce in map(_parameter, cls.optParameters)
            ]
        wrapped: dict[Callable, Callable] = {}
        # Longest names first: synonyms (opt_s = opt_server) stay one
        # handler, named by its longest name.
        for name, handler in sorted(cls.__dict__.items(), key=lambda item: -len(item[0])):
            if name.startswith("opt_") and inspect.isfunction(handler) and _arity(handler) == 2:
                if handler not in wrapped:
                    wrapped[handler] = _namingErrors(name[4:].replace("_", "-"), handler)
                setattr(cls, name, wrapped[handler])

    def __init__(self) -> None:
        super().__init__()
        self.environ: Mapping[str, str] = os.environ
        self.sources: dict[str, str] = {}
        self.variables: dict[str, str] = {}

    def opt_version(self) -> None:
        """
        Print the version and exit.
        """
        print(f"xform-gateway {version()}")
        raise SystemExit(0)

    def parseOptions(self, options: list[str] | None = None) -> None:
        """
        Parse C{options} (the program's arguments by default) and the
        environment; on a usage error, print one line and exit with status 2
        (L{exitWithUsageError}).
        """
        arguments = sys.argv[1:] if options is None else list(options)
        try:
            if self.interleaved:
                arguments = self._interleave(arguments)
            named = self._namedIn(arguments)
            self.sources = {name: COMMAND_LINE if name in named else DEFAULT for name in self.configuration()}
            self._readEnvironment(skip=named)
            super().parseOptions(arguments)
        except usage.UsageError as error:
            self.exitWithUsageError(error)

    def _interleave(self, arguments: list[str]) -> list[str]:
        """
        C{arguments} with every option before the positional arguments.
        """
        try:
            found, positional = getopt.gnu_getopt(arguments, self.shortOpt, self.longOpt)
        except getopt.GetoptError as error:
            raise usage.UsageError(str(error)) from None
        ordered = []
        for name, value in found:
            if name.startswith("--"):
                ordered.append(f"{name}={value}" if f"{name[2:]}=" in self.longOpt else name)
            else:
                ordered.append(name + value)
        return [*ordered, "--", *positional]

    def _namedIn(self, arguments: list[str]) -> set[str]:
        """
        The long names of the options that C{arguments} give (none if they
        cannot be parsed: parsing them says why).
        """
        scan = getopt.getopt if getattr(self, "subCommands", None) else getopt.gnu_getopt
        try:
            found, _ = scan(arguments, self.shortOpt, self.longOpt)
        except getopt.GetoptError:
            return set()
        named = set()
        for option, _ in found:
            name = option.lstrip("-")
            name = self.synonyms.get(name) or self.synonyms.get(name.replace("-", "_"), name)
            named.add(name.replace("_", "-"))
        return named

    def _readEnvironment(self, skip: set[str]) -> None:
        """
        Give each option not in C{skip} the value of its environment
        variable, if that is set.
        """
        if self.environmentPrefix is None:
            return
        for name in self.configuration():
            variable = self.variableOf(name)
            if name in skip or variable not in self.environ:
                continue
            self.sources[name] = f"environment {variable}"
            self.variables[name] = variable
            self._give(name, self.environ[variable])

    def _give(self, name: str, text: str) -> None:
        """
        Give option C{name} the value C{text}, as the command line would.

        @raise usage.UsageError: if the value cannot be used.
        """
        parameters: list[list] = []
        reflect.accumulateClassList(type(self), "optParameters", parameters)
        coercers = {long: coerce for long, _, _, _, coerce in map(_parameter, parameters)}
        handler = getattr(self, "opt_" + name.replace("-", "_"), None)
        if name in coercers:
            self[name] = (coercers[name] or str)(text)
        elif handler is not None and _arity(handler) == 1:
            for value in text.split() if getattr(handler, "repeatable", False) else [text]:
                handler(value)
        elif text.strip().lower() in TRUE_WORDS:
            if handler is not None:
                handler()
            else:
                self[name] = 1
        elif text.strip().lower() not in FALSE_WORDS:
            raise OptionError(name, f"{text!r} is neither yes nor no (1, true, yes, on; 0, false, no, off)")

    def configuration(self) -> list[str]:
        """
        The long names of the options that configure the command (every one
        but L{notConfiguration}), in order.
        """
        return sorted({option.rstrip("=") for option in self.longOpt} - self.notConfiguration)

    def variableOf(self, name: str) -> str:
        """
        The environment variable of option C{name}: C{XFORM_MAX_POEM_BYTES}
        for C{max-poem-bytes}.
        """
        return f"{self.environmentPrefix}{name.upper().replace('-', '_')}"

    def describeConfiguration(self) -> str:
        """
        The effective configuration: one line per option, its name, its
        value as L{describeValue} writes it, and where that came from.
        """
        names = self.configuration()
        width = max(map(len, names), default=0)
        return "\n".join(
            f"{name:<{width}}  {describeValue(self.get(name))}  ({self.sources.get(name, DEFAULT)})"
            for name in names
        )

    def fullName(self) -> str:
        """
        The command's name in messages: C{xform serve}, C{twistd
        xform-gateway}.
        """
        if self.parent is None:
            return self.commandName or os.path.basename(sys.argv[0])
        if isinstance(self.parent, CommandOptions):
            parentName = self.parent.fullName()
        else:
            parentName = os.path.basename(sys.argv[0])
        return f"{parentName} {self.parent.subCommand}"

    def exitWithUsageError(self, error: usage.UsageError) -> NoReturn:
        """
        Print C{error} on standard error as one line with a hint, naming the
        variable of the option it is about if its value came from the
        environment, and exit with status 2.
        """
        message = str(error)
        if isinstance(error, OptionError) and error.option in self.variables:
            message = f"{message} (from {self.variables[error.option]})"
        name = self.fullName()
        print(f"{name}: {message}; see '{name} --help'", file=sys.stderr)
        raise SystemExit(2)

    def getUsage(self, width: int | None = None) -> str:
        """
        The help: each option with its text, its default and its variable,
        ended by one period; then the description, then the subcommands.
        """
        if getattr(self, "subOptions", None) is not None:
            return self.subOptions.getUsage(width=width)
        width = width or int(os.environ.get("COLUMNS", "80"))
        shortNames = {long: short for short, long in self.synonyms.items() if len(short) == 1}
        options = [
            {
                "long": option.rstrip("="),
                "short": shortNames.get(option.rstrip("=")),
                "doc": self._help(option.rstrip("="), isParameter=option.endswith("=")),
                "optType": "parameter" if option.endswith("=") else "flag",
            }
            for option in sorted(self.longOpt)
        ]
        text = "Options:\n" + "".join(usage.docMakeChunks(options, width))
        longdesc = getattr(self, "longdesc", None)
        if longdesc:
            text += "\n" + "\n".join(textwrap.wrap(longdesc, width)) + "\n"
        commands = getattr(self, "subCommands", None)
        if commands:
            chunks = [
                {"long": name, "short": short, "doc": sentence(doc), "optType": "command"}
                for name, short, _, doc in commands
            ]
            text += "\nCommands:\n" + "".join(usage.docMakeChunks(chunks, width))
        return text

    def _help(self, name: str, isParameter: bool) -> str:
        """
        The help text of option C{name}: its own, then its default and its
        variable, as one sentence.
        """
        notes = []
        default = self.defaults.get(name)
        if isParameter and default not in (None, [], {}):
            notes.append(f"default: {describeValue(default)}")
        handler = getattr(self, "opt_" + name.replace("-", "_"), None)
        several = getattr(handler, "repeatable", False)
        if several:
            notes.append("repeatable")
        if self.environmentPrefix is not None and name not in self.notConfiguration:
            notes.append(f"${self.variableOf(name)}" + (", values separated by spaces" if several else ""))
        text = " ".join((self.docs.get(name) or "").split()).rstrip(".")
        return sentence(f"{text} [{'; '.join(notes)}]" if notes else text)


class InterleavedOptions(CommandOptions):
    """
    Options that may come before, between or after the positional arguments
    (C{xform transform NAME --server URL FILE}).
    """

    interleaved = True


def sentence(text: str) -> str:
    """
    C{text} ended by exactly one period.
    """
    text = text.rstrip().rstrip(".")
    return f"{text}." if text else ""


def describeValue(value: object) -> str:
    """
    An option's value as a user would write it: the values of a repeatable
    option separated by spaces (C{PREFIX=URL} for a mapping), numbers
    without a needless C{.0}, C{-} for none.
    """
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, Mapping):
        return " ".join(f"{key}={describeValue(item)}" for key, item in value.items()) or "-"
    if isinstance(value, list | tuple):
        return " ".join(map(describeValue, value)) or "-"
    return str(value)


def positive(kind: type, orZero: bool = False) -> Callable[[str], int | float]:
    """
    A coercer for C{usage.Options} parameters: C{text} as a C{kind} that
    must be above zero (or zero, with C{orZero}).
    """

    def parse(text: str) -> int | float:
        try:
            value = kind(text)
        except ValueError:
            value = None
        if value is None or not (value >= 0 if orZero else value > 0):
            raise ValueError(f"{text!r} is not {'zero or ' if orZero else ''}a positive number")
        return value

    return parse


def oneOf(*choices: str) -> Callable[[str], str]:
    """
    A coercer for C{usage.Options} parameters: C{text}, which must be one of
    C{choices}.
    """

    def parse(text: str) -> str:
        if text not in choices:
            raise ValueError(f"{text!r} is not one of: {', '.join(choices)}")
        return text

    return parse


def serverEndpoint(reactor, description: str, option: str) -> "IStreamServerEndpoint":
    """
    The server endpoint that the endpoint string C{description}, given to
    C{--<option>}, describes.  An C{ssl:} endpoint reads its certificate and
    private key here, so that a missing or unusable file is found at once.

    @raise OptionError: if it is invalid.
    """
    from OpenSSL.crypto import Error as OpenSSLError
    from twisted.internet.endpoints import serverFromString
    from twisted.internet.error import VerifyError

    invalid = f"invalid endpoint {description!r}"
    try:
        return serverFromString(reactor, description)
    except (ValueError, KeyError, TypeError) as error:
        raise OptionError(option, f"{invalid}: {error}") from None
    except OSError as error:
        raise OptionError(option, f"{invalid}: cannot read {error.filename}: {error.strerror}") from None
    except VerifyError:
        raise OptionError(
            option, f"{invalid}: its certificate (certKey=) and private key (privateKey=) do not match"
        ) from None
    except OpenSSLError as error:
        reasons = ", ".join(reason for _, _, reason in error.args[0])
        raise OptionError(
            option,
            f"{invalid}: cannot load its certificate (certKey=) and private key (privateKey=) "
            f"from PEM files (OpenSSL: {reasons})",
        ) from None


def readPoem(path: str | None) -> str:
    """
    The poem in the file at C{path}, or on standard input for C{None}.

    @raise ValueError: with a message fit for a user, if it cannot be read
        or is not UTF-8 text.
    """
    try:
        if path is None:
            return sys.stdin.buffer.read().decode("utf-8")
        with open(path, "rb") as file:
            return file.read().decode("utf-8")
    except OSError as error:
        raise ValueError(f"cannot read {path}: {error.strerror}") from None
    except UnicodeDecodeError:
        raise ValueError(f"{path or 'standard input'} is not UTF-8 text") from None
