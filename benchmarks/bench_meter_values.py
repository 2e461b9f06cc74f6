"""MeterValues benchmark: chargegrid against a bare picows server, measured in the same run.

For each server (the baseline of ``baseline_server.py``, then chargegrid on a fresh SQLite
file) this driver:

1. starts the server pinned to one core (``taskset -c 0``) and waits for its port;
2. load phase: starts ``loadgen.py`` pinned to the other core, connects and boots N chargers,
   sends MeterValues at R calls/s in total; after a warm-up of W s it reads the server's CPU
   time (user + sys, all threads, from psutil) at the start and the end of an M s window and
   divides by the MeterValues answered in that window: CPU µs per answered call;
3. stops the server (SIGINT: chargegrid flushes and closes) and, for chargegrid, counts the
   rows of ``meter_samples``: every answered MeterValues must have been stored;
4. idle phase, on a fresh server: connects 20 chargers to warm the server's code paths, reads
   its RSS, connects and boots K more (ids continue), waits for it to settle, reads RSS again:
   (RSS after - RSS before) / K is the memory per connected idle charger; the time to connect
   and boot the K chargers is reported too.

Results: a rich table, ``benchmarks/results/NAME.json`` and ``benchmarks/results/NAME.png``;
chargegrid's figures are also given as ratios to the baseline's. Every subprocess is killed
when this script ends, however it ends (Ctrl-C included); every wait has a deadline.

    .venv/bin/python benchmarks/bench_meter_values.py                 # 1,000 chargers, 2,000/s
    .venv/bin/python benchmarks/bench_meter_values.py --quick         # 200 chargers, 500/s, 5 s
    .venv/bin/python benchmarks/bench_meter_values.py --phases idle --idle-chargers 10000 \\
        --name meter_values_idle10k                                   # 10,000 idle chargers
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import json
import os
import platform
import queue
import resource
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil  # type: ignore[import-untyped]  # no stubs in the venv
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
TARGET_US_PER_CALL = 150.0
TARGET_KB_PER_CHARGER = 30.0
TARGET_CONNECT_S_10K = 30.0
PREWARM_CHARGERS = 20
FLEET_PREFIX = "BENCH-"  # loadgen.py's default ids and password
FLEET_PASSWORD = "bench-charger-password-0001"

console = Console()
if not console.is_terminal:  # a log file or a pipe: room for the whole table
    console = Console(width=170)


# -- subprocesses -----------------------------------------------------------------------------
def _raise_nofile_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def _child_setup() -> None:
    """In the child before exec: more file descriptors, and die with the driver (Linux)."""
    _raise_nofile_limit()
    with contextlib.suppress(Exception):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def _pinned(cmd: list[str], core: int | None) -> list[str]:
    if core is None or shutil.which("taskset") is None:
        return cmd
    return ["taskset", "-c", str(core), *cmd]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def wait_for_port(port: int, proc: subprocess.Popen[bytes], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode} before listening on {port}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return
        time.sleep(0.1)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {timeout_s:g} s")


class Children:
    """Every subprocess this driver starts; all are killed on exit."""

    def __init__(self) -> None:
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self, cmd: list[str], *, stdin: int | None = None, stdout: Any = None,
              stderr: Any = None) -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(cmd, stdin=stdin, stdout=stdout, stderr=stderr, preexec_fn=_child_setup,
                                start_new_session=True)  # Ctrl-C reaches the driver only: it stops them in order
        self.procs.append(proc)
        return proc

    @staticmethod
    def stop(proc: subprocess.Popen[bytes], sig: int = signal.SIGINT, timeout_s: float = 20) -> int | None:
        """Ask politely, then kill. Returns the exit code, None if it had to be killed."""
        if proc.poll() is not None:
            return proc.returncode
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(sig)
        try:
            return proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
            return None

    def kill_all(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
        for proc in self.procs:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(5)


class GenProcess:
    """``loadgen.py --control``: commands on its stdin, JSON lines on its stdout (read by a thread)."""

    def __init__(self, children: Children, name: str, cmd: list[str], core: int | None, log: Path) -> None:
        self.name = name
        self.log_path = log
        self.log = log.open("wb")
        self.proc = children.start(_pinned(cmd, core), stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.log)
        self.ps = psutil.Process(self.proc.pid)
        self.lines: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self.ended = False
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            with contextlib.suppress(ValueError):
                self.lines.put(json.loads(raw))
        self.lines.put(None)

    def send(self, command: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(command.encode() + b"\n")
        self.proc.stdin.flush()

    def _died(self) -> RuntimeError:
        self.ended = True
        tail = ""
        with contextlib.suppress(OSError):
            tail = self.log_path.read_text(errors="replace")[-600:]
        return RuntimeError(f"{self.name} exited (code {self.proc.poll()}): {tail}")

    def expect(self, event: str, timeout_s: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                msg = self.lines.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                raise RuntimeError(f"{self.name}: no {event!r} within {timeout_s:g} s") from None
            if msg is None:
                raise self._died()
            if msg.get("event") == event:
                return msg
            if msg.get("event") == "error":
                raise RuntimeError(f"{self.name}: {msg.get('error')}")

    def drain(self) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        while True:
            try:
                msg = self.lines.get_nowait()
            except queue.Empty:
                return out
            if msg is None:
                raise self._died()
            out.append(msg)

    def command(self, command: str, event: str, timeout_s: float) -> dict[str, Any]:
        self.send(command)
        return self.expect(event, timeout_s)

    def close(self) -> dict[str, Any] | None:
        stopped = None
        if self.proc.poll() is None and not self.ended:
            with contextlib.suppress(RuntimeError, BrokenPipeError):
                self.send("stop")
                stopped = self.expect("stopped", 90)
        Children.stop(self.proc, signal.SIGTERM, 10)
        self.log.close()
        return stopped


def start_loadgen(children: Children, url: str, args: argparse.Namespace, log: Path) -> GenProcess:
    """One load generator for this benchmark, ready for commands."""
    cmd = [sys.executable, str(HERE / "loadgen.py"), "--control", "--url", url,
           "--concurrency", str(args.concurrency), "--timeout", str(args.call_timeout)]
    if args.transactions:
        cmd.append("--transactions")
    gen = GenProcess(children, "loadgen", cmd, args.loadgen_core, log)
    gen.expect("ready", 30)
    return gen


# -- servers ----------------------------------------------------------------------------------
@dataclass
class ServerSpec:
    name: str
    make_cmd: Callable[[int, Path], list[str]]  # (ocpp port, work dir) -> command
    has_store: bool


def _chargegrid_cmd(args: argparse.Namespace) -> Callable[[int, Path], list[str]]:
    """The serve command; with ``--registration import`` the fleet is registered first.

    Operators register chargers before they connect (``chargegrid chargers import``), so by
    default the measured connects are those of known chargers; ``--registration auto`` measures
    the demo-only auto-registration path instead.
    """

    def make(port: int, workdir: Path) -> list[str]:
        script = Path(sys.executable).with_name("chargegrid")
        base = [str(script)] if script.exists() else [
            sys.executable, "-c", "import sys; from chargegrid.cli import main; sys.argv[0] = 'chargegrid'; main()"]
        db = f"sqlite:///{workdir / 'chargegrid.db'}"
        cmd = [*base, "serve", "--database-url", db, "--ocpp-port", str(port), "--http-port", str(free_port())]
        if args.registration == "auto":
            cmd.append("--auto-register")
        elif not (workdir / "fleet.csv").exists():
            count = max(args.chargers, args.idle_chargers) + PREWARM_CHARGERS
            lines = [f"{FLEET_PREFIX}{i:05d},{FLEET_PASSWORD}" for i in range(1, count + 1)]
            (workdir / "fleet.csv").write_text("\n".join(lines) + "\n")
            console.print(f"registering {count} chargers (chargegrid chargers import)")
            subprocess.run([*base, "chargers", "import", str(workdir / "fleet.csv"), "--database-url", db],
                           check=True, stdout=subprocess.DEVNULL, timeout=600)
        return cmd + (["--log-level", args.server_log_level] if args.server_log_level else [])

    return make


def _baseline_cmd(port: int, workdir: Path) -> list[str]:
    return [sys.executable, str(HERE / "baseline_server.py"), "--port", str(port)]


@dataclass
class RunningServer:
    proc: subprocess.Popen[bytes]
    ps: psutil.Process
    port: int
    workdir: Path

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ocpp"

    def cpu_s(self) -> float:
        t = self.ps.cpu_times()
        return float(t.user + t.system)

    def cpu_split(self) -> tuple[float, float]:
        t = self.ps.cpu_times()
        return float(t.user), float(t.system)

    def rss(self) -> int:
        return int(self.ps.memory_info().rss)


@contextlib.contextmanager
def running_server(spec: ServerSpec, children: Children, args: argparse.Namespace, workdir: Path,
                   tag: str) -> Iterator[RunningServer]:
    port = free_port()
    workdir.mkdir(parents=True, exist_ok=True)
    with (workdir / f"{tag}.log").open("wb") as log:
        proc = children.start(_pinned(spec.make_cmd(port, workdir), args.server_core), stdout=log, stderr=log)
        server = RunningServer(proc, psutil.Process(proc.pid), port, workdir)
        try:
            wait_for_port(port, proc, 60)
            yield server
        finally:
            code = Children.stop(proc, signal.SIGINT, 30)
            if code not in (0, -signal.SIGINT):
                console.print(f"[yellow]{spec.name} exited with {code}; see {workdir / (tag + '.log')}[/]")


# -- phases -----------------------------------------------------------------------------------
@dataclass
class Result:
    server: str
    load: dict[str, Any] = field(default_factory=dict)
    idle: dict[str, Any] = field(default_factory=dict)


def _sleep(progress: Progress, label: str, seconds: float) -> None:
    task = progress.add_task(label, total=seconds)
    end = time.monotonic() + seconds
    while (left := end - time.monotonic()) > 0:
        time.sleep(min(0.1, left))
        progress.update(task, completed=seconds - max(0.0, end - time.monotonic()))
    progress.update(task, completed=seconds, visible=False)


def load_phase(spec: ServerSpec, children: Children, args: argparse.Namespace, workdir: Path,
               progress: Progress) -> dict[str, Any]:
    out: dict[str, Any] = {"chargers": args.chargers, "rate": args.rate, "warmup_s": args.warmup,
                           "duration_s": args.duration}
    with running_server(spec, children, args, workdir, "load-server") as server:
        gen = start_loadgen(children, server.url, args, workdir / "load-loadgen.log")
        try:
            task = progress.add_task(f"{spec.name}: connecting {args.chargers} chargers", total=None)
            connected = gen.command(f"connect {args.chargers}", "connected", _connect_timeout(args.chargers))
            progress.update(task, visible=False)
            out["connect"] = connected
            gen.command(f"load {args.rate}", "load", 10)
            _sleep(progress, f"{spec.name}: warm-up", args.warmup)
            gen.send("mark")
            gen.expect("mark", 10)
            cpu0, gen_cpu0, wall0 = server.cpu_s(), _cpu(gen.ps), time.monotonic()
            split0, core0, rss0 = server.cpu_split(), _core_times(args.server_core), server.rss()
            _sleep(progress, f"{spec.name}: measuring", args.duration)
            gen.send("mark")
            window = gen.expect("mark", 10)
            cpu1, gen_cpu1, wall1 = server.cpu_s(), _cpu(gen.ps), time.monotonic()
            split1, core1 = server.cpu_split(), _core_times(args.server_core)
            rss1 = server.rss()
            out["rss_under_load_kb"] = rss1 // 1024
            out["rss_growth_in_window_kb"] = (rss1 - rss0) // 1024  # steady state: near 0
        finally:
            stopped = gen.close()
        answered = window["answered"]
        out["window"] = window
        out["server_cpu_s"] = round(cpu1 - cpu0, 4)
        out["server_core_busy"] = round((cpu1 - cpu0) / (wall1 - wall0), 3)
        out["server_user_s"] = round(split1[0] - split0[0], 4)
        out["server_sys_s"] = round(split1[1] - split0[1], 4)
        if core0 is not None and core1 is not None:
            # What else ran on the server's core (other processes, hypervisor steal): explains noisy latency.
            busy = core1[0] - core0[0]
            out["server_core_others"] = round(max(0.0, busy - (cpu1 - cpu0)) / (wall1 - wall0), 3)
            out["server_core_steal"] = round((core1[1] - core0[1]) / (wall1 - wall0), 3)
        out["loadgen_cpu_s"] = round(gen_cpu1 - gen_cpu0, 4)
        out["us_per_call"] = round((cpu1 - cpu0) / answered * 1e6, 2) if answered else None
        out["loadgen_us_per_call"] = round((gen_cpu1 - gen_cpu0) / answered * 1e6, 2) if answered else None
        out["errors"] = window["call_errors"] + window["timeouts"]
        out["totals"] = stopped["total"] if stopped else None
    if spec.has_store:
        stored = count_rows(workdir / "chargegrid.db", "meter_samples")
        total_answered = stopped["total"]["answered"] if stopped else None
        out["stored"] = {"rows": stored, "answered": total_answered, "match": stored == total_answered}
    return out


def idle_phase(spec: ServerSpec, children: Children, args: argparse.Namespace, workdir: Path,
               progress: Progress) -> dict[str, Any]:
    n = args.idle_chargers
    out: dict[str, Any] = {"chargers": n, "prewarm_chargers": PREWARM_CHARGERS}
    with running_server(spec, children, args, workdir, "idle-server") as server:
        gen = start_loadgen(children, server.url, args, workdir / "idle-loadgen.log")
        try:
            task = progress.add_task(f"{spec.name}: idle, warming up", total=None)
            gen.command(f"connect {PREWARM_CHARGERS}", "connected", 60)
            time.sleep(args.settle)
            rss0 = server.rss()
            progress.update(task, description=f"{spec.name}: connecting {n} idle chargers")
            connected = gen.command(f"connect {n}", "connected", _connect_timeout(n))
            progress.update(task, description=f"{spec.name}: settling")
            time.sleep(args.settle)
            rss1 = server.rss()
            progress.update(task, visible=False)
        finally:
            gen.close()
        out["connect"] = connected
        out["connect_s"] = connected["seconds"]
        out["rss_before_kb"] = rss0 // 1024
        out["rss_after_kb"] = rss1 // 1024
        ok = connected["connected"] - connected["boot_failures"]
        out["kb_per_charger"] = round((rss1 - rss0) / 1024 / ok, 2) if ok else None
    return out


def _connect_timeout(n: int) -> float:
    return max(60.0, n * 0.05)


def _core_times(core: int | None) -> tuple[float, float] | None:
    """(busy, steal) seconds of one CPU since boot; None when the server is not pinned."""
    if core is None:
        return None
    t = psutil.cpu_times(percpu=True)[core]
    idle = t.idle + getattr(t, "iowait", 0.0)
    steal = getattr(t, "steal", 0.0)
    return float(sum(t) - idle - steal - getattr(t, "guest", 0.0) - getattr(t, "guest_nice", 0.0)), float(steal)


def _cpu(ps: psutil.Process) -> float:
    t = ps.cpu_times()
    return float(t.user + t.system)


def count_rows(db: Path, table: str) -> int | None:
    if not db.exists():
        return None
    with contextlib.closing(sqlite3.connect(db)) as conn:
        row = conn.execute(f"SELECT count(*) FROM {table}").fetchone()
    return int(row[0])


# -- report -----------------------------------------------------------------------------------
def _ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 2) if a is not None and b else None


def _fmt(v: Any, spec: str = "") -> str:
    return "-" if v is None else format(v, spec)


def report(results: list[Result], args: argparse.Namespace, path_json: Path, path_png: Path) -> dict[str, Any]:
    base = next((r for r in results if r.server == "baseline"), None)
    rows = []
    for r in results:
        us = r.load.get("us_per_call")
        kb = r.idle.get("kb_per_charger")
        rows.append({
            "server": r.server,
            "us_per_call": us,
            "us_per_call_ratio": _ratio(us, base.load.get("us_per_call")) if base else None,
            "kb_per_idle_charger": kb,
            "kb_per_idle_charger_ratio": _ratio(kb, base.idle.get("kb_per_charger")) if base else None,
            "connect_s": r.idle.get("connect_s"),
            "load": r.load,
            "idle": r.idle,
        })
    doc = {
        "benchmark": "meter_values",
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": " ".join([".venv/bin/python", "benchmarks/bench_meter_values.py", *sys.argv[1:]]),
        "settings": {k: v for k, v in vars(args).items() if k != "func"},
        "machine": _machine(),
        "targets": {"us_per_call": TARGET_US_PER_CALL, "kb_per_idle_charger": TARGET_KB_PER_CHARGER,
                    "connect_s_for_10000": TARGET_CONNECT_S_10K},
        "results": rows,
    }
    path_json.write_text(json.dumps(doc, indent=2) + "\n")
    _table(rows, args)
    _chart(rows, args, path_png)
    console.print(f"results: {path_json.relative_to(Path.cwd()) if path_json.is_relative_to(Path.cwd()) else path_json}"
                  f"  chart: {path_png.name}")
    return doc


def _machine() -> dict[str, Any]:
    cpu = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    versions = {}
    for mod in ("picows", "uvloop", "orjson"):
        with contextlib.suppress(Exception):
            versions[mod] = __import__(mod).__version__
    return {"cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version(), "os": platform.platform(),
            "load_average": [round(x, 2) for x in os.getloadavg()], **versions}


def _table(rows: list[dict[str, Any]], args: argparse.Namespace) -> None:
    parts = []
    if "load" in args.phases:
        parts.append(f"MeterValues: {args.chargers} chargers at {args.rate:g} calls/s, server on one core")
    if "idle" in args.phases:
        parts.append(f"memory and connect time with {args.idle_chargers} idle chargers")
    table = Table(title="; ".join(parts))
    for col in ("server", "CPU µs/call", "× baseline", "p50 ms", "p99 ms", "answered/sent", "errors", "server core",
                "KB/idle charger", "× baseline", "connect s", "stored/answered"):
        table.add_column(col, justify="left" if col == "server" else "right")
    for r in rows:
        load = r["load"]
        w = load.get("window", {})
        stored = load.get("stored")
        us, kb = r["us_per_call"], r["kb_per_idle_charger"]
        table.add_row(
            r["server"],
            _budget(us, TARGET_US_PER_CALL, ".1f") if r["server"] != "baseline" else _fmt(us, ".1f"),
            _fmt(r["us_per_call_ratio"], ".2f"),
            _fmt(w.get("latency_p50_ms"), ".2f"),
            _fmt(w.get("latency_p99_ms"), ".2f"),
            f"{w['answered']}/{w['sent']}" if w else "-",
            _fmt(load.get("errors")),
            _core(load),
            _budget(kb, TARGET_KB_PER_CHARGER, ".1f") if r["server"] != "baseline" else _fmt(kb, ".1f"),
            _fmt(r["kb_per_idle_charger_ratio"], ".2f"),
            _fmt(r["connect_s"], ".2f"),
            (f"[{'green' if stored['match'] else 'red'}]{stored['rows']}/{stored['answered']}[/]" if stored else "-"),
        )
    console.print(table)


def _core(load: dict[str, Any]) -> str:
    busy, others = load.get("server_core_busy"), load.get("server_core_others")
    if busy is None:
        return "-"
    return f"{busy:.0%}" + (f" (+{others:.0%} others)" if others else "")


def _budget(value: float | None, target: float, spec: str) -> str:
    if value is None:
        return "-"
    return f"[{'green' if value <= target else 'red'}]{value:{spec}}[/]"


def _chart(rows: list[dict[str, Any]], args: argparse.Namespace, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [r["server"] for r in rows]
    colors = ["#9aa5b1" if n == "baseline" else "#2f7ed8" for n in names]
    fig, axes = plt.subplots(1, 2, figsize=(10, 4.2))
    panels = (
        (axes[0], "us_per_call", "us_per_call_ratio", "server CPU µs per answered MeterValues",
         TARGET_US_PER_CALL, f"{args.chargers} chargers, {args.rate:g} calls/s, one core"),
        (axes[1], "kb_per_idle_charger", "kb_per_idle_charger_ratio", "server RSS KB per idle charger",
         TARGET_KB_PER_CHARGER, f"{args.idle_chargers} idle chargers"),
    )
    for ax, key, ratio_key, title, target, subtitle in panels:
        values = [r[key] or 0.0 for r in rows]
        bars = ax.bar(names, values, color=colors)
        for bar, r in zip(bars, rows, strict=True):
            label = f"{r[key]:.1f}" if r[key] is not None else "n/a"
            if r["server"] != "baseline" and r[ratio_key] is not None:
                label += f"\n({r[ratio_key]:.2f}× baseline)"
            ax.annotate(label, (bar.get_x() + bar.get_width() / 2, bar.get_height()), ha="center", va="bottom",
                        fontsize=9, xytext=(0, 2), textcoords="offset points")
        ax.axhline(target, color="#d64545", linestyle="--", linewidth=1)
        ax.annotate(f"target ≤ {target:g}", (0.01, target), xycoords=("axes fraction", "data"), ha="left",
                    va="bottom", fontsize=8, color="#d64545")
        ax.set_title(f"{title}\n{subtitle}", fontsize=10)
        ax.set_ylim(0, max([*values, target]) * 1.3)
        ax.spines[["top", "right"]].set_visible(False)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# -- main -------------------------------------------------------------------------------------
def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--chargers", type=int, default=1000, help="chargers sending MeterValues (load phase)")
    p.add_argument("--rate", type=float, default=2000.0, help="total MeterValues calls per second")
    p.add_argument("--warmup", type=float, default=5.0, help="seconds of load before measuring")
    p.add_argument("--duration", type=float, default=20.0, help="seconds measured")
    p.add_argument("--idle-chargers", type=int, default=1000, help="chargers connected for the memory figure")
    p.add_argument("--quick", action="store_true",
                   help="a quick check: 200 chargers at 500/s, 2 s warm-up, 5 s measured, 200 idle")
    p.add_argument("--servers", default="baseline,chargegrid", help="comma-separated: baseline, chargegrid")
    p.add_argument("--phases", default="load,idle", help="comma-separated: load, idle")
    p.add_argument("--server-core", type=int, default=0, help="CPU the server is pinned to (-1: no pinning)")
    p.add_argument("--loadgen-core", type=int, default=1, help="CPU the load generator is pinned to (-1: none)")
    p.add_argument("--concurrency", type=int, default=100, help="handshakes in flight while connecting")
    p.add_argument("--call-timeout", type=float, default=10.0, help="seconds before an unanswered call is lost")
    p.add_argument("--settle", type=float, default=2.0, help="seconds to let the server settle before reading RSS")
    p.add_argument("--transactions", action="store_true",
                   help="chargers charge in sessions: MeterValues carry a transactionId (live session figures)")
    p.add_argument("--registration", choices=("import", "auto"), default="import",
                   help="chargegrid: register the fleet before it connects (import) or on first connect (auto)")
    p.add_argument("--server-log-level", default=None, help="chargegrid --log-level (default: its own)")
    p.add_argument("--name", default="meter_values", help="results file names: results/NAME.json, NAME.png")
    p.add_argument("--keep", action="store_true", help="keep the work directory (server logs, SQLite file)")
    args = p.parse_args(argv)
    if args.quick:
        for key, value, default in (("chargers", 200, 1000), ("rate", 500.0, 2000.0), ("warmup", 2.0, 5.0),
                                    ("duration", 5.0, 20.0), ("idle_chargers", 200, 1000)):
            if getattr(args, key) == default:
                setattr(args, key, value)
    if args.server_core < 0:
        args.server_core = None
    if args.loadgen_core < 0:
        args.loadgen_core = None
    return args


def driver_setup(args: argparse.Namespace) -> Children:
    """What every benchmark driver does first: keep off the server's core (children are pinned
    on their own), treat SIGTERM like Ctrl-C so subprocesses are killed, have a results folder."""
    if args.loadgen_core is not None and args.server_core is not None:
        with contextlib.suppress(OSError):
            os.sched_setaffinity(0, {args.loadgen_core})
    RESULTS.mkdir(parents=True, exist_ok=True)

    def on_term(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    return Children()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    specs = {
        "baseline": ServerSpec("baseline", _baseline_cmd, has_store=False),
        "chargegrid": ServerSpec("chargegrid", _chargegrid_cmd(args), has_store=True),
    }
    chosen = [specs[s.strip()] for s in args.servers.split(",") if s.strip()]
    phases = {p.strip() for p in args.phases.split(",")}
    _raise_nofile_limit()
    needed = 2 * max(args.chargers, args.idle_chargers) + 200
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < needed // 2:
        console.print(f"[yellow]open-file limit {soft} is below {needed // 2}: raise `ulimit -n`[/]")
    children = driver_setup(args)
    workroot = Path(tempfile.mkdtemp(prefix="chargegrid-bench-"))
    results: list[Result] = []
    try:
        with Progress(TextColumn("{task.description}"), BarColumn(), TimeRemainingColumn(), console=console,
                      transient=True) as progress:
            for spec in chosen:
                r = Result(spec.name)
                if "load" in phases:
                    r.load = load_phase(spec, children, args, workroot / spec.name, progress)
                if "idle" in phases:
                    r.idle = idle_phase(spec, children, args, workroot / spec.name, progress)
                results.append(r)
        report(results, args, RESULTS / f"{args.name}.json", RESULTS / f"{args.name}.png")
    except KeyboardInterrupt:
        console.print("[yellow]interrupted[/]")
        return 130
    finally:
        children.kill_all()
        if args.keep:
            console.print(f"work directory kept: {workroot}")
        else:
            shutil.rmtree(workroot, ignore_errors=True)
    stored: list[dict[str, Any]] = [r.load["stored"] for r in results if r.load.get("stored")]
    return 1 if any(not s["match"] for s in stored) else 0


if __name__ == "__main__":
    sys.exit(main())
