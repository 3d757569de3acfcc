"""
The command lines, in this process: L{gateway.options.CommandOptions} on a
small command of its own (options from the environment and which wins,
errors naming the option and the variable, help), then the same over the
real C{xform} commands (C{xform serve --print-config}, the usage errors of
every command, their help).
"""

import re

import pytest

from gateway.options import CommandOptions, describeValue, positive, repeatable
from gateway.server import ServeOptions
from tests.helpers import ROOT


class Toy(CommandOptions):
    """
    A command with an option of every kind.
    """

    commandName = "toy"
    environmentPrefix = "TOY_"
    optFlags = [["loud", "l", "Say it loud."]]
    optParameters = [
        ["count", "c", 1, "How many.", positive(int)],
        ["name", None, "x", "A name"],
    ]

    def __init__(self) -> None:
        super().__init__()
        self["tag"] = []

    @repeatable
    def opt_tag(self, tag: str) -> None:
        """
        A word to tag it with.
        """
        if not tag.isalpha():
            raise ValueError(f"{tag!r} is not a word")
        self["tag"].append(tag)


def parse(arguments=(), **environ) -> Toy:
    options = Toy()
    options.environ = environ
    options.parseOptions(list(arguments))
    return options


def refused(capsys, arguments=(), **environ) -> str:
    """
    The one line of error that parsing C{arguments} with C{environ} gives,
    with exit status 2.
    """
    with pytest.raises(SystemExit) as exited:
        parse(arguments, **environ)
    assert exited.value.code == 2
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1, err
    return err


def test_fromTheEnvironment():
    """
    Each kind of option takes its value from its variable: a parameter, a
    flag, a repeatable option (several values, separated by spaces).
    """
    options = parse(TOY_COUNT="3", TOY_NAME="two words", TOY_LOUD="yes", TOY_TAG=" a  b ")
    assert (options["count"], options["name"], options["loud"], options["tag"]) == (
        3,
        "two words",
        1,
        ["a", "b"],
    )
    assert options.sources == {
        "count": "environment TOY_COUNT",
        "loud": "environment TOY_LOUD",
        "name": "environment TOY_NAME",
        "tag": "environment TOY_TAG",
    }


@pytest.mark.parametrize("word", ["", "0", "no", "false", "off", "OFF"])
def test_flagNotSet(word):
    assert parse(TOY_LOUD=word)["loud"] == 0


def test_commandLineWins():
    """
    An option given on the command line ignores its variable, a repeatable
    one included; the others still come from theirs.
    """
    options = parse(["-c", "4", "--tag", "z"], TOY_COUNT="3", TOY_TAG="x y", TOY_NAME="n")
    assert (options["count"], options["tag"], options["name"]) == (4, ["z"], "n")
    assert options.sources == {
        "count": "command line",
        "loud": "default",
        "name": "environment TOY_NAME",
        "tag": "command line",
    }


def test_noPrefixNoEnvironment():
    """
    A command without an C{environmentPrefix} reads no variable.
    """
    options = Toy()
    options.environmentPrefix = None
    options.environ = {"TOY_COUNT": "3"}
    options.parseOptions([])
    assert options["count"] == 1


@pytest.mark.parametrize(
    "arguments, environ, message",
    [
        (["--count", "abc"], {}, "toy: --count: 'abc' is not a positive number; see 'toy --help'\n"),
        (["--tag", "a1"], {}, "toy: --tag: 'a1' is not a word; see 'toy --help'\n"),
        (
            [],
            {"TOY_COUNT": "0"},
            "toy: --count: '0' is not a positive number (from TOY_COUNT); see 'toy --help'\n",
        ),
        ([], {"TOY_TAG": "a 1"}, "toy: --tag: '1' is not a word (from TOY_TAG); see 'toy --help'\n"),
        ([], {"TOY_LOUD": "maybe"}, "toy: --loud: 'maybe' is neither yes nor no"),
        (["--bogus"], {}, "toy: option --bogus not recognized; see 'toy --help'\n"),
    ],
)
def test_errorsNameTheOption(capsys, arguments, environ, message):
    """
    A value that cannot be used is one line naming the option, and the
    variable it came from.
    """
    assert refused(capsys, arguments, **environ).startswith(message)


def test_help():
    """
    Each option's help says its default and its variable, and ends with
    one period.
    """
    help = " ".join(str(Toy()).split())
    assert "How many [default: 1; $TOY_COUNT]." in help
    assert "A name [default: x; $TOY_NAME]." in help
    assert "Say it loud [$TOY_LOUD]." in help
    assert "A word to tag it with [repeatable; $TOY_TAG, values separated by spaces]." in help


def helpEntries(help: str) -> dict[str, str]:
    """
    The help text of each option in C{help}, by option.
    """
    entries: dict[str, str] = {}
    options = help.split("Options:\n", 1)[1].split("\n\n")[0]
    for line in options.splitlines():
        match = re.match(r"\s+(?:-\w, )?--([\w-]+)=?\s+(.*)", line)
        if match:
            name, text = match.groups()
            entries[name] = text
        elif line.strip():
            entries[name] += " " + line.strip()
    return entries


COMMANDS = [[], ["serve"], ["transform"], ["transforms"], ["poetry-server"], ["get-poetry"]]


@pytest.mark.parametrize("command", COMMANDS, ids=lambda command: " ".join(["xform", *command]))
def test_helpOfEveryCommand(xformHere, command):
    """
    Every help text of every command ends with exactly one period.
    """
    status, out, err = xformHere(*command, "--help")
    assert status == 0
    entries = helpEntries(out.decode())
    assert "help" in entries and "version" in entries
    for name, text in entries.items():
        assert text.endswith(".") and not text.endswith(".."), (name, text)
    assert ".." not in out.decode().replace("...", "")


def test_serveHelpNamesEveryVariable(xformHere):
    status, out, err = xformHere("serve", "--help")
    for name in ServeOptions().configuration():
        assert f"$XFORM_{name.upper().replace('-', '_')}" in " ".join(out.decode().split())


@pytest.mark.parametrize(
    "arguments, line",
    [
        (["serve", "--deadline", "abc"], "xform serve: --deadline: 'abc' is not a positive number"),
        (
            ["transform", "x", "--timeout", "abc"],
            "xform transform: --timeout: 'abc' is not a positive number",
        ),
        (["transforms", "--bogus"], "xform transforms: option --bogus not recognized"),
        (["poetry-server", "--delay", "x"], "xform poetry-server: --delay: 'x' is not a positive number"),
        (["get-poetry", "--timeout", "x"], "xform get-poetry: --timeout: 'x' is not a positive number"),
        (["--bogus"], "xform: option --bogus not recognized"),
        (["nope"], "xform: Unknown command: nope"),
        ([], "xform: which command? (serve, transform, transforms, poetry-server, get-poetry)"),
    ],
)
def test_usageErrorOfEveryCommand(xformHere, arguments, line):
    """
    A usage error of any command is one line and a hint, never the help.
    """
    status, out, err = xformHere(*arguments)
    command = line.split(":")[0]
    assert (status, out, err) == (2, b"", f"{line}; see '{command} --help'\n")


def printedConfiguration(xformHere, *arguments) -> dict[str, tuple[str, str]]:
    """
    What C{xform serve --print-config} prints: each option's value and where
    it came from.
    """
    status, out, err = xformHere("serve", *arguments, "--print-config")
    assert (status, err) == (0, ""), err
    lines = [re.match(r"(\S+)\s+(.*?)\s+\((.*)\)$", line).groups() for line in out.decode().splitlines()]
    return {name: (value, source) for name, value, source in lines}


def test_printConfig(xformHere):
    """
    C{--print-config} prints every option of C{xform serve}, one per line,
    with its value and where it came from, and exits with 0.
    """
    printed = printedConfiguration(xformHere)
    assert list(printed) == ServeOptions().configuration()
    assert printed["netstring"] == ("tcp:10001:interface=127.0.0.1", "default")
    assert printed["deadline"] == ("5", "default")
    assert printed["allowed-origin"] == ("-", "default")
    assert printed["poems"] == (str(ROOT / "poems"), "default")


def test_everyOptionFromItsVariable(xformHere, monkeypatch):
    """
    Every option of C{xform serve} takes the value it prints from its
    variable (the repeatable ones: L{test_repeatableFromItsVariable}).
    """
    defaults = printedConfiguration(xformHere)
    given = {name: value for name, (value, _) in defaults.items() if value != "-"}
    for name, value in given.items():
        monkeypatch.setenv(f"XFORM_{name.upper().replace('-', '_')}", value)
    printed = printedConfiguration(xformHere)
    for name, value in given.items():
        assert printed[name] == (value, f"environment XFORM_{name.upper().replace('-', '_')}")


def test_repeatableFromItsVariable(xformHere, monkeypatch):
    monkeypatch.setenv("XFORM_ALLOWED_ORIGIN", "http://mybox:8080  https://example.com")
    monkeypatch.setenv("XFORM_UPSTREAM", "a=netstring://127.0.0.1:1 b=amp://127.0.0.1:2")
    printed = printedConfiguration(xformHere)
    assert printed["allowed-origin"] == (
        "http://mybox:8080 https://example.com",
        "environment XFORM_ALLOWED_ORIGIN",
    )
    assert printed["upstream"] == (
        "a=netstring://127.0.0.1:1 b=amp://127.0.0.1:2",
        "environment XFORM_UPSTREAM",
    )


def test_commandLineWinsOverTheEnvironment(xformHere, monkeypatch):
    monkeypatch.setenv("XFORM_DEADLINE", "2.5")
    monkeypatch.setenv("XFORM_AMP", "off")
    monkeypatch.setenv("XFORM_ALLOWED_ORIGIN", "http://mybox:8080")
    printed = printedConfiguration(xformHere, "--deadline", "3", "--allowed-origin", "http://other:1")
    assert printed["deadline"] == ("3", "command line")
    assert printed["amp"] == ("off", "environment XFORM_AMP")
    assert printed["allowed-origin"] == ("http://other:1", "command line")


@pytest.mark.parametrize(
    "variable, value, line",
    [
        ("XFORM_DEADLINE", "abc", "--deadline: 'abc' is not a positive number (from XFORM_DEADLINE)"),
        ("XFORM_LOG_LEVEL", "loud", "--log-level: 'loud' is not one of: debug, info, warn, error, critical"),
        ("XFORM_LOG_FORMAT", "xml", "--log-format: 'xml' is not one of: text, json (from XFORM_LOG_FORMAT)"),
        ("XFORM_POEMS", "/nonexistent", "--poems: '/nonexistent' is not a directory (from XFORM_POEMS)"),
        (
            "XFORM_NETSTRING",
            "nonsense:1",
            "--netstring: invalid endpoint 'nonsense:1': Unknown endpoint type",
        ),
        ("XFORM_UPSTREAM", "a=gopher://x", "--upstream: a: 'gopher://x' is not a server URL"),
        ("XFORM_ALLOWED_ORIGIN", "mybox", "--allowed-origin: "),
    ],
)
def test_invalidValueFromTheEnvironment(xformHere, monkeypatch, variable, value, line):
    """
    A value from the environment that cannot be used is one line naming
    the option and the variable, and exit status 2, before anything
    listens.
    """
    monkeypatch.setenv(variable, value)
    status, out, err = xformHere("serve")
    assert (status, out) == (2, b"")
    assert err.startswith(f"xform serve: {line}") and err.count("\n") == 1, err
    assert f"(from {variable}); see 'xform serve --help'\n" in err


def test_version(xformHere):
    status, out, err = xformHere("serve", "--version")
    assert (status, err) == (0, "") and out.startswith(b"xform-gateway ")


def test_operationsDocumentsEveryOption():
    """
    docs/operations.md has a row for every option of C{xform serve}, with
    its variable and, where it has one, its default.
    """
    rows = re.findall(
        r"^\| `--([\w-]+)` \| `(\w+)` \| ([^|]+) \|", (ROOT / "docs" / "operations.md").read_text(), re.M
    )
    options = ServeOptions()
    assert sorted(name for name, _, _ in rows) == options.configuration()
    for name, variable, default in rows:
        assert variable == options.variableOf(name)
        if options.defaults.get(name) is not None:
            assert default.strip() == f"`{describeValue(options.defaults[name])}`", name
