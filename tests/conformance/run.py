"""
WebSocket conformance: Autobahn|Testsuite's fuzzing client against the
gateway's WebSocket endpoints (C{make conformance}).

    python tests/conformance/run.py --wstest .venv-wstest/bin/wstest

It starts L{tests.conformance.server} on a free loopback port and runs
C{wstest -m fuzzingclient} against two agents:

    - C{gateway-echo}: C{/echo}, the gateway's WebSocket protocol and options
      answering each message with itself, for every case but compression;
    - C{gateway-ws}: C{/ws} itself, for the cases that need no echo.

Every case must end C{OK}, or with one of the outcomes listed in
L{EXPECTED} for the reason given there.  The reports (HTML and JSON, one
per case) are left in C{artifacts/conformance/}.  Exit status 0 when every
case is as expected, 1 otherwise.
"""

import argparse
import json
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

#: Compression (permessage-deflate) is not offered, deliberately: it would
#: let a small message expand into a large one in the gateway's memory.
UNOFFERED = ["12.*", "13.*"]

#: The cases that send a text message and expect it echoed before what they
#: test: run against /echo only.
NEED_AN_ECHO = ["3.2", "3.3", "3.4", "4.1.3", "4.1.4", "4.1.5", "4.2.3", "4.2.4", "4.2.5", "7.1.1"]

#: Outcomes other than OK that are expected, by case, with the reason.
EXPECTED = {
    **dict.fromkeys(
        ["6.4.1", "6.4.2", "6.4.3", "6.4.4"],
        (
            "NON-STRICT",
            "text is checked to be UTF-8 once its message is whole, not frame by frame: "
            "the connection fails with 1007 at the message's end rather than at the first wrong byte",
        ),
    ),
    "7.1.6": (
        "INFORMATIONAL",
        "a close right behind a 256 KiB message: RFC 6455 leaves open how much of the echo goes out",
    ),
    "7.13.1": (
        "INFORMATIONAL",
        "close code 5000 is outside the ranges RFC 6455 defines; behaviour is undefined",
    ),
    "7.13.2": (
        "INFORMATIONAL",
        "close code 65536 is outside the ranges RFC 6455 defines; behaviour is undefined",
    ),
}

#: The largest poem the conformance gateway accepts: 4 MiB, so that its
#: message limit (six bytes per byte of poem, for JSON escapes) passes the
#: testsuite's largest message, 16 MiB.  With the default 1 MiB, cases
#: 9.1.5, 9.1.6, 9.2.5 and 9.2.6 (8 and 16 MiB messages) are refused with
#: close code 1009, as the limit says they must be.
MAX_POEM_BYTES = 4 * 1024 * 1024


def freePort() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def waitForPort(port: int, server: subprocess.Popen, seconds: float = 20.0) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if server.poll() is not None:
            raise SystemExit(f"the conformance server exited with {server.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"the conformance server did not listen on {port} within {seconds:g} s")


def spec(port: int, outdir: Path) -> dict:
    """
    The fuzzing client's specification: every case against /echo, the
    cases that need no echo against /ws.
    """
    return {
        "outdir": str(outdir),
        "servers": [
            {"agent": "gateway-echo", "url": f"ws://127.0.0.1:{port}/echo"},
            {"agent": "gateway-ws", "url": f"ws://127.0.0.1:{port}/ws"},
        ],
        "cases": ["*"],
        "exclude-cases": UNOFFERED,
        "exclude-agent-cases": {"gateway-ws": ["1.*", "5.*", "6.*", "9.*", "10.*", *NEED_AN_ECHO]},
    }


def verdicts(index: dict) -> list[str]:
    """
    One line per case whose outcome is not what it should be.
    """
    problems = []
    for agent, cases in sorted(index.items()):
        for case, result in sorted(cases.items(), key=lambda item: [int(n) for n in item[0].split(".")]):
            behaviour = result["behavior"]
            expected, _ = EXPECTED.get(case, ("OK", ""))
            if behaviour != expected and not (behaviour == "OK" and case in EXPECTED):
                problems.append(f"{agent} {case}: {behaviour} (close: {result['behaviorClose']})")
    return problems


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--wstest", required=True, help="the wstest command of Autobahn|Testsuite")
    parser.add_argument("--outdir", type=Path, default=ROOT / "artifacts" / "conformance")
    arguments = parser.parse_args()
    arguments.outdir.mkdir(parents=True, exist_ok=True)
    port = freePort()
    server = subprocess.Popen(
        [sys.executable, str(Path(__file__).with_name("server.py")), str(port), str(MAX_POEM_BYTES)],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=open(arguments.outdir / "server.log", "w"),
    )
    try:
        waitForPort(port, server)
        specFile = arguments.outdir / "fuzzingclient.json"
        specFile.write_text(json.dumps(spec(port, arguments.outdir / "reports"), indent=2))
        with open(arguments.outdir / "wstest.log", "w") as log:
            subprocess.run(
                [str(Path(arguments.wstest).resolve()), "-m", "fuzzingclient", "-s", str(specFile)],
                cwd=arguments.outdir,
                stdout=log,
                stderr=subprocess.STDOUT,
                check=True,
                timeout=900,
            )
    finally:
        server.terminate()
        server.wait(10)
    index = json.loads((arguments.outdir / "reports" / "index.json").read_text())
    counts: dict[str, int] = {}
    for cases in index.values():
        for result in cases.values():
            counts[result["behavior"]] = counts.get(result["behavior"], 0) + 1
    total = sum(counts.values())
    print(f"{total} cases: " + ", ".join(f"{count} {name}" for name, count in sorted(counts.items())))
    for case, (behaviour, reason) in EXPECTED.items():
        print(f"  {case} {behaviour}: {reason}")
    problems = verdicts(index)
    for problem in problems:
        print(f"UNEXPECTED {problem}")
    print(f"reports: {arguments.outdir / 'reports' / 'index.html'}")
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
