"""
The benchmarks: the gateway and, in the same run, baselines written for
comparison, driven by the same load generators, every reply verified.

    python bench/run.py [SCENARIO ...] [--rounds N] [--duration S] [--warmup S] [--quick]
    python bench/run.py --profile SCENARIO [--duration S]
    python bench/run.py --list

Each throughput scenario starts the gateway and its baselines (each its own
process, pinned to core 1, the same malloc settings for all) and drives
them in turn from core 0, round after round, the order rotating; it reports
the median of the rounds for each server and the gateway's ratio to each
baseline.  The mixed run, the idle-memory count and the workers comparison
have their own shape (see bench/README.md).  The table is printed as it
goes and again at the end, and every run's figures are written as JSON
(C{bench/results/latest.json}).  Nothing here asserts a speed.
"""

import argparse
import importlib.util
import json
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from harness import (
    HERE,
    LOADGEN_CORES,
    PYTHON,
    ROOT,
    AMPSplitLoad,
    Loadgen,
    Measure,
    Running,
    RunningServer,
    Server,
    ServerFailed,
    WrkLoad,
    baseline,
    buildLoadgen,
    gateway,
    pinned,
    slug,
)

RESULTS = HERE / "results"

#: Large enough for the mixed run's 10 MB poems.
BIG_POEMS = ("--max-poem-bytes", str(16 * 2**20))

#: The idle-memory count's connections, all from 127.0.0.1, held open:
#: no idle timeout, and connection caps above them.
IDLE = ("--idle-timeout", "3600", "--max-connections", "20000", "--max-connections-per-peer", "20000")


@dataclass
class Settings:
    rounds: int
    duration: float
    warmup: float
    idleConnections: int
    logs: Path


def median(values) -> float:
    values = list(values)
    return statistics.median(values) if values else 0.0


# -- reporting ---------------------------------------------------------------


def formatRate(value: float) -> str:
    return f"{value:,.0f}" if value >= 100 else f"{value:,.1f}"


def throughputRow(scenario: str, server: str, measures: list[Measure], ratio: str = "") -> dict:
    """
    One row of the table: the medians of C{measures}, the errors of all.
    """
    errors = Counter()
    for measure in measures:
        errors.update(measure.errors)
    return {
        "scenario": scenario,
        "server": server,
        "req_per_s": median(m.requestsPerSecond for m in measures),
        "MB_per_s": median(m.megabytesPerSecond for m in measures),
        "p50_ms": median(m.p50 for m in measures),
        "p99_ms": median(m.p99 for m in measures),
        "errors": dict(errors),
        "ratio": ratio,
        "runs": [
            {"req_per_s": m.requestsPerSecond, "p50_ms": m.p50, "p99_ms": m.p99, "errors": m.errors}
            for m in measures
        ],
    }


def markdownTable(header: list[str], rows: list[list[str]], right: set[int]) -> str:
    widths = [max(len(cell) for cell in column) for column in zip(header, *rows, strict=True)]

    def line(cells):
        return (
            "| "
            + " | ".join(
                cell.rjust(width) if index in right else cell.ljust(width)
                for index, (cell, width) in enumerate(zip(cells, widths, strict=True))
            )
            + " |"
        )

    rule = (
        "|"
        + "|".join(("-" * (w + 1) + ":") if i in right else "-" * (w + 2) for i, w in enumerate(widths))
        + "|"
    )
    return "\n".join([line(header), rule, *map(line, rows)])


def throughputTable(rows: list[dict]) -> str:
    header = ["scenario", "server", "req/s", "MB/s", "p50 ms", "p99 ms", "errors", "ratio"]
    cells = [
        [
            row["scenario"],
            row["server"],
            formatRate(row["req_per_s"]),
            f"{row['MB_per_s']:,.1f}",
            f"{row['p50_ms']:.2f}",
            f"{row['p99_ms']:.2f}",
            str(sum(row["errors"].values())),
            row["ratio"],
        ]
        for row in rows
    ]
    return markdownTable(header, cells, right={2, 3, 4, 5, 6, 7})


def memoryTable(rows: list[dict]) -> str:
    header = [
        "scenario",
        "server",
        "connections",
        "RSS before MB",
        "RSS after MB",
        "KiB per connection",
        "ratio",
    ]
    cells = [
        [
            row["scenario"],
            row["server"],
            f"{row['connections']:,}",
            f"{row['rss_before_kb'] / 1024:.1f}",
            f"{row['rss_after_kb'] / 1024:.1f}",
            f"{row['kb_per_connection']:.2f}",
            row["ratio"],
        ]
        for row in rows
    ]
    return markdownTable(header, cells, right={2, 3, 4, 5, 6})


# -- scenarios ---------------------------------------------------------------


class Scenario:
    """
    A named benchmark; L{run} returns its result for the JSON report, with
    C{rows} for the throughput table or C{memory} for the memory table.
    """

    name: str
    title: str

    def run(self, settings: Settings) -> dict:
        raise NotImplementedError


class Throughput(Scenario):
    """
    The gateway and its baselines under the same load, alternated for
    several rounds; the ratio is the gateway's median req/s over each
    baseline's.
    """

    def __init__(self, name: str, title: str, load, servers: list[Server]) -> None:
        self.name = name
        self.title = title
        self.load = load
        self.servers = servers

    def run(self, settings: Settings) -> dict:
        measures: dict[str, list[Measure]] = {server.name: [] for server in self.servers}
        with Running(self.servers, settings.logs / self.name) as running:
            for number in range(settings.rounds):
                for each in rotated(running, number):
                    each.check()
                    measure = self.load.measure(each.port, settings.duration, settings.warmup)
                    measures[each.server.name].append(measure)
                    progress(number, settings, each.server.name, measure)
        gatewayRate = median(m.requestsPerSecond for m in measures[self.servers[0].name])
        rows = []
        for index, (server, results) in enumerate(measures.items()):
            rate = median(m.requestsPerSecond for m in results)
            ratio = f"{gatewayRate / rate:.2f}x" if index and rate else ""
            rows.append(throughputRow(self.title, server, results, ratio))
        return {"load": self.load.describe(), "rows": rows}


def rotated(servers: list[RunningServer], number: int) -> list[RunningServer]:
    """
    The servers in the order of round C{number}: each round starts one
    further along, so that no server always runs first.
    """
    start = number % len(servers)
    return servers[start:] + servers[:start]


def progress(number: int, settings: Settings, name: str, measure: Measure, note: str = "") -> None:
    errors = f", errors {measure.errors}" if measure.errors else ""
    print(
        f"    round {number + 1}/{settings.rounds}  {name:32s} {formatRate(measure.requestsPerSecond):>9} req/s"
        f"  p50 {measure.p50:7.2f} ms  p99 {measure.p99:7.2f} ms{errors}{note}",
        flush=True,
    )


class Mixed(Scenario):
    """
    The p99 latency of small netstring requests, alone and while one more
    client streams 10 MB poems to the same server, one after the other; the
    ratio is the p99 with the stream over the p99 without.
    """

    name = "mixed"
    title = "mixed: netstring 200 B, 4 connections"

    def __init__(self, servers: list[Server]) -> None:
        self.servers = servers
        self.small = Loadgen("netstring", conns=4, poemBytes=200)
        self.stream = Loadgen("netstring", conns=1, poemBytes=10_000_000)

    def run(self, settings: Settings) -> dict:
        alone: dict[str, list[Measure]] = {server.name: [] for server in self.servers}
        streamed: dict[str, list[Measure]] = {server.name: [] for server in self.servers}
        streams: dict[str, list[Measure]] = {server.name: [] for server in self.servers}
        with Running(self.servers, settings.logs / self.name) as running:
            for number in range(settings.rounds):
                for each in rotated(running, number):
                    name = each.server.name
                    each.check()
                    alone[name].append(self.small.measure(each.port, settings.duration, settings.warmup))
                    progress(number, settings, name, alone[name][-1], "  (alone)")
                    # The stream runs from before the small requests' warm-up to after their end.
                    stream = self.stream.start(each.port, settings.warmup + settings.duration + 0.5, 0)
                    streamed[name].append(self.small.measure(each.port, settings.duration, settings.warmup))
                    streams[name].append(self.stream.finish(stream))
                    progress(
                        number,
                        settings,
                        name,
                        streamed[name][-1],
                        f"  (with the stream: {streams[name][-1].requestsPerSecond:.1f} poems of 10 MB/s)",
                    )
        rows, notes = [], []
        for server in self.servers:
            name = server.name
            p99Alone = median(m.p99 for m in alone[name])
            p99Streamed = median(m.p99 for m in streamed[name])
            rows.append(throughputRow(self.title, f"{name}, alone", alone[name]))
            ratio = f"{p99Streamed / p99Alone:.1f}x p99" if p99Alone else ""
            rows.append(throughputRow(self.title, f"{name}, + 10 MB stream", streamed[name], ratio))
            streamErrors = sum(m.errorCount for m in streams[name])
            notes.append(
                f"{name} streamed {median(m.requestsPerSecond for m in streams[name]):.1f} poems of 10 MB/s"
                f" ({streamErrors} errors)"
            )
        return {
            "load": f"{self.small.describe()}; stream: {self.stream.describe()}, 10 MB poems",
            "rows": rows,
            "notes": notes,
            "streams": {name: [m.raw for m in runs] for name, runs in streams.items()},
        }


class IdleMemory(Scenario):
    """
    Resident memory per idle connection: each server's RSS before and after
    C{idleConnections} connections that send nothing (WebSocket ones
    upgraded) are held open by C{idle_connections.py}.  The ratio is the
    gateway's growth per connection over the baseline's.
    """

    name = "idle-memory"
    title = "idle memory"

    def __init__(self, pairs: list[tuple[str, Server, Server]]) -> None:
        self.pairs = pairs

    def run(self, settings: Settings) -> dict:
        rows = []
        for protocol, gatewayServer, bareServer in self.pairs:
            perConnection = {}
            for server in (gatewayServer, bareServer):
                with Running([server], settings.logs / self.name / protocol) as (running,):
                    row = self.measure(running, protocol, settings.idleConnections)
                perConnection[server.name] = row["kb_per_connection"]
                row["scenario"] = f"idle {protocol}"
                rows.append(row)
                print(
                    f"    {protocol:9s} {server.name:28s} {row['connections']:,} connections:"
                    f" {row['kb_per_connection']:.2f} KiB each",
                    flush=True,
                )
            bare = perConnection[bareServer.name]
            rows[-1]["ratio"] = f"{perConnection[gatewayServer.name] / bare:.2f}x" if bare > 0 else ""
        return {"memory": rows}

    def measure(self, running: RunningServer, protocol: str, connections: int) -> dict:
        # A few connections first, so that whatever the first ones load is
        # in the "before" figure.
        self.hold(running, protocol, 50).close()
        time.sleep(0.3)
        filesBefore = running.openFiles()
        before = settled(running)
        holder = self.hold(running, protocol, connections)
        try:
            opened = json.loads(holder.stdout.readline())
            end = time.monotonic() + 30
            while running.openFiles() < filesBefore + opened["open"] and time.monotonic() < end:
                time.sleep(0.1)
            after = settled(running)
            # What the server holds: a server that closed some (a cap) is
            # not credited with them.
            held = min(opened["open"], running.openFiles() - filesBefore)
        finally:
            holder.close()
        running.check()
        return {
            "server": running.server.name,
            "connections": held,
            "failed": opened["failed"],
            "rss_before_kb": before,
            "rss_after_kb": after,
            "kb_per_connection": (after - before) / max(1, held),
            "ratio": "",
        }

    def hold(self, running: RunningServer, protocol: str, connections: int) -> "Holder":
        return Holder(running.port, protocol, connections)


class Holder:
    """
    C{idle_connections.py} holding connections until L{close}.
    """

    def __init__(self, port: int, protocol: str, connections: int) -> None:
        command = [PYTHON, str(HERE / "idle_connections.py"), "--port", str(port), "--protocol", protocol]
        self.process = subprocess.Popen(
            pinned(LOADGEN_CORES, [*command, "--connections", str(connections)]),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self.stdout = self.process.stdout

    def close(self) -> None:
        self.process.stdin.close()
        self.process.wait(60)


def settled(running: RunningServer) -> int:
    """
    The server's RSS once two readings 0.3 s apart agree within 0.5 %
    (at most 5 s).
    """
    last = running.residentKB()
    end = time.monotonic() + 5
    while time.monotonic() < end:
        time.sleep(0.3)
        now = running.residentKB()
        if abs(now - last) <= last * 0.005:
            return now
        last = now
    return last


class Workers(Scenario):
    """
    C{xform serve --workers 2} against one worker, on AMP 200 B, both
    unpinned (two workers need both cores; the load generator keeps core
    0).
    """

    name = "workers"
    title = "AMP 200 B, 8 x 16, --workers 2 vs 1"

    def run(self, settings: Settings) -> dict:
        servers = [
            gateway("amp", "--workers", "2", name="gateway --workers 2", cores=None),
            gateway("amp", "--workers", "1", name="gateway --workers 1", cores=None),
        ]
        load = Loadgen("amp", conns=8, inflight=16, poemBytes=200)
        return Throughput(self.name, self.title, load, servers).run(settings)


#: The gateway of the idle-memory count: no connection closed for being
#: idle, nor refused by the caps on connections (every one comes from
#: 127.0.0.1).
IDLE = ("--idle-timeout", "3600", "--max-connections", "20000", "--max-connections-per-peer", "20000")


def scenarios(useUvloop: bool) -> list[Scenario]:
    """
    Every scenario, in the order they run.
    """
    loop = ("--uvloop",) if useUvloop else ()
    suffix = " + uvloop" if useUvloop else ""
    tutorial = baseline("tutorial_netstring.py", "tutorial NetstringReceiver")
    asyncioNetstring = baseline("asyncio_netstring.py", f"asyncio{suffix}", *loop)
    bareAMP = baseline("twisted_amp.py", "bare Twisted AMP")
    autobahn = baseline("autobahn_ws.py", "bare Autobahn")
    websockets = baseline("websockets_ws.py", f"websockets{suffix}", *loop)
    netstring = [gateway("netstring"), tutorial, asyncioNetstring]
    amp = [gateway("amp"), bareAMP]
    ws = [gateway("web"), autobahn, websockets]
    return [
        Throughput("ns-200", "netstring 200 B", Loadgen("netstring", conns=32, poemBytes=200), netstring),
        Throughput(
            "ns-100k", "netstring 100 KB", Loadgen("netstring", conns=32, poemBytes=100_000), netstring
        ),
        Throughput("amp-200", "AMP 200 B", Loadgen("amp", conns=8, inflight=16, poemBytes=200), amp),
        Throughput("amp-60k", "AMP 60 KB", Loadgen("amp", conns=8, inflight=4, poemBytes=60_000), amp),
        Throughput("amp-1m", "AMP 1 MB, split", AMPSplitLoad(conns=4, inflight=2, poemBytes=1_000_000), amp),
        Throughput("ws-200", "WebSocket 200 B", Loadgen("ws", conns=8, inflight=16, poemBytes=200), ws),
        Throughput("ws-100k", "WebSocket 100 KB", Loadgen("ws", conns=8, inflight=16, poemBytes=100_000), ws),
        Throughput(
            "http-200",
            "HTTP POST 200 B",
            WrkLoad(conns=8, poemBytes=200),
            [gateway("web"), baseline("twisted_web.py", "bare twisted.web")],
        ),
        Mixed([gateway("netstring", *BIG_POEMS), tutorial]),
        IdleMemory(
            [
                ("netstring", gateway("netstring", *IDLE), tutorial),
                ("amp", gateway("amp", *IDLE), bareAMP),
                ("ws", gateway("web", *IDLE), autobahn),
            ]
        ),
        Workers(),
    ]


# -- profiling -----------------------------------------------------------------

_LINE_NUMBER = re.compile(r":\d+\)$")


def topFrames(collapsed: Path, count: int = 15) -> str:
    """
    Where py-spy's raw (collapsed) stacks spend their samples, line numbers
    left out: the functions by their own time (the innermost frame), the
    source files by their own time, and the functions by the time under
    them (anywhere on the stack), leaving out the trunk that every sample
    passes through (the reactor's loop).
    """
    own, files, under, total = Counter(), Counter(), Counter(), 0
    for line in collapsed.read_text("utf-8").splitlines():
        stack, _, samples = line.rpartition(" ")
        frames = [_LINE_NUMBER.sub(")", frame) for frame in stack.split(";")]
        total += int(samples)
        own[frames[-1]] += int(samples)
        files[frames[-1].rpartition(" (")[2].rstrip(")")] += int(samples)
        for frame in set(frames):
            under[frame] += int(samples)
    trunk = {frame for frame, n in under.items() if n >= 0.95 * total}

    def percent(counts, limit):
        return [f"  {100 * n / total:5.1f}%  {what}" for what, n in counts.most_common(limit)]

    lines = [f"{total} samples of the busy process (time waiting for events left out)", "", "own time:"]
    lines += percent(own, count) + ["", "own time by file:"] + percent(files, 8)
    lines += ["", "time under (inclusive), below the reactor's loop:"]
    lines += percent(Counter({frame: n for frame, n in under.items() if frame not in trunk}), count * 2)
    return "\n".join(lines)


def profile(scenario: Scenario, settings: Settings, serverName: str = "gateway") -> None:
    """
    Drive one server of C{scenario} (the gateway, unless C{serverName}
    names another by the start of its name) alone under the scenario's load
    and record it with py-spy: a flame graph (SVG) and the raw stacks, both
    in C{bench/results/}, and the top frames printed.
    """
    if not isinstance(scenario, Throughput) or isinstance(scenario.load, WrkLoad):
        raise SystemExit(
            f"bench: --profile takes a scenario driven by loadgen or amp_load.py, not {scenario.name}"
        )
    chosen = [server for server in scenario.servers if server.name.lower().startswith(serverName.lower())]
    if not chosen:
        names = ", ".join(repr(server.name) for server in scenario.servers)
        raise SystemExit(f"bench: {scenario.name} has no server {serverName!r}; it has {names}")
    server = chosen[0]
    spy = shutil.which("py-spy") or str(Path(PYTHON).parent / "py-spy")
    if not Path(spy).exists():
        raise SystemExit("bench: py-spy is not installed (make bench installs it)")
    RESULTS.mkdir(exist_ok=True)
    stem = f"profile-{scenario.name}" + ("" if server is scenario.servers[0] else f"-{slug(server.name)}")
    svg, raw, top = RESULTS / f"{stem}.svg", RESULTS / f"{stem}.txt", RESULTS / f"{stem}-top.txt"
    with Running([server], settings.logs / stem) as (running,):
        load = scenario.load
        seconds = max(1, round(settings.duration))
        run = load.start(running.port, 2 * seconds + 1, settings.warmup)
        time.sleep(settings.warmup + 0.5)
        # One recording after the other: two samplers cannot both stop the
        # process for a consistent stack, and without stopping it (py-spy's
        # --nonblocking) a fifth of the stacks come out torn.
        for output in (["--format", "raw", "-o", str(raw)], ["-o", str(svg)]):
            record = [spy, "record", "--pid", str(running.process.pid), "--rate", "200"]
            subprocess.run(
                pinned(LOADGEN_CORES, [*record, "--duration", str(seconds), *output]),
                stdout=subprocess.DEVNULL,
                check=True,
            )
        measure = load.finish(run)
    summary = topFrames(raw)
    top.write_text(summary + "\n", "utf-8")
    rate = formatRate(measure.requestsPerSecond)
    print(
        f"{scenario.title}, {server.name} under {load.describe()}: {rate} req/s (errors: {measure.errorCount})"
    )
    print(f"flame graph: {svg.relative_to(ROOT)}; stacks: {raw.relative_to(ROOT)}\n")
    print(summary)


# -- main --------------------------------------------------------------------


def raiseFileLimit(needed: int) -> int:
    """
    Raise this process's open-file limit (and so its children's) to its
    hard limit; return how many idle connections that leaves room for.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and (hard == resource.RLIM_INFINITY or soft < hard):
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        soft = hard
    if soft != resource.RLIM_INFINITY and soft < needed + 1000:
        print(f"bench: the open-file limit is {soft}: idle connections cut to {soft - 1000}")
        return max(0, soft - 1000)
    return needed


def machine() -> dict:
    versions = {}
    for package in ("twisted", "autobahn", "websockets", "uvloop"):
        if importlib.util.find_spec(package):
            versions[package] = __import__(package).__version__
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    return {
        "cores": os.cpu_count(),
        "load_average": os.getloadavg(),
        "python": sys.version.split()[0],
        "versions": versions,
        "commit": commit.stdout.strip(),
        "pinned": bool(shutil.which("taskset")),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description="The gateway against baselines written for comparison, in the same run.",
        epilog="Scenarios: see --list.  bench/README.md says how to read the figures.",
    )
    parser.add_argument(
        "scenarios", nargs="*", metavar="SCENARIO", help="the scenarios to run (default: all)"
    )
    parser.add_argument("--rounds", type=int, default=3, help="alternated runs per server (default 3)")
    parser.add_argument(
        "--duration", type=float, help="measured seconds per run (default 3; 10 for --profile)"
    )
    parser.add_argument(
        "--warmup", type=float, default=1.0, help="seconds of load before measuring (default 1)"
    )
    parser.add_argument(
        "--idle-connections",
        type=int,
        default=10_000,
        help="connections of the idle-memory count (default 10000)",
    )
    parser.add_argument(
        "--quick", action="store_true", help="a smoke run: 1 round of 1 s, 1,000 idle connections"
    )
    parser.add_argument("--no-uvloop", action="store_true", help="asyncio baselines on asyncio's own loop")
    parser.add_argument("--output", type=Path, default=RESULTS / "latest.json", help="the JSON report")
    parser.add_argument(
        "--profile", metavar="SCENARIO", help="profile the gateway under SCENARIO with py-spy"
    )
    parser.add_argument(
        "--profile-server",
        metavar="NAME",
        default="gateway",
        help="with --profile: profile the scenario's server whose name starts with NAME (e.g. 'bare')",
    )
    parser.add_argument("--list", action="store_true", help="list the scenarios and exit")
    arguments = parser.parse_args()

    useUvloop = not arguments.no_uvloop and importlib.util.find_spec("uvloop") is not None
    catalogue = {scenario.name: scenario for scenario in scenarios(useUvloop)}
    if arguments.list:
        for scenario in catalogue.values():
            print(f"{scenario.name:12s} {scenario.title}")
        return
    unknown = [
        name for name in [*arguments.scenarios, arguments.profile or "ns-200"] if name not in catalogue
    ]
    if unknown:
        parser.error(f"unknown scenario {unknown[0]!r}; --list shows them")
    if arguments.quick:
        arguments.rounds, arguments.warmup = 1, 0.5
        arguments.duration = arguments.duration or 1.0
        arguments.idle_connections = min(arguments.idle_connections, 1000)
    duration = arguments.duration or (10.0 if arguments.profile else 3.0)
    settings = Settings(
        rounds=arguments.rounds,
        duration=duration,
        warmup=arguments.warmup,
        idleConnections=raiseFileLimit(arguments.idle_connections),
        logs=RESULTS / "logs",
    )
    buildLoadgen()
    if arguments.profile:
        profile(catalogue[arguments.profile], settings, arguments.profile_server)
        return

    chosen = [catalogue[name] for name in arguments.scenarios] or list(catalogue.values())
    if not shutil.which("wrk"):
        print("bench: wrk is not installed (make bench installs it): the HTTP scenario is skipped")
        chosen = [scenario for scenario in chosen if scenario.name != "http-200"]
    info = machine()
    print(
        f"{info['cores']} cores, load average {info['load_average'][0]:.2f}; {settings.rounds} round(s) of"
        f" {settings.duration:g} s (+{settings.warmup:g} s warm-up) per server, alternating;"
        f" servers on core 1, load on core 0{'' if info['pinned'] else ' (NOT pinned: no taskset)'}\n",
        flush=True,
    )
    started = time.monotonic()
    report = {"machine": info, "settings": vars(arguments) | {"duration": duration}, "scenarios": []}
    throughputRows, memoryRows = [], []
    for scenario in chosen:
        print(f"{scenario.title} [{scenario.name}]", flush=True)
        try:
            result = scenario.run(settings)
        except (ServerFailed, RuntimeError) as error:
            print(f"    failed: {error}")
            result = {"failed": str(error)}
        throughputRows += result.get("rows", [])
        memoryRows += result.get("memory", [])
        if result.get("rows"):
            print("\n" + throughputTable(result["rows"]))
        if result.get("memory"):
            print("\n" + memoryTable(result["memory"]))
        for note in result.get("notes", []):
            print(f"  {note}")
        print(f"  ({time.monotonic() - started:.0f} s so far)\n", flush=True)
        report["scenarios"].append({"name": scenario.name, "title": scenario.title, **result})
    report["elapsed_s"] = time.monotonic() - started
    report["machine"]["load_average_after"] = os.getloadavg()
    arguments.output.parent.mkdir(parents=True, exist_ok=True)
    arguments.output.write_text(json.dumps(report, indent=1, default=str) + "\n", "utf-8")
    print("=" * 20 + " summary " + "=" * 20 + "\n")
    if throughputRows:
        print(throughputTable(throughputRows) + "\n")
    if memoryRows:
        print(memoryTable(memoryRows) + "\n")
    print(
        "ratio: the gateway's median req/s over that baseline's (above 1: the gateway is faster);"
        " mixed: p99 with the stream over p99 alone; memory: the gateway's KiB per connection over the baseline's."
    )
    print(f"{report['elapsed_s']:.0f} s in all; figures of every run in {arguments.output}")


if __name__ == "__main__":
    main()
