"""Scale benchmark: N connected chargers on one node, MeterValues every 60 s, a live-events probe.

The targets (from the issue): 50,000 connected chargers sending MeterValues every 60 s (about
830 calls/s) answered at p99 under 1 s with nothing lost; a status change seen by an SSE
client within 1 s at that load; 10,000 chargers connected within 30 s.

What this driver does:

1. registers the fleet (``BENCH-00001`` ... and one probe charger ``PROBE-00001``) in a fresh
   SQLite file with ``chargegrid chargers import``, in chunks, two at a time (each password is
   hashed with PBKDF2: 50,000 take a minute or two), and creates a viewer API key
   (``chargegrid apikey create``);
2. starts ``chargegrid serve`` pinned to core 0 (``taskset -c 0``);
3. starts the load generators (``loadgen.py --control``, picows on uvloop, at most
   ``--per-loadgen`` chargers each) and a probe process, all pinned to core 1. Each generator
   spreads its connections over its own loopback source addresses (127.0.0.2, 127.0.0.3, ...):
   one source address has only ~28,000 ephemeral ports towards one server port;
4. connects and boots the N chargers, ``--concurrency`` handshakes in flight in total, and
   records when each one was booted: the connect curve, the connect rate and the time for the
   first 10,000;
5. starts MeterValues, each charger every ``--interval`` s (default 60), phases staggered so the
   total is N/60 calls/s spread evenly; after ``--warmup`` s it measures ``--duration`` s:
   answered/sent, errors, timeouts, latency p50/p99/max, the server's CPU share of its core,
   its RSS (MB, and KB per charger);
6. during the window, the probe process subscribes to ``GET /api/v1/events`` (SSE) and its
   charger sends ``--probes`` StatusNotifications (alternately Unavailable and Available), timing
   each from the send to the matching ``connector.status`` event on the stream;
7. stops the generators, stops the server with SIGINT (clean shutdown) and counts the rows of
   ``meter_samples``: every answered MeterValues is committed before it is answered, so the
   count must equal the answered calls.

A process holds one file descriptor per socket, so N is capped by the open-file hard limit
(``ulimit -Hn``) of the server process; the driver lifts the soft limit to the hard one in every
process, and when the hard limit is still below N it says so and runs the largest N that fits.

Results: a rich table, ``benchmarks/results/NAME.json`` and ``NAME.png`` (connect curve and
latency histogram). Everything runs on 127.0.0.0/8; every wait has a deadline, and every
subprocess is killed when the driver ends, however it ends (Ctrl-C included).

    .venv/bin/python benchmarks/bench_scale.py                                  # 50,000 chargers
    .venv/bin/python benchmarks/bench_scale.py --chargers 5000 --warmup 10 --duration 30  # a check
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil  # type: ignore[import-untyped]  # no stubs in the venv
from bench_meter_values import (
    Children,
    GenProcess,
    _core_times,
    _machine,
    _pinned,
    count_rows,
    driver_setup,
    free_port,
    wait_for_port,
)
from loadgen import percentile
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
FLEET_PREFIX = "BENCH-"  # loadgen.py's default ids and password
PROBE_PREFIX = "PROBE-"
FLEET_PASSWORD = "bench-charger-password-0001"
TARGET_P99_MS = 1000.0
TARGET_SSE_MS = 1000.0
TARGET_CONNECT_10K_S = 30.0
FIRST_SOURCE_IP = 2  # 127.0.0.2, 127.0.0.3, ...; 127.0.0.1 is left to the probe and the API client

console = Console()
if not console.is_terminal:  # a log file or a pipe: room for the whole table
    console = Console(width=150)


# -- plan: how many chargers fit, how they are split ----------------------------------------------
@dataclass
class GenPlan:
    first_index: int
    count: int
    source_ips: list[str]


@dataclass
class Plan:
    requested: int
    chargers: int
    nofile_soft: int
    nofile_hard: int
    ports_per_source_ip: int
    gens: list[GenPlan]
    limited_by: str | None = None


def raise_nofile_limit() -> tuple[int, int]:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)


def ephemeral_ports() -> int:
    with contextlib.suppress(OSError, ValueError):
        lo, hi = map(int, Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split())
        return hi - lo + 1
    return 28_232  # Linux's default range, 32768-60999


def make_plan(args: argparse.Namespace) -> Plan:
    soft, hard = raise_nofile_limit()
    # The server holds one descriptor per charger, plus the probe charger, the SSE client and its
    # own (listeners, SQLite, epoll, logs): --fd-margin. Children inherit the driver's limits.
    fit = soft - args.fd_margin - 2
    n = min(args.chargers, fit)
    limited_by = None
    if n < args.chargers:
        limited_by = (f"the open-file limit: {soft} descriptors per process (hard limit {hard}, and this process "
                      f"may not raise it), and the server needs one per charger: {n} chargers fit, not "
                      f"{args.chargers}. Raise `ulimit -Hn` (root, or /etc/security/limits.conf) to run more.")
    if n <= 0:
        raise SystemExit(f"the open-file limit ({soft}) leaves no room for chargers")
    per_gen = max(1, min(args.per_loadgen, soft - args.fd_margin))
    gens_needed = math.ceil(n / per_gen)
    ports = ephemeral_ports()
    per_ip = max(1, min(args.per_source_ip, ports - 2_000))  # leave ports for everything else
    gens: list[GenPlan] = []
    first, ip_next = 1, FIRST_SOURCE_IP
    for k in range(gens_needed):
        count = n // gens_needed + (1 if k < n % gens_needed else 0)
        ips = []
        for _ in range(math.ceil(count / per_ip)):
            ips.append(f"127.{ip_next // 65536 % 256}.{ip_next // 256 % 256}.{ip_next % 256}")
            ip_next += 1
        gens.append(GenPlan(first, count, ips))
        first += count
    return Plan(args.chargers, n, soft, hard, ports, gens, limited_by)


# -- subprocesses -------------------------------------------------------------------------------
def chargegrid_base() -> list[str]:
    script = Path(sys.executable).with_name("chargegrid")
    if script.exists():
        return [str(script)]
    return [sys.executable, "-c", "import sys; from chargegrid.cli import main; sys.argv[0] = 'chargegrid'; main()"]


def loadgen_cmd(args: argparse.Namespace, url: str, *, prefix: str, first: int, concurrency: int,
                source_ips: list[str]) -> list[str]:
    cmd = [sys.executable, str(HERE / "loadgen.py"), "--control", "--url", url, "--prefix", prefix,
           "--password", FLEET_PASSWORD, "--first-index", str(first), "--concurrency", str(concurrency),
           "--timeout", str(args.call_timeout), "--connect-report"]
    if source_ips:
        cmd += ["--source-ips", ",".join(source_ips)]
    return cmd


@dataclass
class Server:
    proc: subprocess.Popen[bytes]
    ps: psutil.Process
    ocpp_port: int
    http_port: int
    log: Path

    def cpu_s(self) -> float:
        t = self.ps.cpu_times()
        return float(t.user + t.system)

    def rss(self) -> int:
        return int(self.ps.memory_info().rss)

    def fds(self) -> int | None:
        with contextlib.suppress(psutil.Error):
            return int(self.ps.num_fds())
        return None


# -- phases -------------------------------------------------------------------------------------
def register_fleet(args: argparse.Namespace, plan: Plan, children: Children, workdir: Path, db: str,
                   progress: Progress) -> dict[str, Any]:
    """``chargegrid chargers import`` in chunks, ``--import-workers`` at a time (PBKDF2 is the cost)."""
    base = chargegrid_base()
    subprocess.run([*base, "db", "upgrade", "--database-url", db], check=True, capture_output=True, timeout=120)
    ids = [f"{FLEET_PREFIX}{i:05d}" for i in range(1, plan.chargers + 1)] + [f"{PROBE_PREFIX}00001"]
    chunks: list[Path] = []
    for n, start in enumerate(range(0, len(ids), args.import_chunk)):
        path = workdir / f"fleet-{n:03d}.csv"
        path.write_text("".join(f"{cid},{FLEET_PASSWORD}\n" for cid in ids[start:start + args.import_chunk]))
        chunks.append(path)
    task = progress.add_task(f"registering {len(ids):,} chargers (chargers import, PBKDF2)", total=len(ids))
    started = time.monotonic()
    deadline = started + max(300.0, len(ids) * 0.02)
    todo = list(chunks)
    running: list[tuple[subprocess.Popen[bytes], Path]] = []
    done = 0
    while todo or running:
        while todo and len(running) < args.import_workers:
            path = todo.pop(0)
            err = (workdir / f"{path.stem}.log").open("wb")
            running.append((children.start([*base, "chargers", "import", str(path), "--database-url", db],
                                           stdout=err, stderr=err), path))
        for proc, path in list(running):
            if proc.poll() is None:
                continue
            running.remove((proc, path))
            if proc.returncode != 0:
                log = (workdir / f"{path.stem}.log").read_text(errors="replace")[-800:]
                raise RuntimeError(f"chargers import {path.name} failed ({proc.returncode}): {log}")
            done += sum(1 for _ in path.open())
            progress.update(task, completed=done)
        if time.monotonic() > deadline:
            raise RuntimeError("registering the fleet took too long")
        time.sleep(0.1)
    progress.update(task, visible=False)
    seconds = time.monotonic() - started
    console.print(f"registered {len(ids):,} chargers in {seconds:.1f} s")
    return {"chargers": len(ids), "seconds": round(seconds, 1), "workers": args.import_workers}


def create_api_key(db: str) -> str:
    out = subprocess.run([*chargegrid_base(), "apikey", "create", "--role", "viewer", "--name", "bench-scale-sse",
                          "--database-url", db], check=True, capture_output=True, text=True, timeout=120)
    lines = [line.strip() for line in out.stdout.splitlines() if line.strip()]
    if not lines:
        raise RuntimeError(f"apikey create printed nothing: {out.stderr[-400:]}")
    return lines[-1]


def start_server(args: argparse.Namespace, children: Children, workdir: Path, db: str) -> Server:
    ocpp_port, http_port = free_port(), free_port()
    cmd = [*chargegrid_base(), "serve", "--database-url", db, "--ocpp-port", str(ocpp_port),
           "--http-port", str(http_port), "--host", "127.0.0.1"]
    if args.server_log_level:
        cmd += ["--log-level", args.server_log_level]
    log = workdir / "server.log"
    with log.open("wb") as f:
        proc = children.start(_pinned(cmd, args.server_core), stdout=f, stderr=f)
    wait_for_port(ocpp_port, proc, 120)
    wait_for_port(http_port, proc, 60)
    return Server(proc, psutil.Process(proc.pid), ocpp_port, http_port, log)


class Profiler:
    """``py-spy record`` of the server for a while (raw folded stacks), optional."""

    def __init__(self, children: Children, pid: int, seconds: float, out: Path) -> None:
        self.out = out
        self.proc: subprocess.Popen[bytes] | None = None
        spy = Path(sys.executable).with_name("py-spy")
        if not spy.exists():
            console.print("[yellow]py-spy not found next to the interpreter: no profile[/]")
            return
        self.proc = children.start([str(spy), "record", "-d", str(max(1, int(seconds))), "-r", "50", "--nonblocking",
                                    "-p", str(pid), "-o", str(out), "--format", "raw"],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def summary(self, top: int = 12) -> dict[str, Any] | None:
        if self.proc is None:
            return None
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(30)
        if not self.out.exists():
            return None
        own: Counter[str] = Counter()
        inclusive: Counter[str] = Counter()
        per_root: Counter[str] = Counter()  # samples per thread entry point (main, aiosqlite worker, ...)
        in_root: dict[str, Counter[str]] = {}
        total = 0
        for line in self.out.read_text(errors="replace").splitlines():
            stack, _, count = line.rpartition(" ")
            if not stack or not count.isdigit():
                continue
            n = int(count)
            total += n
            frames = stack.split(";")
            own[frames[-1]] += n
            per_root[frames[0]] += n
            for frame in set(frames):
                inclusive[frame] += n
                in_root.setdefault(frames[0], Counter())[frame] += n
        if not total:
            return None
        # Frames on every stack of their thread are its entry chain (cli, typer, uvloop.run): not informative.
        chain = {f for root, c in in_root.items() for f, n in c.items() if n >= 0.98 * per_root[root]}

        def pct(c: Counter[str], skip: set[str]) -> list[list[Any]]:
            return [[frame, round(100 * n / total, 1)] for frame, n in c.most_common() if frame not in skip][:top]

        return {"file": str(self.out), "samples": total, "self_pct": pct(own, set()),
                "inclusive_pct": pct(inclusive, chain),
                "note": "self time of Runner.run is time in C under the event loop (uvloop, picows, epoll, idle)"}


def connect_phase(gens: list[GenProcess], plan: Plan, server: Server, progress: Progress,
                  deadline_s: float) -> dict[str, Any]:
    """All generators connect at once; returns the merged connect curve and the figures."""
    task = progress.add_task(f"connecting and booting {plan.chargers:,} chargers", total=plan.chargers)
    cpu0, t0 = server.cpu_s(), time.monotonic()
    for gen, gp in zip(gens, plan.gens, strict=True):
        gen.send(f"connect {gp.count}")
    booted = dict.fromkeys(range(len(gens)), 0)
    failed = dict.fromkeys(range(len(gens)), 0)
    answers: dict[int, dict[str, Any]] = {}
    peak_fds = 0
    deadline = t0 + deadline_s
    while len(answers) < len(gens):
        for k, gen in enumerate(gens):
            for msg in gen.drain():
                if msg.get("event") == "progress":
                    booted[k], failed[k] = msg["booted"], msg["failed"]
                elif msg.get("event") == "connected":
                    answers[k] = msg
                    booted[k] = len(msg.get("booted_at", []))
        fds = server.fds()
        peak_fds = max(peak_fds, fds or 0)
        progress.update(task, completed=sum(booted.values()),
                        description=f"connecting and booting {plan.chargers:,} chargers"
                                    + (f" ([red]{sum(failed.values())} failed[/])" if sum(failed.values()) else ""))
        if server.proc.poll() is not None:
            raise RuntimeError(f"the server exited ({server.proc.returncode}) while chargers connected")
        if time.monotonic() > deadline:
            raise RuntimeError(f"connecting {plan.chargers} chargers took more than {deadline_s:g} s "
                               f"({sum(booted.values())} booted)")
        time.sleep(0.2)
    wall = time.monotonic() - t0
    cpu = server.cpu_s() - cpu0
    progress.update(task, visible=False)
    start = min(a["started_at"] for a in answers.values())
    times = sorted(t - start for a in answers.values() for t in a["booted_at"])
    n = len(times)
    out: dict[str, Any] = {
        "requested": plan.chargers,
        "booted": n,
        "connect_failures": sum(a["connect_failures"] for a in answers.values()),
        "boot_failures": sum(a["boot_failures"] for a in answers.values()),
        "boot_rejected": sum(a["boot_rejected"] for a in answers.values()),
        "first_connect_error": next((a["first_connect_error"] for a in answers.values() if a["first_connect_error"]),
                                    None),
        "seconds": round(times[-1], 3) if times else None,
        "rate_per_s": round(n / times[-1], 1) if times and times[-1] > 0 else None,
        "seconds_first_10000": round(times[9_999], 3) if n >= 10_000 else None,
        "seconds_to_half": round(times[n // 2], 3) if n else None,
        "server_cpu_s": round(cpu, 2),
        "server_cpu_ms_per_connect": round(cpu / n * 1e3, 3) if n else None,
        "server_core_busy": round(cpu / wall, 3) if wall > 0 else None,
        "server_fds_peak": peak_fds,
        "per_loadgen": [{k: v for k, v in a.items() if k not in ("booted_at", "started_at", "event")}
                        for _, a in sorted(answers.items())],
    }
    # The curve for the chart: at most ~1,500 points.
    step = max(1, n // 1500)
    out["curve"] = [[round(times[i], 3), i + 1] for i in range(0, n, step)] + ([[round(times[-1], 3), n]] if n else [])
    # The best 10,000 in a row: how fast the server connects once warm.
    if n >= 10_000:
        out["best_10000_s"] = round(min(times[i + 9_999] - times[i] for i in range(0, n - 9_999, max(1, n // 500))), 3)
    return out


def _sleep(progress: Progress, label: str, seconds: float, check: Any = None) -> None:
    task = progress.add_task(label, total=seconds)
    end = time.monotonic() + seconds
    while (left := end - time.monotonic()) > 0:
        time.sleep(min(0.2, left))
        if check is not None:
            check()
        progress.update(task, completed=seconds - max(0.0, end - time.monotonic()))
    progress.update(task, completed=seconds, visible=False)


def _others_snapshot(exclude: set[int]) -> dict[int, psutil.Process]:
    procs = {}
    for p in psutil.process_iter(["pid"]):
        if p.pid in exclude:
            continue
        with contextlib.suppress(psutil.Error):
            p.cpu_percent(None)
            procs[p.pid] = p
    return procs


def _busy_others(procs: dict[int, psutil.Process], top: int = 5) -> list[dict[str, Any]]:
    out = []
    for p in procs.values():
        with contextlib.suppress(psutil.Error):
            pct = p.cpu_percent(None)
            if pct >= 5:
                cmd = " ".join(p.cmdline())[:100] or p.name()
                out.append({"pid": p.pid, "cpu_pct": round(pct, 1), "cmd": cmd})
    return sorted(out, key=lambda x: -x["cpu_pct"])[:top]


def merge_marks(marks: list[dict[str, Any]]) -> dict[str, Any]:
    lat = sorted(x for m in marks for x in m.get("latencies_ms", []))
    out: dict[str, Any] = {k: sum(m[k] for m in marks) for k in ("sent", "answered", "call_errors", "timeouts", "late")}
    seconds = max(m["seconds"] for m in marks)
    out.update(
        seconds=round(seconds, 3),
        rate_sent=round(out["sent"] / seconds, 1) if seconds else None,
        rate_answered=round(out["answered"] / seconds, 1) if seconds else None,
        latency_p50_ms=percentile(lat, 50),
        latency_p90_ms=percentile(lat, 90),
        latency_p99_ms=percentile(lat, 99),
        latency_p999_ms=percentile(lat, 99.9),
        latency_max_ms=lat[-1] if lat else None,
        over_1s=sum(1 for x in lat if x > 1000.0),
        disconnects=sum(m["disconnects"] for m in marks),
        bad_frames=sum(m["bad_frames"] for m in marks),
        stray_answers=sum(m["stray_answers"] for m in marks),
        first_error=next((m["first_error"] for m in marks if m.get("first_error")), None),
    )
    return out


def run(args: argparse.Namespace, plan: Plan, children: Children, workdir: Path) -> dict[str, Any]:
    res: dict[str, Any] = {}
    db = f"sqlite:///{workdir / 'chargegrid.db'}"
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                  console=console, transient=True) as progress:
        res["registration"] = register_fleet(args, plan, children, workdir, db, progress)
        api_key = create_api_key(db)
        server = start_server(args, children, workdir, db)
        url = f"ws://127.0.0.1:{server.ocpp_port}/ocpp"
        api_url = f"http://127.0.0.1:{server.http_port}"
        gens: list[GenProcess] = []
        probe: GenProcess | None = None
        stopped: list[dict[str, Any] | None] = []
        try:
            per_gen_conc = max(1, args.concurrency // len(plan.gens))
            for k, gp in enumerate(plan.gens):
                gens.append(GenProcess(children, f"loadgen{k}", loadgen_cmd(
                    args, url, prefix=FLEET_PREFIX, first=gp.first_index, concurrency=per_gen_conc,
                    source_ips=gp.source_ips), args.loadgen_core, workdir / f"loadgen{k}.log"))
            probe = GenProcess(children, "probe", loadgen_cmd(args, url, prefix=PROBE_PREFIX, first=1, concurrency=1,
                                                              source_ips=[]), args.loadgen_core, workdir / "probe.log")
            for g in [*gens, probe]:
                g.expect("ready", 30)
            time.sleep(args.settle)
            rss_start, fds_start = server.rss(), server.fds()
            res["server_start"] = {"rss_mb": round(rss_start / 2**20, 1), "fds": fds_start}

            # -- connect ------------------------------------------------------------------------
            prof_c = (Profiler(children, server.proc.pid, args.profile_seconds, workdir / "profile-connect.txt")
                      if args.profile else None)
            connect = connect_phase(gens, plan, server, progress, args.connect_deadline)
            res["connect"] = connect
            if prof_c is not None:
                connect["profile"] = prof_c.summary()
            console.print(f"booted {connect['booted']:,}/{plan.chargers:,} chargers in {connect['seconds']} s "
                          f"({connect['rate_per_s']}/s; first 10,000 in {connect['seconds_first_10000']} s)")
            probe.send("connect 1")
            probe_conn = probe.expect("connected", 60)
            if probe_conn["connected"] != 1 or probe_conn["boot_failures"]:
                raise RuntimeError(f"the probe charger did not connect: {probe_conn}")
            time.sleep(args.settle)
            booted = connect["booted"]
            rss_connected = server.rss()
            res["memory"] = {
                "rss_start_mb": round(rss_start / 2**20, 1),
                "rss_connected_mb": round(rss_connected / 2**20, 1),
                "kb_per_charger_connected": round((rss_connected - rss_start) / 1024 / booted, 2) if booted else None,
            }

            # -- load ---------------------------------------------------------------------------
            per_gen_booted = [len_booted(a) for a in connect["per_loadgen"]]
            n_load = sum(per_gen_booted)
            total_rate = args.rate or n_load / args.interval
            interval = n_load / total_rate if total_rate else args.interval
            for k, (gen, nb) in enumerate(zip(gens, per_gen_booted, strict=True)):
                gen.send(f"load {nb / interval} {k / total_rate if total_rate else 0}")
            for gen in gens:
                gen.expect("load", 30)
            res["load"] = {"chargers": n_load, "interval_s": round(interval, 3), "rate": round(total_rate, 2),
                           "warmup_s": args.warmup, "duration_s": args.duration}

            def alive() -> None:
                if server.proc.poll() is not None:
                    raise RuntimeError(f"the server exited ({server.proc.returncode}) under load")

            rss_series: list[list[float]] = []
            next_rss = [0.0]

            def track() -> None:
                alive()
                now = time.monotonic()
                if now >= next_rss[0]:
                    next_rss[0] = now + 1.0
                    with contextlib.suppress(psutil.Error):
                        rss_series.append([round(now, 2), round(server.rss() / 2**20, 1)])

            _sleep(progress, f"warm-up, {total_rate:.0f} MeterValues/s", args.warmup, track)
            for gen in gens:
                gen.send("mark")
            for gen in gens:
                gen.expect("mark", 30)
            mine = {os.getpid(), server.proc.pid, *(g.proc.pid for g in [*gens, probe])}
            others = _others_snapshot(mine)
            cpu0, wall0, core0 = server.cpu_s(), time.monotonic(), _core_times(args.server_core)
            fields0, split0 = _core_fields(args.server_core), server.ps.cpu_times()
            gen_cpu0 = sum(_proc_cpu(g.ps) for g in [*gens, probe])
            probe_interval = args.duration / max(1, args.probes)
            probe.send(f"probe {api_url} {api_key} {args.probes} {probe_interval:.3f}")
            prof_l = (Profiler(children, server.proc.pid, min(args.profile_seconds, args.duration),
                               workdir / "profile-load.txt") if args.profile else None)
            rss_peak, fds_peak = 0, 0

            def sample() -> None:
                nonlocal rss_peak, fds_peak
                track()
                with contextlib.suppress(psutil.Error):
                    rss_peak = max(rss_peak, server.rss())
                    fds_peak = max(fds_peak, server.fds() or 0)

            _sleep(progress, f"measuring, {total_rate:.0f} MeterValues/s + SSE probe", args.duration, sample)
            for gen in gens:
                gen.send("mark full")
            marks = [gen.expect("mark", 60) for gen in gens]
            cpu1, wall1, core1 = server.cpu_s(), time.monotonic(), _core_times(args.server_core)
            fields1, split1 = _core_fields(args.server_core), server.ps.cpu_times()
            gen_cpu1 = sum(_proc_cpu(g.ps) for g in [*gens, probe])
            rss_load = server.rss()
            busy_others = _busy_others(others)
            window = merge_marks(marks)
            latencies = sorted(x for m in marks for x in m.get("latencies_ms", []))
            wall = wall1 - wall0
            load = res["load"]
            load["latency_series"] = _per_second(marks, wall0)
            res["memory"]["rss_series"] = [[round(t - wall0, 1), mb] for t, mb in rss_series]
            load["window"] = window
            load["server_cpu_s"] = round(cpu1 - cpu0, 3)
            load["server_core_busy"] = round((cpu1 - cpu0) / wall, 3)
            answered_w = window["answered"]
            load["server_us_per_call"] = round((cpu1 - cpu0) / answered_w * 1e6, 1) if answered_w else None
            if core0 is not None and core1 is not None:
                load["server_core_others"] = round(max(0.0, core1[0] - core0[0] - (cpu1 - cpu0)) / wall, 3)
                load["server_core_steal"] = round((core1[1] - core0[1]) / wall, 3)
            if fields0 and fields1:  # where the server core's time went: is "others" the kernel's network work?
                load["server_core_breakdown"] = {
                    "server_user": round((split1.user - split0.user) / wall, 3),
                    "server_system": round((split1.system - split0.system) / wall, 3),
                    **{f"core_{k}": round((fields1[k] - fields0[k]) / wall, 3) for k in fields0},
                }
            load["loadgen_core_busy"] = round((gen_cpu1 - gen_cpu0) / wall, 3)
            load["busy_other_processes"] = busy_others
            load["server_fds_peak"] = fds_peak
            res["memory"].update(
                rss_under_load_mb=round(rss_load / 2**20, 1),
                rss_peak_mb=round(max(rss_peak, rss_load) / 2**20, 1),
                kb_per_charger_under_load=round((rss_load - rss_start) / 1024 / booted, 2) if booted else None,
            )
            if prof_l is not None:
                load["profile"] = prof_l.summary()
            sse = probe.expect("probe", args.probes * probe_interval + 4 * args.call_timeout + 30)
            res["sse_probe"] = sse
            res["_latencies_ms"] = latencies
        finally:
            task = progress.add_task("stopping the load generators and the server", total=None)
            for g in gens:
                stopped.append(g.close())
            if probe is not None:
                probe.close()
            code = Children.stop(server.proc, signal.SIGINT, args.stop_timeout)
            progress.update(task, visible=False)
        res["server_exit_code"] = code
        if code not in (0, -signal.SIGINT):
            console.print(f"[yellow]the server exited with {code}; see {server.log}[/]")
    totals = [s["total"] for s in stopped if s]
    answered = sum(t["answered"] for t in totals)
    sent = sum(t["sent"] for t in totals)
    rows = count_rows(workdir / "chargegrid.db", "meter_samples")
    res["stored"] = {
        "rows": rows, "answered": answered, "sent": sent,
        "timeouts": sum(t["timeouts"] for t in totals), "errors": sum(t["call_errors"] for t in totals),
        "match": rows == answered,
        "nothing_lost": rows is not None and answered <= rows <= sent,
        "complete_totals": len(totals) == len(plan.gens),
    }
    return res


def _per_second(marks: list[dict[str, Any]], t0: float) -> list[list[Any]]:
    """[second, answers, p50 ms, p99 ms, max ms] for each second of the window, by answer time."""
    buckets: dict[int, list[float]] = {}
    for m in marks:
        for lat, at in zip(m.get("latencies_ms", []), m.get("answered_at", []), strict=False):
            buckets.setdefault(int(at - t0), []).append(lat)
    out: list[list[Any]] = []
    for sec in sorted(buckets):
        lat = sorted(buckets[sec])
        out.append([sec, len(lat), percentile(lat, 50), percentile(lat, 99), lat[-1]])
    return out


def _core_fields(core: int | None) -> dict[str, float] | None:
    if core is None:
        return None
    t = psutil.cpu_times(percpu=True)[core]
    return {k: float(getattr(t, k)) for k in ("user", "system", "irq", "softirq", "steal", "idle") if hasattr(t, k)}


def len_booted(per_loadgen: dict[str, Any]) -> int:
    return int(per_loadgen["connected"]) - int(per_loadgen["boot_failures"])


def _proc_cpu(ps: psutil.Process) -> float:
    with contextlib.suppress(psutil.Error):
        t = ps.cpu_times()
        return float(t.user + t.system)
    return 0.0


# -- report -------------------------------------------------------------------------------------
def _fmt(v: Any, spec: str = ",") -> str:
    return "-" if v is None else format(v, spec)


def _verdict(ok: bool | None) -> str:
    return "-" if ok is None else ("[green]pass[/]" if ok else "[red]FAIL[/]")


def report(res: dict[str, Any], plan: Plan, args: argparse.Namespace) -> dict[str, Any]:
    latencies = res.pop("_latencies_ms", [])
    doc = {
        "benchmark": "scale",
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": " ".join([".venv/bin/python", "benchmarks/bench_scale.py", *sys.argv[1:]]),
        "settings": vars(args),
        "machine": _machine(),
        "plan": {"requested_chargers": plan.requested, "chargers": plan.chargers, "limited_by": plan.limited_by,
                 "nofile_soft": plan.nofile_soft, "nofile_hard": plan.nofile_hard,
                 "ephemeral_ports_per_source_ip": plan.ports_per_source_ip,
                 "loadgens": [{"first_index": g.first_index, "chargers": g.count, "source_ips": g.source_ips}
                              for g in plan.gens]},
        "targets": {"latency_p99_ms": TARGET_P99_MS, "sse_ms": TARGET_SSE_MS,
                    "connect_10000_s": TARGET_CONNECT_10K_S, "chargers": 50_000},
        "results": res,
        "latency_histogram_ms": _histogram(latencies),
    }
    path_json, path_png = RESULTS / f"{args.name}.json", RESULTS / f"{args.name}.png"
    path_json.write_text(json.dumps(doc, indent=2) + "\n")
    _table(res, plan)
    _chart(res, latencies, plan, path_png)
    console.print(f"results: benchmarks/results/{path_json.name}  chart: benchmarks/results/{path_png.name}")
    return doc


def _histogram(lat: list[float]) -> dict[str, Any]:
    """Counts per log-spaced bucket (upper bounds in ms): the raw latencies are too many to keep."""
    bounds = [round(0.1 * 10 ** (i / 10), 4) for i in range(0, 61)]  # 0.1 ms .. 100 s
    counts = [0] * (len(bounds) + 1)
    j = 0
    for x in lat:  # sorted
        while j < len(bounds) and x > bounds[j]:
            j += 1
        counts[j] += 1
    return {"upper_bounds_ms": bounds, "counts": counts}


def _table(res: dict[str, Any], plan: Plan) -> None:
    c, load, mem = res.get("connect", {}), res.get("load", {}), res.get("memory", {})
    w, sse, st = load.get("window", {}), res.get("sse_probe", {}), res.get("stored", {})
    title = f"Scale: {plan.chargers:,} chargers on one core"
    if plan.chargers < plan.requested:
        title += f" (asked {plan.requested:,}; open-file limit)"
    table = Table(title=title)
    for col in ("figure", "value", "target", ""):
        table.add_column(col, justify="left" if col == "figure" else "right")
    booted = c.get("booted")
    ok_connect = None if booted is None else booted == plan.chargers
    # The 50,000 verdict only when 50,000 were asked for (a smaller --chargers is a check, not a failure).
    scale_ok = None if booted is None or plan.requested < 50_000 else booted >= 50_000
    table.add_row("chargers connected and booted", f"{_fmt(booted)} / {plan.chargers:,}"
                  + (f" ({c.get('connect_failures')} connect, {c.get('boot_failures')} boot failures)"
                     if not ok_connect else ""), "50,000", _verdict(scale_ok))
    table.add_row("connect rate", f"{_fmt(c.get('rate_per_s'))}/s in {_fmt(c.get('seconds'))} s", "", "")
    t10 = c.get("seconds_first_10000")
    table.add_row("first 10,000 connected", f"{_fmt(t10)} s", f"≤ {TARGET_CONNECT_10K_S:g} s",
                  _verdict(None if t10 is None else t10 <= TARGET_CONNECT_10K_S))
    table.add_row("server CPU per connect + boot", f"{_fmt(c.get('server_cpu_ms_per_connect'))} ms", "", "")
    table.add_row("MeterValues rate (sent / answered)",
                  f"{_fmt(w.get('rate_sent'))} / {_fmt(w.get('rate_answered'))} calls/s",
                  f"{_fmt(load.get('rate'), ',.0f')} (every {_fmt(load.get('interval_s'), '.0f')} s)", "")
    # Calls in flight at the window's edges make answered and sent differ by a few; what counts is
    # that no call timed out or failed, and that after the drain at stop every call sent was answered.
    lost = None if not w else bool(w["timeouts"] or w["call_errors"] or (st and st["sent"] != st["answered"]))
    table.add_row(f"answered / sent ({_fmt(w.get('seconds'), ',.0f')} s window)",
                  f"{_fmt(w.get('answered'))} / {_fmt(w.get('sent'))}; {_fmt(w.get('call_errors'))} errors, "
                  f"{_fmt(w.get('timeouts'))} timeouts, {_fmt(w.get('late'))} late", "nothing lost",
                  _verdict(None if lost is None else not lost))
    p99 = w.get("latency_p99_ms")
    p50, pmax = _fmt(w.get("latency_p50_ms"), ",.1f"), _fmt(w.get("latency_max_ms"), ",.0f")
    table.add_row("latency p50 / p99 / max", f"{p50} / {_fmt(p99, ',.1f')} / {pmax} ms",
                  f"p99 < {TARGET_P99_MS:,.0f} ms", _verdict(None if p99 is None else p99 < TARGET_P99_MS))
    smax = sse.get("sse_max_ms")
    table.add_row("SSE probe: status to event p50 / max",
                  f"{_fmt(sse.get('sse_p50_ms'), ',.1f')} / {_fmt(smax, ',.1f')} ms "
                  f"({_fmt(sse.get('seen'))}/{_fmt(sse.get('count'))} seen)", f"≤ {TARGET_SSE_MS:,.0f} ms",
                  _verdict(None if not sse else (smax is not None and smax <= TARGET_SSE_MS and not sse.get("missed"))))
    busy, others = load.get("server_core_busy"), load.get("server_core_others")
    table.add_row("server core", "-" if busy is None else f"{busy:.0%}" + (f" (+{others:.0%} others)" if others else "")
                  + f"; {_fmt(load.get('server_us_per_call'), ',.0f')} µs CPU per call", "", "")
    table.add_row("server RSS connected / under load",
                  f"{_fmt(mem.get('rss_connected_mb'), ',.0f')} / {_fmt(mem.get('rss_under_load_mb'), ',.0f')} MB", "",
                  "")
    kb_idle = _fmt(mem.get("kb_per_charger_connected"), ".1f")
    kb_load = _fmt(mem.get("kb_per_charger_under_load"), ".1f")
    table.add_row("KB per charger connected / under load", f"{kb_idle} / {kb_load}", "", "")
    table.add_row("stored / answered MeterValues (whole run)", f"{_fmt(st.get('rows'))} / {_fmt(st.get('answered'))}",
                  "equal", _verdict(st.get("match") if st else None))
    console.print(table)
    if plan.limited_by:
        console.print(f"[yellow]N was capped by {plan.limited_by}[/]")


def _chart(res: dict[str, Any], lat: list[float], plan: Plan, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    c, w, sse = res.get("connect", {}), res.get("load", {}).get("window", {}), res.get("sse_probe", {})
    fig, (ax1, ax2, ax3) = plt.subplots(1, 3, figsize=(17, 4.6))
    curve = c.get("curve") or []
    if curve:
        ax1.plot([p[0] for p in curve], [p[1] for p in curve], color="#2f7ed8", linewidth=1.5)
    ax1.axhline(10_000, color="#9aa5b1", linestyle=":", linewidth=1)
    ax1.axvline(TARGET_CONNECT_10K_S, color="#d64545", linestyle="--", linewidth=1)
    ax1.annotate(f"target: 10,000 within {TARGET_CONNECT_10K_S:g} s", (TARGET_CONNECT_10K_S, 10_000),
                 xytext=(4, 4), textcoords="offset points", fontsize=8, color="#d64545")
    t10 = c.get("seconds_first_10000")
    if t10 is not None:
        ax1.plot([t10], [10_000], "o", color="#2f7ed8")
        ax1.annotate(f"10,000 at {t10:.1f} s", (t10, 10_000), xytext=(6, -14), textcoords="offset points", fontsize=8)
    ax1.set_xlabel("seconds since the first handshake")
    ax1.set_ylabel("chargers connected and booted")
    ax1.set_title(f"connect curve: {c.get('booted', 0):,} chargers, {c.get('rate_per_s')}/s", fontsize=10)
    ax1.spines[["top", "right"]].set_visible(False)
    if lat:
        lo, hi = max(0.05, lat[0]), max(lat[-1], 1.0)
        bins = [lo * (hi / lo) ** (i / 60) for i in range(61)]
        ax2.hist(lat, bins=bins, color="#2f7ed8", alpha=0.85)
        ax2.set_xscale("log")
        for value, label, color in ((w.get("latency_p50_ms"), "p50", "#333333"),
                                    (w.get("latency_p99_ms"), "p99", "#e08a00")):
            if value is not None:
                ax2.axvline(value, color=color, linewidth=1)
                ax2.annotate(f"{label} {value:,.1f} ms", (value, 0.95), xycoords=("data", "axes fraction"),
                             xytext=(3, 0), textcoords="offset points", fontsize=8, color=color, rotation=90,
                             va="top")
        ax2.axvline(TARGET_P99_MS, color="#d64545", linestyle="--", linewidth=1)
        ax2.annotate("target p99 < 1 s", (TARGET_P99_MS, 0.6), xycoords=("data", "axes fraction"), xytext=(3, 0),
                     textcoords="offset points", fontsize=8, color="#d64545", rotation=90)
        probes = [p["sse_ms"] for p in sse.get("probes", []) if p.get("sse_ms") is not None]
        if probes:
            ax2.plot(probes, [0.02] * len(probes), "v", color="#2a9d4b", transform=ax2.get_xaxis_transform(),
                     label=f"SSE probe (status to event), max {max(probes):,.1f} ms")
            ax2.legend(fontsize=8, loc="upper left", frameon=False)
    ax2.set_xlabel("MeterValues latency, ms (send to answer, log scale)")
    ax2.set_ylabel("calls")
    ax2.set_title(f"{res.get('load', {}).get('rate', 0):,.0f} calls/s from {c.get('booted', 0):,} chargers, "
                  f"{w.get('seconds', 0):.0f} s window", fontsize=10)
    ax2.spines[["top", "right"]].set_visible(False)
    series = res.get("load", {}).get("latency_series") or []
    if series:
        secs = [r[0] for r in series]
        ax3.plot(secs, [r[4] for r in series], color="#e08a00", linewidth=1, label="max per second")
        ax3.plot(secs, [r[3] for r in series], color="#2f7ed8", linewidth=1, label="p99 per second")
        ax3.plot(secs, [r[2] for r in series], color="#333333", linewidth=1, label="p50 per second")
        ax3.axhline(TARGET_P99_MS, color="#d64545", linestyle="--", linewidth=1)
        ax3.set_yscale("log")
        ax3.legend(fontsize=8, loc="lower left", frameon=False)
    rss = res.get("memory", {}).get("rss_series") or []
    if rss:
        ax4 = ax3.twinx()
        ax4.plot([r[0] for r in rss], [r[1] for r in rss], color="#2a9d4b", linewidth=1, linestyle=":")
        ax4.set_ylabel("server RSS, MB (dotted; from load start)", color="#2a9d4b", fontsize=9)
        ax4.set_ylim(0, max(r[1] for r in rss) * 1.15)
    ax3.set_xlabel("seconds into the window (RSS: negative = warm-up)")
    ax3.set_ylabel("MeterValues latency, ms (log)")
    ax3.set_title("latency over time, and the server's memory", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# -- main ---------------------------------------------------------------------------------------
def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--chargers", type=int, default=50_000, help="connected chargers (capped by the open-file limit)")
    p.add_argument("--interval", type=float, default=60.0, help="seconds between one charger's MeterValues")
    p.add_argument("--rate", type=float, default=None,
                   help="total MeterValues/s instead of chargers/interval (e.g. 833: the 50,000-charger rate "
                        "from fewer chargers, each calling more often)")
    p.add_argument("--warmup", type=float, default=30.0, help="seconds of load before measuring")
    p.add_argument("--duration", type=float, default=120.0, help="seconds measured")
    p.add_argument("--probes", type=int, default=20, help="StatusNotifications timed to their SSE event")
    p.add_argument("--concurrency", type=int, default=100, help="handshakes in flight while connecting, in total")
    p.add_argument("--per-loadgen", type=int, default=10_000, help="chargers per load generator process")
    p.add_argument("--per-source-ip", type=int, default=10_000, help="connections per loopback source address")
    p.add_argument("--call-timeout", type=float, default=10.0, help="seconds before an unanswered call is lost")
    p.add_argument("--connect-deadline", type=float, default=900.0, help="give up connecting after this many s")
    p.add_argument("--import-chunk", type=int, default=5_000, help="chargers per `chargers import` call")
    p.add_argument("--import-workers", type=int, default=2, help="`chargers import` calls at a time")
    p.add_argument("--fd-margin", type=int, default=100, help="descriptors the server needs besides its chargers")
    p.add_argument("--settle", type=float, default=2.0, help="seconds to let the server settle before reading RSS")
    p.add_argument("--stop-timeout", type=float, default=120.0, help="seconds for the server's clean shutdown")
    p.add_argument("--server-core", type=int, default=0, help="CPU the server is pinned to (-1: no pinning)")
    p.add_argument("--loadgen-core", type=int, default=1, help="CPU the load generators are pinned to (-1: none)")
    p.add_argument("--server-log-level", default=None, help="chargegrid --log-level (default: its own)")
    p.add_argument("--profile", action="store_true",
                   help="py-spy record the server during the connect phase and the window (raw stacks, summarised)")
    p.add_argument("--profile-seconds", type=float, default=20.0, help="seconds per py-spy recording")
    p.add_argument("--name", default="scale", help="results file names: results/NAME.json, NAME.png")
    p.add_argument("--keep", action="store_true", help="keep the work directory (server log, SQLite file, profiles)")
    args = p.parse_args(argv)
    if args.server_core < 0:
        args.server_core = None
    if args.loadgen_core < 0:
        args.loadgen_core = None
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    plan = make_plan(args)
    if plan.limited_by:
        console.print(f"[yellow bold]{args.chargers:,} chargers do not fit on this machine: {plan.limited_by}[/]")
    console.print(f"{plan.chargers:,} chargers over {len(plan.gens)} load generator(s), source addresses "
                  f"{', '.join(ip for g in plan.gens for ip in g.source_ips)}; open files {plan.nofile_soft} "
                  f"(hard {plan.nofile_hard})")
    children = driver_setup(args)
    workdir = Path(tempfile.mkdtemp(prefix="chargegrid-scale-"))
    try:
        res = run(args, plan, children, workdir)
        for key, name in (("connect", "profile-connect.txt"), ("load", "profile-load.txt")):
            prof = res.get(key, {}).get("profile")
            if prof and (workdir / name).exists():
                dest = RESULTS / f"{args.name}-{name}"
                shutil.copy(workdir / name, dest)
                prof["file"] = f"benchmarks/results/{dest.name}"
        report(res, plan, args)
    except KeyboardInterrupt:
        console.print("[yellow]interrupted[/]")
        return 130
    except RuntimeError as exc:
        console.print(f"[red]failed: {exc}[/]")
        console.print(f"work directory kept for inspection: {workdir}")
        args.keep = True
        return 2
    finally:
        children.kill_all()
        if args.keep:
            console.print(f"work directory: {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    stored = res.get("stored", {})
    return 0 if stored.get("nothing_lost") else 1


if __name__ == "__main__":
    sys.exit(main())
