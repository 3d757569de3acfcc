"""
Benchmarks: the gateway against a baseline, in the same run, driven by the
C load generator of ../shared/tools/loadgen.

    python bench/run.py [--rounds N] [--duration S]

For each scenario it starts the gateway and the baseline server as separate
processes pinned to one core, the load generator pinned to the other, and
alternates runs of the two for several rounds.  It prints, per scenario, the
median requests per second and median p50 latency of each, and the ratio
gateway / baseline.  Nothing here asserts a speed: the figures are for
people to read and compare.
"""

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
LOADGEN_SOURCE = Path(os.environ.get("LOADGEN_SOURCE", ROOT.parent / "shared" / "tools" / "loadgen"))
LOADGEN = HERE / ".build" / "loadgen"

#: Both servers run with the same malloc settings, as the load generator's
#: README advises for poems of ~100 KB.
MALLOC = {"MALLOC_MMAP_THRESHOLD_": "262144", "MALLOC_TRIM_THRESHOLD_": "1048576"}


@dataclass(frozen=True)
class Scenario:
    name: str
    mode: str
    loadgen: tuple[str, ...]


SCENARIOS = [
    Scenario("netstring, 200 B poems, 16 connections", "netstring", ("--conns", "16", "--poem-bytes", "200")),
    Scenario(
        "netstring, 100 KB poems, 8 connections", "netstring", ("--conns", "8", "--poem-bytes", "100000")
    ),
]


def freePort() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def pinned(core: int, command: list[str]) -> list[str]:
    return ["taskset", "-c", str(core), *command] if shutil.which("taskset") else command


def waitForPort(port: int, process: subprocess.Popen, timeout: float = 20.0) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {port}")


def servers(port: int) -> dict[str, list[str]]:
    python = sys.executable
    return {
        "gateway": [
            python,
            "-m",
            "gateway",
            "serve",
            "--netstring",
            f"tcp:{port}:interface=127.0.0.1",
            "--log-level",
            "warn",
        ],
        "baseline": [python, str(HERE / "baseline.py"), str(port)],
    }


def measure(server: list[str], port: int, scenario: Scenario, duration: float) -> dict:
    process = subprocess.Popen(
        pinned(1, server), cwd=ROOT, env={**os.environ, **MALLOC}, stderr=subprocess.DEVNULL
    )
    try:
        waitForPort(port, process)
        command = [
            str(LOADGEN),
            scenario.mode,
            "--port",
            str(port),
            "--verify",
            "--warmup",
            "1",
            "--duration",
            str(duration),
            *scenario.loadgen,
        ]
        done = subprocess.run(pinned(0, command), capture_output=True, text=True, check=True)
        return json.loads(done.stdout)
    finally:
        process.terminate()
        process.wait()


def buildLoadgen() -> None:
    if not LOADGEN.exists():
        LOADGEN.parent.mkdir(exist_ok=True)
        subprocess.run(["sh", str(LOADGEN_SOURCE / "build.sh"), str(LOADGEN)], check=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=float, default=4.0)
    arguments = parser.parse_args()
    buildLoadgen()
    print(
        f"{os.cpu_count()} cores; {arguments.rounds} rounds of {arguments.duration:g} s each, alternating\n"
    )
    for scenario in SCENARIOS:
        results: dict[str, list[dict]] = {"gateway": [], "baseline": []}
        for _ in range(arguments.rounds):
            port = freePort()
            for name, command in servers(port).items():
                result = measure(command, port, scenario, arguments.duration)
                if result["errors"]["total"]:
                    print(f"  {name}: errors {result['errors']}")
                results[name].append(result)
        rates = {name: statistics.median(r["req_per_s"] for r in runs) for name, runs in results.items()}
        p50s = {
            name: statistics.median(r["latency_us"]["p50"] for r in runs) for name, runs in results.items()
        }
        print(scenario.name)
        for name in results:
            print(f"  {name:9s} {rates[name]:9.0f} req/s   p50 {p50s[name] / 1000:7.2f} ms")
        print(f"  ratio     {rates['gateway'] / rates['baseline']:9.2f} x baseline throughput\n")


if __name__ == "__main__":
    main()
