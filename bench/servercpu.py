"""
The CPU time each server spends per request under the harness's load:
the throughput scenarios of C{run.py}, their servers and load generators,
but measured by the server's own CPU time (user and system, from /proc)
over the requests it answered, rather than by requests per second.

    .venv/bin/python bench/servercpu.py amp-200 ns-200 [--rounds 3] [--duration 3]

On a machine shared with other work, req/s varies several times from run to
run; the CPU time a server spends per request much less (it still counts
what the kernel does for the server's sockets, and caches shared with other
work slow it a little).  At saturation on one core, req/s is about the
inverse of it, so the ratio printed (the baseline's CPU per request over
the gateway's) reads as the throughput ratio of a quiet machine.  Nothing
here asserts a speed.
"""

import argparse
import os
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import Running, buildLoadgen  # noqa: E402
from run import RESULTS, Throughput, rotated, scenarios  # noqa: E402


def cpuSeconds(pid: int) -> float:
    """
    The user and system CPU time of process C{pid} so far.
    """
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.strip().split("\n\n")[0])
    parser.add_argument("scenarios", nargs="+", metavar="SCENARIO")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=float, default=3.0)
    options = parser.parse_args()
    known = {
        scenario.name: scenario for scenario in scenarios(useUvloop=True) if isinstance(scenario, Throughput)
    }
    for name in options.scenarios:
        if name not in known:
            parser.error(f"unknown scenario {name!r}: choose among {', '.join(known)}")
    buildLoadgen()
    print(f"load average {os.getloadavg()[0]:.2f}", flush=True)
    for name in options.scenarios:
        scenario = known[name]
        costs: dict[str, list[float]] = {server.name: [] for server in scenario.servers}
        rates: dict[str, list[float]] = {server.name: [] for server in scenario.servers}
        with Running(scenario.servers, RESULTS / "logs" / "servercpu" / name) as running:
            for number in range(options.rounds):
                for each in rotated(running, number):
                    each.check()
                    before = cpuSeconds(each.process.pid)
                    # No warm-up: the CPU time and the requests then cover the same span.
                    measure = scenario.load.measure(each.port, options.duration, 0)
                    spent = cpuSeconds(each.process.pid) - before
                    if measure.errorCount or not measure.requests:
                        raise SystemExit(
                            f"{each.server.name}: {measure.errors} errors, {measure.requests} requests"
                        )
                    costs[each.server.name].append(spent / measure.requests * 1e6)
                    rates[each.server.name].append(measure.requestsPerSecond)
        gateway, *baselines = scenario.servers
        gatewayCost = statistics.median(costs[gateway.name])
        line = f"{name:9} gateway {gatewayCost:7.1f} us CPU per request"
        for server in baselines:
            cost = statistics.median(costs[server.name])
            line += f"; {server.name} {cost:7.1f}: ratio {cost / gatewayCost:.2f}x"
        print(line, flush=True)
        for server in scenario.servers:
            print(
                f"    {server.name:28} us per request {', '.join(f'{c:.1f}' for c in costs[server.name])};"
                f" req/s {', '.join(f'{r:,.0f}' for r in rates[server.name])}",
                flush=True,
            )
    print(f"load average {os.getloadavg()[0]:.2f}", flush=True)


if __name__ == "__main__":
    main()
