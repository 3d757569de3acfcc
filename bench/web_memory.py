"""
Resident memory per idle WebSocket connection, the gateway's against bare
Autobahn's, as C{make bench}'s idle-memory scenario measures it but for
WebSocket alone and over several rounds:

    .venv/bin/python bench/web_memory.py --connections 3000 --rounds 3

Each round starts each server afresh (the gateway with the idle-memory
scenario's options), holds C{--connections} upgraded WebSockets open with
C{idle_connections.py}, and takes the growth of its RSS; it prints each
round and the medians.  With C{--before NAME=DIR} (repeatable) an earlier
tree's gateway is measured too.  Memory does not depend on the load on the
machine as timings do.
"""

import argparse
import os
import statistics
import sys
from dataclasses import replace
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE / "baselines")]

import run  # noqa: E402
from harness import Running  # noqa: E402


def servers(earlier: dict[str, Path]) -> list:
    found = [run.gateway("web", *run.IDLE), run.baseline("autobahn_ws.py", "bare Autobahn")]
    for name, directory in earlier.items():
        # python -m gateway imports the gateway of the directory it runs in.
        gateway = run.gateway("web", *run.IDLE, name=name)
        found.append(replace(gateway, argv=("env", "-C", str(directory), *gateway.argv)))
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--connections", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--before", action="append", default=[], metavar="NAME=DIR")
    options = parser.parse_args()
    earlier = dict(item.partition("=")[::2] for item in options.before)
    connections = run.raiseFileLimit(options.connections)
    scenario = run.IdleMemory([])
    found: dict[str, list[float]] = {}
    logs = HERE / "results" / "logs" / "web_memory"
    for number in range(options.rounds):
        for server in servers({name: Path(directory) for name, directory in earlier.items()}):
            with Running([server], logs) as (running,):
                row = scenario.measure(running, "ws", connections)
            found.setdefault(server.name, []).append(row["kb_per_connection"])
            print(
                f"  round {number + 1}: {server.name:24} {row['connections']:,} connections "
                f"({row['failed']} failed): {row['kb_per_connection']:.2f} KiB each",
                flush=True,
            )
    bare = statistics.median(found["bare Autobahn"])
    for name, values in found.items():
        median = statistics.median(values)
        print(f"{name:24} {median:6.2f} KiB per idle WebSocket, {median / bare:.2f}x bare Autobahn's")


if __name__ == "__main__":
    os.chdir(HERE.parent)
    main()
