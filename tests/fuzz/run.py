"""
Fuzz the gateway's parsers with atheris (libFuzzer for Python), each
target of L{tests.fuzz.targets} for a bounded time, one process each:

    python -m tests.fuzz.run [--seconds N] [TARGET ...]

(C{make fuzz}, C{FUZZ_SECONDS=N} a target, 45 by default.)  Each target
starts from its seeds (C{tests/fuzz/seeds/TARGET/}) and the inputs that
failed before (C{tests/fuzz/regressions/TARGET/}), and grows a corpus of
its own under C{artifacts/fuzz/corpus/TARGET/}, which later runs start
from.  An input that makes a target fail is copied into
C{tests/fuzz/regressions/TARGET/}, which the default suite replays
(L{tests.test_fuzz_regressions}): add it to git with the fix.  The exit
status is 1 if any target failed.

    python -m tests.fuzz.run --replay

runs every target on its seeds and kept inputs, without atheris, and
prints one JSON object: for each input (C{TARGET/seeds/NAME},
C{TARGET/regressions/NAME}), C{null}, or the traceback of its failure.
The suite runs it in a process of its own: the web face sends the page's
files with Twisted's global cooperator, whose work must not outlive it.
"""

import argparse
import json
import shutil
import subprocess
import sys
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SEEDS = ROOT / "tests" / "fuzz" / "seeds"
REGRESSIONS = ROOT / "tests" / "fuzz" / "regressions"
WORK = ROOT / "artifacts" / "fuzz"
TARGETS = ("netstring", "amp", "jsonrpc", "http")

#: The code atheris instruments for coverage: the gateway's, and the
#: libraries that parse for it.
INSTRUMENTED = ["protocols", "service", "gateway", "tests", "twisted.web", "twisted.protocols", "autobahn"]


def fuzz(target: str, seconds: int) -> None:
    """
    Fuzz C{target} in this process for C{seconds}; libFuzzer ends the
    process.
    """
    import atheris
    from twisted.logger import globalLogBeginner

    # The targets watch the log themselves; nothing else should print it.
    globalLogBeginner.beginLoggingTo([], discardBuffer=True, redirectStandardIO=False)
    with atheris.instrument_imports(include=INSTRUMENTED):
        from tests.fuzz.targets import TARGETS as FUNCTIONS
    corpus, crashes = WORK / "corpus" / target, WORK / "crashes" / target
    for directory in (corpus, crashes, REGRESSIONS / target):
        directory.mkdir(parents=True, exist_ok=True)
    arguments = [
        sys.argv[0],
        f"-max_total_time={seconds}",
        f"-artifact_prefix={crashes}/",
        "-timeout=20",
        "-rss_limit_mb=2048",
        "-max_len=20000",
        "-print_final_stats=1",
        str(corpus),
        str(SEEDS / target),
        str(REGRESSIONS / target),
    ]
    atheris.Setup(arguments, FUNCTIONS[target])
    atheris.Fuzz()


def inputs() -> list[tuple[str, str, Path]]:
    """
    Every input kept: its target, whether it is a seed or a regression, and
    its file.
    """
    return sorted(
        (target, kind, path)
        for target in TARGETS
        for kind, directory in (("seeds", SEEDS), ("regressions", REGRESSIONS))
        for path in (directory / target).glob("*")
        if path.is_file()
    )


def replay() -> dict[str, str | None]:
    """
    Run every input kept through its target.
    """
    from tests.fuzz.targets import TARGETS

    outcomes = {}
    for target, kind, path in inputs():
        try:
            TARGETS[target](path.read_bytes())
        except BaseException:
            outcomes[f"{target}/{kind}/{path.name}"] = traceback.format_exc()
        else:
            outcomes[f"{target}/{kind}/{path.name}"] = None
    return outcomes


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=int, default=45, help="how long to fuzz each target")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--replay", action="store_true", help="run the inputs kept, print the outcomes")
    parser.add_argument(
        "targets", nargs="*", metavar="TARGET", help=f"of {', '.join(TARGETS)} (all by default)"
    )
    options = parser.parse_args()
    unknown = set(options.targets) - set(TARGETS)
    if unknown:
        parser.error(f"no target {', '.join(sorted(unknown))}")
    if options.child:
        fuzz(options.child, options.seconds)
        return 0
    if options.replay:
        print(json.dumps(replay()))
        return 0
    failed = []
    for target in options.targets or TARGETS:
        print(f"== fuzzing {target} for {options.seconds} s", flush=True)
        crashes = WORK / "crashes" / target
        known = set(crashes.iterdir()) if crashes.is_dir() else set()
        command = [
            sys.executable,
            "-m",
            "tests.fuzz.run",
            "--seconds",
            str(options.seconds),
            "--child",
            target,
        ]
        status = subprocess.run(command, cwd=ROOT).returncode
        found = sorted(set(crashes.iterdir()) - known) if crashes.is_dir() else []
        for crash in found:
            kept = REGRESSIONS / target / crash.name
            shutil.copyfile(crash, kept)
            print(f"== {target}: a failing input, kept as {kept.relative_to(ROOT)}", flush=True)
        if status or found:
            failed.append(target)
    print(f"== failed: {', '.join(failed)}" if failed else "== every target ran clean", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
