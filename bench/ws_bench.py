"""WebSocket benchmark: persisted-and-delivered messages across two Daphne workers, against a bare relay
and a bare Channels app (the framework floor), and next to sockets that never read.

What is measured
----------------
A real deployment shape on one machine, loopback only: ``redis-server`` and two ``daphne`` workers that
share one SQLite database (WAL) and that Redis, configured like production (DEBUG off, RS256 public
key). N conversations are created over REST, each with its donor and an assigned agent. Per
conversation the donor's socket sits on one worker and the agent's on the other, so every message goes
client → worker → SQLite → channel layer (Redis) → the other worker → client. One asyncio client process
drives every socket and timestamps with one clock (``time.perf_counter``), so a message's end-to-end
latency is simply its receive time at the other party minus its send time at the sender, matched by
``clientMessageId``.

* ``(a) throughput``: every socket sends as fast as it can with at most WINDOW unacknowledged messages,
  for a fixed time. Reports the steady-state rate of messages that were stored (``message_sent`` is sent
  only after commit) *and* reached the other party (``message_received``) within the window.
* ``(b) latency``: open loop at a fixed offered rate spread evenly over all sockets (the schedule does
  not wait for answers, so a slow server cannot slow the load down and hide its own latency).
* Both for the ``pubsub`` and the ``core`` channel layer (workers restarted between them), and (a) once
  more with ``CHAT_WS_DB_THREADS=0`` (asgiref's single shared thread) to show what the pool buys.
* ``(c) floor comparison``: FLOOR conversations (20 by default, donor and agent on opposite workers as
  above), one message in flight per socket (a person typing, so the rate is bound by the round trip), for
  a fixed time. In flight means until acknowledged (``message_sent``) *and* received by the other party:
  the floor acknowledges before it delivers, so with ``--floor-gate ack`` (the window waits for
  ``message_sent`` only) it accepts more than it delivers and the run measures a growing backlog. The same
  scenario runs, one after the other with fresh workers and a flushed Redis each time, against
  (i) the Channels floor, (ii) the project at ``--compare-ref REF`` ("before", extracted with
  ``git archive`` into a temporary directory and served from there with the same .venv and
  environment), and (iii) the working tree ("after"). Each project run gets a fresh SQLite database
  migrated from its own source tree and its conversations created over REST. ``--repeat N`` interleaves
  N rounds (floor, before, after, floor, ...) because a 2-core machine is noisy; every run is reported,
  then the median per variant and the median of the per-round ratios project/floor. A variant that
  fails (it does not start, migrate or answer) is reported as failed; the other runs go on.
* ``(d) slow readers``: does one conversation full of sockets that never read hurt everyone else? The
  working tree only (pubsub layer), each run with a flushed Redis, a fresh SQLite database and two fresh
  workers, so worker A's RSS is comparable between runs. The normal load is (c)'s: SLOW conversations (20
  by default), every donor's socket on worker A and every agent's on worker B, one message in flight until
  received. "baseline" runs it alone; "slow" runs it next to one more conversation where a staff socket on
  worker B sends 100 frames/s of 9 KB (open loop; it reads its acknowledgements) and 20 sockets of one
  staff user on worker A (the per-user cap) never read (``websockets`` with ``max_queue=1``), so the server
  must close them with 4008 once their unsent frames pass CHAT_WS_MAX_BUFFERED_BYTES/_FRAMES. Per run: the
  normal conversations' delivered msg/s, p50/p95/p99, server CPU µs/msg (as (c)), and worker A's VmRSS
  before the window and its peak during it (sampled every 100 ms). After the run the slow sockets read at
  last, up to their close frame (CHAT_WS_SLOW_CLOSE_GRACE_S is raised to 120 s so it is still there), and
  their close codes are counted, as is worker A's ``chat_ws_slow_closed_total`` (GET /metrics with a
  METRICS_TOKEN). ``--repeat N`` interleaves baseline, slow, baseline, ...; the report gives every run, the
  medians, and the medians of the per-round ratios slow/baseline. ``--slow-flood-control`` adds a variant
  per round, the flood without the slow sockets, to tell the flood's own cost (its 100 msg/s are stored
  and published too) from the slow sockets'. ``--slow-readers-control`` adds "fast": the same flood and 20
  sockets of the same staff user on worker A that read every frame as it arrives (a task per socket doing
  ``recv()`` in a loop, counting the flood's frames) for the whole window, so slow vs fast tells whether
  what the slow sockets cost comes from their being slow or simply from delivering the flood to 20 sockets.
  Per fast run: how many flood frames each fast reader got (by the window's end and after the drain; all
  of them is the expectation) and how their sockets ended (none with 4008). Rounds: baseline, slow,
  (flood,) (fast).
* Correctness in every run: after the window, a bounded drain (longer than the app's gap sweep, which
  re-delivers events the channel layer lost) waits for every acknowledged message to arrive. LOST =
  acknowledged but never received; DUPLICATED = received more than once; the ``In DB`` column counts the
  run's rows in the database independently of the protocol ((a) and (b)).
  In (d) this is about the normal conversations; the flood's messages are not tracked.

Why the baseline and the floor exist
------------------------------------
A number like "1,200 msg/s" mixes the app's cost with the cost of Python WebSocket framing, JSON and the
benchmark client on a 2-core machine. ``bench/relay.py`` does only that part (a ``websockets`` broadcast
relay: no auth, no database, no Redis, one process), driven by the same client code and scenario (a);
the ratio ours/relay says how much of the machine's attainable rate the app keeps. ``bench/channels_floor.py``
is the second reference, for (c): the cheapest correct Channels app (an ``AsyncWebsocketConsumer`` that
joins the conversation's group, acknowledges and ``group_send``s; no database, no auth), served by the same
Daphne with the same channel layer (channels-redis pub/sub) on the same Redis. It is what Daphne + Channels
+ channels-redis cost per message with none of our work, so project/floor is the overhead that is ours.

CPU per process (workers, Redis, relay, client) is reported for every run to show where the time goes;
100 % = one core. ``Server CPU µs/msg`` = CPU seconds (user + system, /proc/<pid>/stat) that every
server-side process of the run used during the send window (both Daphne workers + redis-server, or the
relay) / messages delivered within the window: what one message costs the machine, comparable between
runs of one scenario even where their rates differ.

Idle sockets
------------
K idle donor sockets per worker; each worker's RSS (``/proc/<pid>/status`` VmRSS) is read before they
open (after a warm-up that opens and closes a few, so one-time imports and pools are not counted) and
after all are open and answered a ping; (after - before) / K is the memory one connected user costs.

Run from the repository root: ``.venv/bin/python bench/ws_bench.py [--conversations N] [--duration S]
[--idle-sockets K | --skip-idle] [--layers pubsub,core] [--compare-ref REF] [--repeat N]
[--floor-conversations N] [--skip-floor | --only floor] [--slow-conversations N] [--slow-flood-control]
[--slow-readers-control] [--skip-slow | --only slow] [--output FILE]``; the report is printed and written to
``bench/results/ws_bench.md`` (``ws_bench_floor.md`` with ``--only floor``, ``ws_bench_slow.md`` with
``--only slow``, ``ws_bench_postgres.md`` with ``--database-url``) unless ``--output`` names another file.
Just the comparison, quickly: ``.venv/bin/python bench/ws_bench.py --only floor --compare-ref HEAD --duration 5``;
just the slow readers: ``.venv/bin/python bench/ws_bench.py --only slow --duration 20 --repeat 3``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.metadata
import json
import math
import os
import re
import resource
import secrets
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter, deque
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import benchlib
import django
import httpx
import redis
from benchlib import HOST, free_port, mint, percentile, stop_process
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake

REPO_ROOT = Path(__file__).resolve().parent.parent
# `python bench/ws_bench.py` puts bench/ (not the repo root) on sys.path; the apps live at the root.
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from chatservice.config import WS_TUNING  # noqa: E402 - needs the path fix above

BENCH_DIR = REPO_ROOT / "bench"
RESULTS_FILE = BENCH_DIR / "results" / "ws_bench.md"
FLOOR_RESULTS_FILE = BENCH_DIR / "results" / "ws_bench_floor.md"  # --only floor: keeps the full report intact
DAPHNE = REPO_ROOT / ".venv" / "bin" / "daphne"
RELAY = BENCH_DIR / "relay.py"
SERVICE_APP = "chatservice.asgi:application"
FLOOR_APP = "channels_floor:application"  # bench/channels_floor.py; Daphne imports it from its cwd (bench/)
REDIS_SERVER = "/usr/bin/redis-server"

DEFAULT_CONVERSATIONS = 50  # 100 sockets in the timed runs: many conversations, none of them hot
DEFAULT_DURATION_S = 15.0  # per timed run: long enough for several gap sweeps and a stable rate
DEFAULT_IDLE_SOCKETS = 5_000  # per worker: a worker's share of a busy support desk's open tabs
DEFAULT_LAYERS = ("pubsub", "core")  # the first is "the chosen layer" (idle run, thread comparison)
OFFERED_RATE = 300.0  # msg/s for scenario (b): a busy desk, well below saturation, so latency is pure
WINDOW = 4  # unacknowledged messages per socket in (a): pipelining like a fast typist, bounded queues
DEFAULT_FLOOR_CONVERSATIONS = 20  # (c): 40 sockets at window 1 keep both workers busy without a backlog
FLOOR_WINDOW = 1  # (c): one message in flight per socket, so the rate is bound by the full round trip
# (c) "in flight" ends at delivery by default: the floor acknowledges before it delivers, so a window that
# only waits for message_sent lets it accept far more than it delivers (measured: 26k sent, 12k delivered
# in 5 s, p50 1.5 s) and its latency and CPU per delivered message then measure a growing backlog.
FLOOR_GATES = ("delivery", "ack")
DEFAULT_REPEAT = 1  # (c) rounds; more give medians on a noisy 2-core machine
MAX_REPEAT = 50  # a bound on --repeat: each round restarts workers and migrates two databases
FLOOR_LAYER = "pubsub"  # (c): the floor's only layer (channels_floor.py), so the project runs use it too
MAX_FAILURE_LINES = 8  # of a failed (c) or (d) run's error (it may end with a worker's log tail) in the report
SLOW_RESULTS_FILE = BENCH_DIR / "results" / "ws_bench_slow.md"  # --only slow: keeps the full report intact
DEFAULT_SLOW_CONVERSATIONS = 20  # (d): the normal load of (c), 40 sockets at window 1, far from saturation
SLOW_LAYER = "pubsub"  # (d): the chosen layer, as in (c)
SLOW_SOCKETS = 20  # (d): one user's cap (CHAT_WS_MAX_SOCKETS_PER_USER's default), all on worker A, never reading
SLOW_USER = "lurker"  # (d): the staff user (ADMIN: may join any conversation) who holds the slow sockets
FLOOD_USER = "flooder"  # (d): the staff user whose socket on worker B floods the slow sockets' conversation
FLOOD_RATE = 100.0  # (d): frames per second, open loop: the flood of tests/test_backpressure.py
FLOOD_CONTENT = "x" * 9_000  # (d): a 9 KB message; ~115 of them exceed a socket's 1 MiB outbox
FAST_READERS = SLOW_SOCKETS  # (d) "fast": as many sockets as the slow ones, same user and worker, always reading
# (d) variants: (floods, slow sockets, fast readers). baseline = the normal load alone; slow = plus the flood
# and the slow sockets; flood (--slow-flood-control) = plus the flood alone, to tell the flood's own cost from
# theirs; fast (--slow-readers-control) = plus the flood and readers that keep up, to tell slowness from fan-out.
SLOW_VARIANTS = {
    "baseline": (False, 0, 0),
    "slow": (True, SLOW_SOCKETS, 0),
    "flood": (True, 0, 0),
    "fast": (True, 0, FAST_READERS),
}
SLOW_CLOSE_GRACE_S = "120"  # (d): CHAT_WS_SLOW_CLOSE_GRACE_S: slow clients read their close frame only after the run
SLOW_DRAIN_TIMEOUT_S = 60.0  # (d): per slow socket after the run, reading what is left up to its close frame
FAST_DRAIN_TIMEOUT_S = 10.0  # (d) "fast": after the run's drain, for the last flood frames to reach every reader
SLOW_SETTLE_S = 2.0  # (d): after every socket is open, before worker A's "before" RSS: presence work settles
RSS_SAMPLE_S = 0.1  # (d): worker A's VmRSS is read this often during the window; the peak is reported
CLOSE_TOO_SLOW = 4008  # (d): the close code of a socket that did not read (realtime/consumers.py)
SLOW_CLOSED_METRIC = "chat_ws_slow_closed_total"  # (d): the Prometheus counter of 4008 closes, per worker
METRICS_TOKEN = secrets.token_hex(16)  # (d): /metrics exists only with a scrape secret (>= 16 characters)
DEFAULT_DB_THREADS = WS_TUNING["WS_DB_THREADS"]  # the app's default pool size (compared against 0)
GAP_SWEEP_S = WS_TUNING["WS_GAP_SWEEP_S"]  # the app's default; the drain below must outlast a sweep
DRAIN_TIMEOUT_S = 2 * GAP_SWEEP_S + 5.0  # after the window: time for the sweep to re-deliver lost events
DUPLICATE_GRACE_S = 1.0  # after everything arrived: keep listening so late duplicates are still counted
DRAIN_POLL_S = 0.05  # completeness check interval during the drain
RATE_LIMIT = "10000"  # every CHAT_WS_* rate and burst: the config's maximum, far above the offered load
RATE_LIMIT_VARS = (
    *("CHAT_WS_MESSAGE_RATE", "CHAT_WS_MESSAGE_BURST", "CHAT_WS_USER_RATE", "CHAT_WS_USER_BURST"),
    *("CHAT_WS_TYPING_RATE", "CHAT_WS_TYPING_BURST"),
)
# The idle run opens 200 sockets per donor (10,000 over 50 donors); a real desk's 10,000 tabs belong to
# thousands of people. The per-user cap (20, 4429 beyond) has its own tests; here it is out of the way.
SOCKETS_PER_USER = "10000"
AGENTS = ("agent-0", "agent-1", "agent-2", "agent-3", "agent-4")  # each agent serves N/5 conversations
CONTENT = "Hi, my monthly donation was charged twice this month, could you check it please?"  # typical
MAX_SENDS_PER_SOCKET = 1_000_000  # hard bound on a pump loop; the duration ends it long before
CONNECT_CONCURRENCY = 200  # simultaneous handshakes: faster than one by one, no SYN/accept-queue storms
CONNECT_TIMEOUT_S = 60.0  # per handshake; a worker busy with 200 handshakes answers within seconds
PONG_TIMEOUT_S = 30.0  # per socket, after all are open; a pong slower than this is a failure
MAX_FRAMES_BEFORE_PONG = 50  # presence frames may precede the pong; more than this is a bug
CLOSE_TIMEOUT_S = 2.0  # per socket closing handshake; workers are stopped right after anyway
CLOSE_ALL_TIMEOUT_S = 60.0  # for closing every socket of a phase; the rest are aborted
IDLE_WARMUP_SOCKETS = 100  # per worker, opened and closed before the "before" RSS reading
IDLE_SETTLE_S = 2.0  # after the last pong, before reading RSS: in-flight work (presence, logs) settles
IDLE_CLEANUP_S = 5.0  # after closing every idle socket: the workers' disconnect handlers finish
MAX_PRESENCE_KEYS_COUNTED = 100_000  # bound on the Redis SCAN that counts presence keys
FD_RESERVE = 2_000  # descriptors beyond the idle sockets: Redis, SQLite, logs, the timed runs' sockets
LAG_TICK_S = 0.01  # the client's event-loop lag probe: it sleeps this long and records the overshoot
HEALTH_TIMEOUT_S = 30.0  # Daphne + Django start in ~2 s; anything past this is a broken start
HEALTH_POLL_S = 0.1  # between readiness probes while a child starts
REQUEST_TIMEOUT_S = 10.0  # per REST request during setup
MAX_LOG_EXCERPTS = 3  # distinct error lines quoted per worker log in the report
CLK_TCK = os.sysconf("SC_CLK_TCK")
CODE_VERSION = "unknown"  # set by main(): commit and uncommitted app changes when the run started

TARGET_RATE = 1_000.0  # persisted-and-delivered msg/s in (a) with the chosen layer
TARGET_RELAY_SHARE = 0.25  # ... and at least this share of the bare relay's rate
TARGET_P99_MS = 50.0  # end-to-end p99 in (b)
TARGET_IDLE_KIB = 48.0  # RSS per idle socket
# (d) worker A's RSS growth with the slow sockets: tests/test_backpressure.py's bound; 20 x (1 MiB outbox +
# 64 KiB transport) is ~21 MiB, the rest is allocator slack. Before the bound it was 300 MiB in 20 s.
TARGET_SLOW_RSS_GROWTH_MIB = 64.0
CAPACITY_SHARE = 0.95  # (b) delivering less than this share of the offered rate means the server is saturated


# ------------------------------------------------------------------------------------------ processes


@dataclass
class Child:
    """A child process of the benchmark (Redis, a Daphne worker, the relay, the floor) and its log file."""

    name: str
    process: subprocess.Popen[bytes]
    port: int
    log_path: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    def log_tail(self, chars: int = 3000) -> str:
        return self.log_path.read_text(errors="replace")[-chars:]


def spawn(
    name: str, argv: list[str], port: int, log_path: Path, env: Mapping[str, str], cwd: Path = REPO_ROOT
) -> Child:
    # The child keeps its own copy of the descriptor; ours can close as soon as it has started.
    with open(log_path, "wb") as log:
        process = subprocess.Popen(argv, cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT)
    return Child(name, process, port, log_path)


def stop(child: Child) -> None:
    stop_process(child.process)


def wait_until(child: Child, probe: str) -> None:
    """Poll until the child answers: `probe` is "http" (/health 200), "redis" (PING) or "tcp" (accepts)."""
    for _ in range(math.ceil(HEALTH_TIMEOUT_S / HEALTH_POLL_S)):
        if child.process.poll() is not None:
            raise RuntimeError(f"{child.name} exited with {child.process.returncode}:\n{child.log_tail()}")
        try:
            if probe == "http":
                url = f"http://{HOST}:{child.port}/health"
                if httpx.get(url, timeout=HEALTH_POLL_S * 10, trust_env=False).status_code == 200:
                    return
            elif probe == "redis":
                if redis.Redis(host=HOST, port=child.port, socket_timeout=1).ping():
                    return
            else:
                with socket.create_connection((HOST, child.port), timeout=1):
                    return
        except (httpx.TransportError, redis.RedisError, OSError):
            pass
        time.sleep(HEALTH_POLL_S)  # bounded start-up poll: there is no event to await from another process
    raise RuntimeError(f"{child.name} not ready after {HEALTH_TIMEOUT_S:.0f} s:\n{child.log_tail()}")


def start_redis(tmp: Path) -> Child:
    port = free_port()
    argv = [REDIS_SERVER, "--port", str(port), "--bind", HOST, "--save", "", "--appendonly", "no"]
    argv += ["--dir", str(tmp)]  # nothing is saved, but keep any stray file out of the repo
    child = spawn("redis", argv, port, tmp / "redis.log", os.environ.copy())
    wait_until(child, "redis")
    return child


@contextlib.contextmanager
def workers(
    tmp: Path,
    redis_child: Child,
    *,
    phase: str,
    layer: str,
    threads: int | None,
    app: str = SERVICE_APP,
    cwd: Path = REPO_ROOT,
    env: Mapping[str, str] | None = None,
) -> Iterator[list[Child]]:
    """Two Daphne workers serving `app` from `cwd` on one database and one Redis (flushed first: no stale
    groups or presence); `phase` names their log files. `env` replaces this process's environment;
    threads=None leaves CHAT_WS_DB_THREADS to the environment (the code's own default)."""
    redis.Redis(host=HOST, port=redis_child.port).flushdb()
    env = {**(os.environ if env is None else env), "CHAT_CHANNEL_LAYER": layer}
    if threads is not None:
        env["CHAT_WS_DB_THREADS"] = str(threads)
    stem = f"daphne-{phase}-{layer}-{threads}" if threads is not None else f"daphne-{phase}-{layer}"
    children: list[Child] = []
    try:
        for name in ("A", "B"):
            port = free_port()
            argv = [str(DAPHNE), "-b", HOST, "-p", str(port), app]
            children.append(spawn(f"worker {name}", argv, port, tmp / f"{stem}-{name}.log", env, cwd))
        for child in children:
            wait_until(child, "http")
        yield children
    finally:
        for child in children:
            stop(child)


@contextlib.contextmanager
def relay_server(tmp: Path) -> Iterator[Child]:
    port = free_port()
    child = spawn("relay", [sys.executable, str(RELAY), "--port", str(port)], port, tmp / "relay.log", dict(os.environ))
    try:
        wait_until(child, "tcp")
        yield child
    finally:
        stop(child)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (all threads) from /proc/<pid>/stat."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()  # the command name may contain spaces
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for pid {pid}")


class CpuMeter:
    """CPU used by each child and by this client process between start() and stop(), as % of one core
    and in seconds; every child is a server-side process (the client is this process)."""

    def __init__(self, children: Sequence[Child]) -> None:
        self.children = list(children)
        self.started = 0.0
        self.before: dict[str, float] = {}
        self.percent: dict[str, float] = {}
        self.seconds: dict[str, float] = {}

    def _now(self) -> dict[str, float]:
        values = {child.name: cpu_seconds(child.pid) for child in self.children}
        values["client"] = time.process_time()
        return values

    def start(self) -> None:
        self.before, self.started = self._now(), time.perf_counter()

    def stop(self) -> None:
        after, wall = self._now(), time.perf_counter() - self.started
        self.seconds = {name: after[name] - self.before[name] for name in after}
        self.percent = {name: 100 * used / wall for name, used in self.seconds.items()}

    @property
    def server_seconds(self) -> float:
        """CPU seconds of every child (workers + Redis, the relay, ...) between start() and stop()."""
        return sum(self.seconds[child.name] for child in self.children)


# ---------------------------------------------------------------------------------------------- setup


def prepare_environment(tmp: Path, database_url: str | None) -> bytes:
    """The service's environment with every rate limit raised (benchlib.prepare_environment); returns the
    private key PEM. REDIS_URL is added once Redis has a port."""
    return benchlib.prepare_environment(
        database_url or f"sqlite:///{tmp / 'bench.sqlite3'}",
        {**dict.fromkeys(RATE_LIMIT_VARS, RATE_LIMIT), "CHAT_WS_MAX_SOCKETS_PER_USER": SOCKETS_PER_USER},
    )


def migrate() -> None:
    """Create the schema and empty it (a --database-url database is reused between runs)."""
    for command in (["migrate", "--noinput"], ["flush", "--noinput"]):
        subprocess.run(
            [sys.executable, "manage.py", *command, "--verbosity", "0"],
            cwd=REPO_ROOT,
            env=os.environ.copy(),
            check=True,
            timeout=120,
        )


def migrate_source(source: Path, env: Mapping[str, str]) -> None:
    """`manage.py migrate` of the project tree at `source` against env's (fresh) DATABASE_URL; a failure
    raises with the command's output, so a broken variant is reported rather than guessed at."""
    done = subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput", "--verbosity", "0"],
        cwd=source,
        env=dict(env),
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    if done.returncode != 0:
        raise RuntimeError(f"manage.py migrate in {source} exited with {done.returncode}:\n{done.stderr[-3000:]}")


def extract_ref(ref: str, destination: Path) -> str:
    """`git archive REF | tar -x` into `destination`; returns the full commit id. Checks that Python run
    from there imports the project from there (not the working tree the .venv's editable install maps)."""
    commit = subprocess.run(
        ["git", "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=False,
        timeout=10,
    ).stdout.strip()
    if not commit:
        raise ValueError(f"--compare-ref {ref!r} is not a commit in {REPO_ROOT}")
    destination.mkdir(parents=True)
    archive = subprocess.Popen(["git", "archive", commit], cwd=REPO_ROOT, stdout=subprocess.PIPE)
    assert archive.stdout is not None
    try:
        subprocess.run(["tar", "-x", "-C", str(destination)], stdin=archive.stdout, check=True, timeout=120)
    finally:
        archive.stdout.close()
        archive.wait(timeout=120)
    if archive.returncode != 0:
        raise RuntimeError(f"git archive {commit} exited with {archive.returncode}")
    probe = subprocess.run(
        [sys.executable, "-c", "import chatservice, realtime; print(chatservice.__file__, realtime.__file__)"],
        cwd=destination,
        env={**os.environ, "PYTHONPATH": str(destination)},
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    if probe.returncode != 0 or any(not path.startswith(str(destination)) for path in probe.stdout.split()):
        raise RuntimeError(f"the extracted {ref} does not import from {destination}: {probe.stdout}{probe.stderr}")
    return commit


def raise_fd_limit(needed: int) -> int:
    """Raise this process's RLIMIT_NOFILE (children inherit it) toward `needed`; returns the new soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
    if target > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


@dataclass
class Conversation:
    id: str
    donor_token: str
    agent_token: str


def create_conversations(port: int, private_pem: bytes, count: int) -> list[Conversation]:
    """Each by its own donor (POST /api/conversations), each assigned to an agent (POST .../assign)."""
    agent_tokens = {agent: mint(private_pem, agent, "ADMIN") for agent in AGENTS}
    created = []
    with httpx.Client(base_url=f"http://{HOST}:{port}", timeout=REQUEST_TIMEOUT_S, trust_env=False) as client:
        for i in range(count):
            donor_token = mint(private_pem, f"donor-{i}", "USER")
            response = client.post(
                "/api/conversations",
                json={"subject": f"Bench conversation {i}", "metadata": {}},
                headers={"Authorization": f"Bearer {donor_token}"},
            )
            if response.status_code != 201:
                raise AssertionError(f"create: HTTP {response.status_code}: {response.text[:300]}")
            conversation_id = response.json()["conversationId"]
            agent_token = agent_tokens[AGENTS[i % len(AGENTS)]]
            response = client.post(
                f"/api/conversations/{conversation_id}/assign",
                json={},
                headers={"Authorization": f"Bearer {agent_token}"},
            )
            if response.status_code not in (200, 201):
                raise AssertionError(f"assign: HTTP {response.status_code}: {response.text[:300]}")
            created.append(Conversation(conversation_id, donor_token, agent_token))
    return created


def count_in_db(tmp: Path, prefix: str) -> int:
    """Rows stored for one run (its clientMessageIds share a prefix), read through the ORM."""
    from django.db import connections

    django.setup()
    from messaging.models import Message

    try:
        return Message.objects.filter(client_message_id__startswith=prefix + "-").count()
    finally:
        connections.close_all()


# --------------------------------------------------------------------------------------------- client


@dataclass
class Record:
    """One message sent by the client: when it went out, when it was acknowledged and received."""

    sender: int
    receiver: int
    sent_at: float
    windowed: bool
    acked_at: float | None = None
    failed: str | None = None
    received_at: float | None = None
    receipts: int = 0
    window: asyncio.Semaphore | None = None  # the sender's window slot this message holds (windowed sends)
    until_received: bool = False  # hold the slot until received by the other party, not just until acked

    def settle(self) -> None:
        """Give the window slot back once the message is no longer in flight: answered (message_sent or
        an error) and, if until_received, also received by the other party. Once."""
        if self.window is None:
            return
        answered = self.failed is not None or self.acked_at is not None
        arrived = self.failed is not None or self.received_at is not None or not self.until_received
        if not (answered and arrived):
            return
        self.window.release()
        self.window = None


@dataclass
class Peer:
    """One client socket: the donor's or the agent's in one conversation, and its partner's index."""

    index: int
    partner: int
    worker: str
    ws: ClientConnection
    pending: deque[str] = field(default_factory=deque)  # clientMessageIds awaiting ack/error, in order
    window: asyncio.Semaphore | None = None
    pong: asyncio.Event = field(default_factory=asyncio.Event)
    closed: str | None = None
    reader: asyncio.Task[None] | None = None


class Tracker:
    """Every message of every run, keyed by clientMessageId, and the per-run anomalies."""

    def __init__(self) -> None:
        self.records: dict[str, dict[str, Record]] = {}  # run key -> clientMessageId -> record
        self.by_id: dict[str, Record] = {}
        self.run = ""
        self.closing = False
        self.errors: dict[str, Counter[str]] = {}  # run key -> error code (or anomaly) -> count

    def begin(self, run: str) -> None:
        self.run = run
        self.records[run] = {}
        self.errors[run] = Counter()

    def note(self, problem: str) -> None:
        self.errors.setdefault(self.run, Counter())[problem] += 1

    def add(self, cmid: str, record: Record) -> None:
        self.records[self.run][cmid] = record
        self.by_id[cmid] = record

    def on_frame(self, peer: Peer, raw: str | bytes, now: float) -> None:
        frame = json.loads(raw)
        kind = frame.get("type")
        if kind == "message_received":
            record = self.by_id.get(frame.get("clientMessageId") or "")
            if record is None or record.receiver != peer.index:
                self.note("misrouted message_received")
                return
            record.receipts += 1
            if record.received_at is None:
                record.received_at = now
                record.settle()
        elif kind == "message_sent":
            cmid = frame.get("clientMessageId") or ""
            record = self.by_id.get(cmid)
            if record is None or record.sender != peer.index or cmid not in peer.pending:
                self.note("unexpected message_sent")
                return
            if peer.pending[0] != cmid:
                self.note("ack out of order")
            peer.pending.remove(cmid)
            record.acked_at = now
            record.settle()
        elif kind == "error":
            # The consumer handles one socket's frames strictly in order: an error answers the oldest send.
            self.note(f"error frame: {frame.get('code')}")
            if peer.pending:
                record = self.by_id[peer.pending.popleft()]
                record.failed = str(frame.get("code"))
                record.settle()
        elif kind == "pong":
            peer.pong.set()
        # user_joined, user_left, typing_*, read_receipt, system: not part of the measurement


async def read_frames(peer: Peer, tracker: Tracker) -> None:
    """The socket's reader task: every frame is timestamped on arrival, then classified."""
    try:
        async for raw in peer.ws:  # ends when the socket closes
            tracker.on_frame(peer, raw, time.perf_counter())
    except ConnectionClosed:
        pass
    except Exception as exc:  # a malformed frame is a finding, not a reason to stop measuring
        tracker.note(f"client reader failed: {type(exc).__name__}")
    finally:
        code = peer.ws.close_code
        peer.closed = f"closed {code}"
        if not tracker.closing:
            tracker.note(f"socket closed by server ({code})")


async def open_socket(url: str) -> ClientConnection:
    # proxy=None: never route loopback traffic through an environment proxy; compression=None: Daphne
    # does not negotiate permessage-deflate, and the relay must not get it either; no client keep-alive
    # pings (Daphne pings its sockets itself, and the client answers them automatically).
    return await connect(
        url,
        proxy=None,
        compression=None,
        ping_interval=None,
        open_timeout=CONNECT_TIMEOUT_S,
        close_timeout=CLOSE_TIMEOUT_S,
    )


async def open_many(urls: Sequence[str], problems: Counter[str]) -> list[ClientConnection | None]:
    """Open every URL with at most CONNECT_CONCURRENCY handshakes in flight; None where it failed."""
    gate = asyncio.Semaphore(CONNECT_CONCURRENCY)

    async def one(url: str) -> ClientConnection | None:
        async with gate:
            try:
                return await open_socket(url)
            except (OSError, InvalidHandshake, TimeoutError) as exc:
                problems[f"connect failed: {type(exc).__name__}"] += 1
                return None

    return list(await asyncio.gather(*(one(url) for url in urls)))


async def close_many(connections: Sequence[ClientConnection]) -> None:
    """Close with a handshake, bounded in concurrency and total time; abort whatever is left."""
    gate = asyncio.Semaphore(CONNECT_CONCURRENCY * 2)

    async def one(ws: ClientConnection) -> None:
        async with gate:
            with contextlib.suppress(Exception):
                await ws.close()

    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(asyncio.gather(*(one(ws) for ws in connections)), CLOSE_ALL_TIMEOUT_S)
    for ws in connections:
        if ws.transport is not None and not ws.transport.is_closing():
            ws.transport.abort()


class LagProbe:
    """Overshoot of a LAG_TICK_S sleep in this client's event loop: how late the client itself is to
    read a frame or send on schedule. Large values mean the client, not the server, is the limit."""

    def __init__(self) -> None:
        self.samples: list[float] = []
        self.task: asyncio.Task[None] | None = None

    async def _run(self, max_samples: int) -> None:
        for _ in range(max_samples):
            before = time.perf_counter()
            await asyncio.sleep(LAG_TICK_S)
            self.samples.append((time.perf_counter() - before - LAG_TICK_S) * 1000)

    def start(self, seconds: float) -> None:
        self.task = asyncio.get_running_loop().create_task(self._run(math.ceil(seconds / LAG_TICK_S)))

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task


# ------------------------------------------------------------------------------------------- scenarios


@dataclass
class RunResult:
    key: str
    server: str
    layer: str
    threads: str
    scenario: str
    offered: str
    duration_s: float
    sent: int
    acked: int
    delivered: int
    in_window: int
    latencies_ms: list[float]
    failed: int
    unanswered: int
    lost: int
    duplicated: int
    problems: Counter[str]
    cpu: dict[str, float]
    client_lag_p99_ms: float
    server_cpu_s: float = 0.0  # every server-side process over the send window (CpuMeter.server_seconds)
    schedule_lag_max_ms: float | None = None
    in_db: int | None = None

    @property
    def rate(self) -> float:
        return self.in_window / self.duration_s if self.duration_s > 0 else 0.0

    @property
    def server_cpu_us_per_msg(self) -> float:
        """Server CPU per message delivered within the window, in microseconds (NaN if none was)."""
        return self.server_cpu_s / self.in_window * 1e6 if self.in_window else math.nan

    @property
    def error_count(self) -> int:
        """Error frames, sends never answered, and every protocol anomaly (not lost/duplicated)."""
        return sum(self.problems.values()) + self.unanswered


def outstanding(records: dict[str, Record]) -> int:
    """Messages the drain still waits for: unanswered sends, and acknowledged ones not yet received."""
    return sum(1 for r in records.values() if r.failed is None and (r.acked_at is None or r.received_at is None))


async def drain(tracker: Tracker, run: str, peers: Sequence[Peer]) -> None:
    """Wait (bounded) until every send is answered and every acknowledged message arrived, then a grace
    period for duplicates. Gives up early if every socket is gone."""
    records = tracker.records[run]
    for _ in range(math.ceil(DRAIN_TIMEOUT_S / DRAIN_POLL_S)):
        if outstanding(records) == 0 or all(peer.closed for peer in peers):
            break
        await asyncio.sleep(DRAIN_POLL_S)
    await asyncio.sleep(DUPLICATE_GRACE_S)


def summarize(
    tracker: Tracker,
    run: str,
    *,
    server: str,
    layer: str,
    threads: str,
    scenario: str,
    offered: str,
    started: float,
    window_end: float,
    cpu: CpuMeter,
    lag: LagProbe,
) -> RunResult:
    records = tracker.records[run].values()
    latencies = [(r.received_at - r.sent_at) * 1000 for r in records if r.received_at is not None]
    problems = tracker.errors[run]
    received_unacked = sum(1 for r in records if r.receipts and r.acked_at is None and r.failed is None)
    if received_unacked:
        problems["received but never acknowledged"] += received_unacked
    return RunResult(
        key=run,
        server=server,
        layer=layer,
        threads=threads,
        scenario=scenario,
        offered=offered,
        duration_s=window_end - started,
        sent=len(records),
        acked=sum(1 for r in records if r.acked_at is not None),
        delivered=sum(1 for r in records if r.receipts),
        in_window=sum(1 for r in records if r.received_at is not None and r.received_at <= window_end),
        latencies_ms=latencies,
        failed=sum(1 for r in records if r.failed is not None),
        unanswered=sum(1 for r in records if r.acked_at is None and r.failed is None),
        lost=sum(1 for r in records if r.acked_at is not None and not r.receipts),
        duplicated=sum(1 for r in records if r.receipts > 1),
        problems=problems,
        cpu=dict(cpu.percent),
        client_lag_p99_ms=percentile(lag.samples, 99) if lag.samples else 0.0,
        server_cpu_s=cpu.server_seconds,
    )


def frame_for(cmid: str) -> str:
    return json.dumps({"type": "message", "content": CONTENT, "clientMessageId": cmid}, separators=(",", ":"))


async def send_one(peer: Peer, tracker: Tracker, cmid: str, *, windowed: bool, until_received: bool = False) -> None:
    frame = frame_for(cmid)
    record = Record(peer.index, peer.partner, time.perf_counter(), windowed, until_received=until_received)
    record.window = peer.window if windowed else None
    tracker.add(cmid, record)
    peer.pending.append(cmid)
    try:
        await peer.ws.send(frame)
    except ConnectionClosed:
        peer.pending.remove(cmid)
        record.failed = "socket closed"
        record.window = None  # the socket is gone: its window no longer matters
        tracker.note("send on closed socket")


async def pump(peer: Peer, tracker: Tracker, run: str, deadline: float, *, until_received: bool = False) -> None:
    """Scenarios (a) and (c) for one socket: send whenever the window (WINDOW, FLOOR_WINDOW) has room; a
    message leaves the window when acknowledged, or with until_received once the other party has it."""
    window = peer.window
    assert window is not None
    for n in range(MAX_SENDS_PER_SOCKET):
        remaining = deadline - time.perf_counter()
        if remaining <= 0 or peer.closed:
            return
        try:
            await asyncio.wait_for(window.acquire(), remaining)
        except TimeoutError:
            return
        if time.perf_counter() >= deadline:
            window.release()
            return
        await send_one(peer, tracker, f"{run}-{peer.index}-{n}", windowed=True, until_received=until_received)


async def run_throughput(
    peers: Sequence[Peer],
    tracker: Tracker,
    cpu: CpuMeter,
    *,
    run: str,
    server: str,
    layer: str,
    threads: str,
    duration: float,
    window: int = WINDOW,
    until_received: bool = False,
    scenario: str = "a",
    alongside: Sequence[Callable[[float], Awaitable[None]]] = (),
) -> RunResult:
    """Scenario (a) (and (c), (d) with window=FLOOR_WINDOW): every socket keeps `window` messages in flight,
    in flight meaning unacknowledged or, with until_received, not yet received by the other party.
    `alongside`: more work for the same window ((d): the flood, an RSS probe), each given its deadline."""
    tracker.begin(run)
    for peer in peers:
        peer.window = asyncio.Semaphore(window)
    lag = LagProbe()
    lag.start(duration)
    cpu.start()
    started = time.perf_counter()
    deadline = started + duration
    await asyncio.gather(
        *(pump(peer, tracker, run, deadline, until_received=until_received) for peer in peers),
        *(work(deadline) for work in alongside),
    )
    cpu.stop()
    await lag.stop()
    await drain(tracker, run, peers)
    for peer in peers:
        peer.window = None
    return summarize(
        tracker,
        run,
        server=server,
        layer=layer,
        threads=threads,
        scenario=scenario,
        offered=f"max ({window} in flight/socket{' until received' if until_received else ''})",
        started=started,
        window_end=deadline,
        cpu=cpu,
        lag=lag,
    )


async def run_open_loop(
    peers: Sequence[Peer],
    tracker: Tracker,
    cpu: CpuMeter,
    *,
    run: str,
    server: str,
    layer: str,
    threads: str,
    duration: float,
    rate: float,
) -> RunResult:
    """Scenario (b): message i goes out at start + i/rate from socket i mod len(peers), whatever the
    answers; the worst lateness of the schedule itself is reported (it should be ~ a millisecond)."""
    tracker.begin(run)
    total = int(rate * duration)
    counts = [0] * len(peers)
    lag = LagProbe()
    lag.start(duration)
    cpu.start()
    started = time.perf_counter()
    schedule_lag = 0.0
    for i in range(total):
        delay = started + i / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        else:
            schedule_lag = max(schedule_lag, -delay)
        peer = peers[i % len(peers)]
        if peer.closed:
            tracker.note("scheduled send skipped: socket closed")
            continue
        await send_one(peer, tracker, f"{run}-{peer.index}-{counts[peer.index]}", windowed=False)
        counts[peer.index] += 1
    window_end = max(time.perf_counter(), started + duration)
    cpu.stop()
    await lag.stop()
    await drain(tracker, run, peers)
    result = summarize(
        tracker,
        run,
        server=server,
        layer=layer,
        threads=threads,
        scenario="b",
        offered=f"{rate:.0f} msg/s",
        started=started,
        window_end=window_end,
        cpu=cpu,
        lag=lag,
    )
    result.schedule_lag_max_ms = schedule_lag * 1000
    return result


async def open_pairs(urls: Sequence[tuple[str, str, str]], tracker: Tracker) -> list[Peer]:
    """Open the (url, partner-url-index-is-implicit) sockets: urls[2i] and urls[2i+1] are partners.
    Every socket must open and answer a ping (which also drains its initial frames) before timing."""
    problems: Counter[str] = Counter()
    connections = await open_many([url for url, _, _ in urls], problems)
    if problems or any(ws is None for ws in connections):
        await close_many([ws for ws in connections if ws is not None])
        raise RuntimeError(f"could not open every timed socket: {dict(problems)}")
    peers = []
    for index, (ws, (_, worker, _)) in enumerate(zip(connections, urls, strict=True)):
        assert ws is not None
        peer = Peer(index=index, partner=index ^ 1, worker=worker, ws=ws)
        peer.reader = asyncio.get_running_loop().create_task(read_frames(peer, tracker))
        peers.append(peer)
    for peer in peers:
        await peer.ws.send('{"type":"ping"}')
    try:
        await asyncio.wait_for(asyncio.gather(*(peer.pong.wait() for peer in peers)), PONG_TIMEOUT_S)
    except TimeoutError:
        await close_peers(peers, tracker)
        raise RuntimeError("not every timed socket answered a ping") from None
    return peers


async def close_peers(peers: Sequence[Peer], tracker: Tracker) -> None:
    tracker.closing = True
    await close_many([peer.ws for peer in peers])
    for peer in peers:
        if peer.reader is not None:
            peer.reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await peer.reader
    tracker.closing = False


def app_urls(
    conversations: Sequence[Conversation], ports: Sequence[int], *, alternate: bool = True
) -> list[tuple[str, str, str]]:
    """(url, worker name, role) per socket: donor then agent per conversation, on opposite workers;
    even conversations put the donor on worker A, odd ones on worker B (alternate=False: every donor on A)."""
    urls = []
    for i, conv in enumerate(conversations):
        donor_worker, agent_worker = (0, 1) if i % 2 == 0 or not alternate else (1, 0)
        sides = ((donor_worker, conv.donor_token, "donor"), (agent_worker, conv.agent_token, "agent"))
        for worker, token, role in sides:
            url = f"ws://{HOST}:{ports[worker]}/ws/conversations/{conv.id}?token={token}"
            urls.append((url, "AB"[worker], role))
    return urls


def relay_urls(conversations: Sequence[Conversation], port: int) -> list[tuple[str, str, str]]:
    return [(f"ws://{HOST}:{port}/{conv.id}", "relay", role) for conv in conversations for role in ("donor", "agent")]


@dataclass
class IdleResult:
    worker: str
    sockets: int
    opened: int
    ponged: int
    rss_before_kib: int
    rss_after_kib: int
    open_seconds: float

    @property
    def kib_per_socket(self) -> float:
        return (self.rss_after_kib - self.rss_before_kib) / self.sockets


@dataclass
class RedisState:
    """What the sockets leave in Redis: pub/sub channels (the pubsub layer subscribes one per socket
    and one per group) and presence keys. After every socket closed, both should be back to the
    count before they opened."""

    channels: int
    presence_keys: int


@dataclass
class IdleRun:
    workers: list[IdleResult]
    problems: Counter[str]
    redis_before: RedisState
    redis_after_close: RedisState


def redis_state(port: int) -> RedisState:
    client = redis.Redis(host=HOST, port=port, socket_timeout=10)
    keys = 0
    for keys, _ in enumerate(client.scan_iter(match="chat:presence:*", count=1000), start=1):
        if keys >= MAX_PRESENCE_KEYS_COUNTED:
            break
    return RedisState(channels=len(client.pubsub_channels()), presence_keys=keys)


async def ping_idle(ws: ClientConnection) -> bool:
    """Send a ping and read (bounded) until its pong; earlier frames are presence announcements."""
    await ws.send('{"type":"ping"}')
    for _ in range(MAX_FRAMES_BEFORE_PONG):
        raw = await asyncio.wait_for(ws.recv(), PONG_TIMEOUT_S)
        if json.loads(raw).get("type") == "pong":
            return True
    return False


async def run_idle(
    conversations: Sequence[Conversation], worker_children: Sequence[Child], per_worker: int, redis_port: int
) -> IdleRun:
    """Open `per_worker` idle donor sockets on each worker (conversation j mod N, its donor's token),
    read RSS before and after; then close them all at once and check what is left in Redis."""
    problems: Counter[str] = Counter()

    def urls(count: int) -> list[tuple[int, str]]:
        out = []
        for j in range(count):
            conv = conversations[j % len(conversations)]
            for w, child in enumerate(worker_children):  # interleaved: both workers busy at once
                out.append((w, f"ws://{HOST}:{child.port}/ws/conversations/{conv.id}?token={conv.donor_token}"))
        return out

    redis_before = redis_state(redis_port)
    warm = await open_many([url for _, url in urls(IDLE_WARMUP_SOCKETS)], problems)
    await close_many([ws for ws in warm if ws is not None])
    await asyncio.sleep(IDLE_SETTLE_S)
    before = [rss_kib(child.pid) for child in worker_children]

    plan = urls(per_worker)
    started = time.perf_counter()
    connections = await open_many([url for _, url in plan], problems)
    open_seconds = time.perf_counter() - started
    gate = asyncio.Semaphore(CONNECT_CONCURRENCY)

    async def ping(ws: ClientConnection | None) -> bool:
        if ws is None:
            return False
        async with gate:
            try:
                return await ping_idle(ws)
            except (ConnectionClosed, TimeoutError, ValueError) as exc:
                problems[f"idle ping failed: {type(exc).__name__}"] += 1
                return False

    ponged = await asyncio.gather(*(ping(ws) for ws in connections))
    await asyncio.sleep(IDLE_SETTLE_S)
    after = [rss_kib(child.pid) for child in worker_children]
    results = []
    for w, child in enumerate(worker_children):
        mine = [i for i, (worker, _) in enumerate(plan) if worker == w]
        results.append(
            IdleResult(
                worker=child.name,
                sockets=per_worker,
                opened=sum(1 for i in mine if connections[i] is not None),
                ponged=sum(1 for i in mine if ponged[i]),
                rss_before_kib=before[w],
                rss_after_kib=after[w],
                open_seconds=open_seconds,
            )
        )
    # All at once, like a network blip or a load balancer restart.
    await close_many([ws for ws in connections if ws is not None])
    await asyncio.sleep(IDLE_CLEANUP_S)
    return IdleRun(results, problems, redis_before, redis_state(redis_port))


@dataclass
class FloorRun:
    """One run of scenario (c): its round and variant, and its result or why it failed."""

    round: int
    variant: str
    result: RunResult | None = None
    error: str | None = None


@dataclass
class FloorComparison:
    """Scenario (c): what each variant ran (None = the floor, else the project tree) and every run in order."""

    sources: dict[str, Path | None]
    labels: dict[str, str]
    runs: list[FloorRun] = field(default_factory=list)

    def result(self, round_: int, variant: str) -> RunResult | None:
        return next((r.result for r in self.runs if (r.round, r.variant) == (round_, variant)), None)

    def ratios(self, run: FloorRun) -> tuple[float, float] | None:
        """(msg/s, CPU µs/msg) of a run divided by those of the same round's floor run, if both succeeded."""
        floor = self.result(run.round, "floor")
        if run.result is None or floor is None or floor.rate <= 0 or math.isnan(floor.server_cpu_us_per_msg):
            return None
        return run.result.rate / floor.rate, run.result.server_cpu_us_per_msg / floor.server_cpu_us_per_msg


async def run_floor_variant(
    tmp: Path,
    redis_child: Child,
    private_pem: bytes,
    args: argparse.Namespace,
    tracker: Tracker,
    *,
    round_: int,
    variant: str,
    source: Path | None,
) -> RunResult:
    """One run of (c) with fresh workers: the floor (source None) or the project tree at `source`, which
    first gets a fresh SQLite database migrated by its own manage.py and its conversations over REST."""
    run = f"c{round_}-{variant}"
    count = args.floor_conversations
    if source is None:
        # The floor configures Django itself; the service's settings module must not be imported.
        env = {key: value for key, value in os.environ.items() if key != "DJANGO_SETTINGS_MODULE"}
        context = workers(
            tmp, redis_child, phase=run, layer=FLOOR_LAYER, threads=None, app=FLOOR_APP, cwd=BENCH_DIR, env=env
        )
    else:
        # Same environment as every other run, except the database, and the tree's own code first on the path.
        python_path = os.pathsep.join(filter(None, (str(source), os.environ.get("PYTHONPATH"))))
        env = {**os.environ, "DATABASE_URL": f"sqlite:///{tmp / f'{run}.sqlite3'}", "PYTHONPATH": python_path}
        migrate_source(source, env)
        context = workers(tmp, redis_child, phase=run, layer=FLOOR_LAYER, threads=None, cwd=source, env=env)
    with context as children:
        if source is None:
            conversations = [Conversation(f"floor-{i}", "none", "none") for i in range(count)]
        else:
            conversations = create_conversations(children[0].port, private_pem, count)
        peers = await open_pairs(app_urls(conversations, [c.port for c in children]), tracker)
        try:
            return await run_throughput(
                peers,
                tracker,
                CpuMeter([*children, redis_child]),
                run=run,
                server=variant,
                layer=FLOOR_LAYER,
                threads="—" if source is None else "default",
                duration=args.duration,
                window=FLOOR_WINDOW,
                until_received=args.floor_gate == "delivery",
                scenario="c",
            )
        finally:
            await close_peers(peers, tracker)


async def floor_comparison(
    tmp: Path, redis_child: Child, private_pem: bytes, args: argparse.Namespace, before: tuple[Path, str] | None
) -> FloorComparison:
    """Scenario (c): --repeat rounds of floor, before (if --compare-ref: its tree and commit), after.
    A run that fails is recorded with its error and the next run goes on."""
    comparison = FloorComparison(
        sources={"floor": None}, labels={"floor": "the Channels floor, `bench/channels_floor.py`"}
    )
    if before is not None:
        source, commit = before
        comparison.sources["before"] = source
        comparison.labels["before"] = f"the project at `{args.compare_ref}` = git {commit[:12]} (git archive)"
    comparison.sources["after"] = REPO_ROOT
    comparison.labels["after"] = f"the working tree, {CODE_VERSION}"
    tracker = Tracker()
    for round_ in range(1, args.repeat + 1):
        for variant, source in comparison.sources.items():
            print(f"(c) round {round_}/{args.repeat}: {variant}", flush=True)
            try:
                result = await run_floor_variant(
                    tmp, redis_child, private_pem, args, tracker, round_=round_, variant=variant, source=source
                )
            except Exception as exc:  # one broken variant (mid-refactor tree, bad ref) must not end the others
                comparison.runs.append(FloorRun(round_, variant, error=f"{type(exc).__name__}: {exc}"))
                print(f"  FAILED: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}", flush=True)
                continue
            comparison.runs.append(FloorRun(round_, variant, result=result))
            print(
                f"  {result.key}: {result.rate:,.0f} msg/s, {cpu_per_msg_text(result)} server CPU µs/msg, "
                f"lost {result.lost}, duplicated {result.duplicated}",
                flush=True,
            )
    return comparison


@dataclass
class SlowRun:
    """One run of scenario (d): the normal load's result, worker A's memory, the flood, the slow sockets."""

    round: int
    variant: str
    result: RunResult | None = None
    error: str | None = None
    rss_before_kib: int = 0
    rss_peak_kib: int = 0
    rss_end_kib: int = 0  # after the drains, the slow sockets closed
    flood_sent: int = 0
    flood_acked: int = 0
    flood_lag_max_ms: float = 0.0  # worst lateness of the flood's own schedule
    slow_outcomes: Counter[str] = field(default_factory=Counter)  # close code (or what happened) -> sockets
    slow_frames: list[int] = field(default_factory=list)  # per slow socket: frames it read before its close
    slow_closed_metric: float | None = None  # worker A's chat_ws_slow_closed_total after the run
    fast_outcomes: Counter[str] = field(default_factory=Counter)  # "open" or close code -> fast readers
    fast_window_frames: list[int] = field(default_factory=list)  # per fast reader: flood frames by the window's end
    fast_frames: list[int] = field(default_factory=list)  # per fast reader: flood frames in all, after the drain

    @property
    def rss_growth_mib(self) -> float:
        return (self.rss_peak_kib - self.rss_before_kib) / 1024

    @property
    def closed_too_slow(self) -> int:
        return self.slow_outcomes[str(CLOSE_TOO_SLOW)]

    @property
    def fast_closed_too_slow(self) -> int:
        return self.fast_outcomes[str(CLOSE_TOO_SLOW)]

    def too_slow_text(self) -> str:
        """4008 closes of the variant's sockets on worker A in the flooded conversation (slow or fast), of how many."""
        _, slow_count, fast_count = SLOW_VARIANTS[self.variant]
        if slow_count:
            return f"{self.closed_too_slow}/{slow_count}"
        return f"{self.fast_closed_too_slow}/{fast_count}" if fast_count else "—"

    def fast_frames_text(self) -> str:
        """The fast readers' flood frames after the drain, lowest / highest ("—" without fast readers)."""
        return f"{min(self.fast_frames):,} / {max(self.fast_frames):,}" if self.fast_frames else "—"


@dataclass
class SlowComparison:
    """Scenario (d): the variants of every round (baseline first) and every run in order."""

    variants: list[str]
    runs: list[SlowRun] = field(default_factory=list)

    def baseline(self, run: SlowRun) -> RunResult | None:
        return next((r.result for r in self.runs if (r.round, r.variant) == (run.round, "baseline") and r.result), None)

    def ratios(self, run: SlowRun) -> tuple[float, float, float] | None:
        """(msg/s, p50, p99) of a run divided by those of the same round's baseline, if both succeeded."""
        base, r = self.baseline(run), run.result
        if r is None or base is None or not (base.rate > 0 and base.latencies_ms and r.latencies_ms):
            return None
        return (
            r.rate / base.rate,
            percentile(r.latencies_ms, 50) / percentile(base.latencies_ms, 50),
            percentile(r.latencies_ms, 99) / percentile(base.latencies_ms, 99),
        )


class RssPeak:
    """The highest VmRSS of one process, read every RSS_SAMPLE_S until a deadline."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peak_kib = rss_kib(pid)

    async def watch(self, deadline: float) -> None:
        for _ in range(math.ceil(max(0.0, deadline - time.perf_counter()) / RSS_SAMPLE_S) + 1):
            self.peak_kib = max(self.peak_kib, rss_kib(self.pid))
            remaining = deadline - time.perf_counter()
            if remaining <= 0:
                return
            await asyncio.sleep(min(RSS_SAMPLE_S, remaining))


class Flood:
    """The staff socket that floods the slow sockets' conversation: FLOOD_RATE frames/s of FLOOD_CONTENT on
    an open-loop schedule; it reads every frame it gets (its acknowledgements), so it is not slow itself."""

    def __init__(self, ws: ClientConnection, run: str, slow: SlowRun) -> None:
        self.ws = ws
        self.prefix = f"{run}-flood-"
        self.slow = slow
        self.problems: Counter[str] = Counter()
        self.reader = asyncio.get_running_loop().create_task(self._read())
        self.acked = asyncio.Event()  # the first acknowledgement (the warm-up)

    async def _read(self) -> None:
        with contextlib.suppress(ConnectionClosed):
            async for raw in self.ws:
                frame = json.loads(raw)
                if frame.get("type") == "message_sent" and str(frame.get("clientMessageId")).startswith(self.prefix):
                    self.slow.flood_acked += 1
                    self.acked.set()
                elif frame.get("type") == "error":
                    self.problems[f"flood error frame: {frame.get('code')}"] += 1

    async def send(self, n: int) -> bool:
        content = f"{n} {FLOOD_CONTENT}"
        frame = {"type": "message", "content": content, "clientMessageId": f"{self.prefix}{n}"}
        try:
            await self.ws.send(json.dumps(frame, separators=(",", ":")))
        except ConnectionClosed:
            self.problems["flood socket closed"] += 1
            return False
        self.slow.flood_sent += 1
        return True

    async def run(self, deadline: float) -> None:
        started = time.perf_counter()
        for i in range(MAX_SENDS_PER_SOCKET):
            at = started + i / FLOOD_RATE
            if at >= deadline:
                return
            delay = at - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            # Late by the sleep's overshoot at least: the client's loop also drives 40 sockets and the probe.
            self.slow.flood_lag_max_ms = max(self.slow.flood_lag_max_ms, (time.perf_counter() - at) * 1000)
            if not await self.send(i + 1):  # 0 was the warm-up
                return

    async def close(self) -> None:
        await close_many([self.ws])
        self.reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.reader


class FastReader:
    """(d) "fast": a socket in the flooded conversation on worker A that reads every frame as it arrives (a
    task doing recv() in a loop), counting the frames and, of them, the flood's; how the socket ended."""

    def __init__(self, ws: ClientConnection, flood_prefix: str) -> None:
        self.ws = ws
        # A substring test, not json.loads: 20 readers get 2,000 frames of 9 KB a second, and the client that
        # drives the normal load must not spend its loop parsing them. The id appears only in the flood's frames.
        self.marker = f'"{flood_prefix}'
        self.frames = 0
        self.flood_frames = 0
        self.outcome = "open"  # until the server closes it: its close code (or how it went)
        self.task = asyncio.get_running_loop().create_task(self._read())

    async def _read(self) -> None:
        try:
            for _ in range(MAX_SENDS_PER_SOCKET):  # a bound far above the flood's frames and presence
                raw = await self.ws.recv()
                self.frames += 1
                if isinstance(raw, str) and self.marker in raw:
                    self.flood_frames += 1
        except ConnectionClosed as exc:
            self.outcome = str(exc.rcvd.code) if exc.rcvd is not None else "dropped without a close frame"

    async def settle(self, expected: int, deadline: float) -> None:
        """Wait (until `deadline`) for `expected` flood frames, or for the socket to end."""
        while self.flood_frames < expected and not self.task.done() and time.perf_counter() < deadline:
            await asyncio.sleep(DRAIN_POLL_S)


async def close_fast_readers(readers: Sequence[FastReader]) -> None:
    await close_many([reader.ws for reader in readers])
    for reader in readers:
        reader.task.cancel()
    await asyncio.gather(*(reader.task for reader in readers), return_exceptions=True)


async def open_slow_socket(url: str) -> ClientConnection:
    # max_queue=1: once one frame waits unread, the library stops reading the TCP socket (test_backpressure.py).
    return await connect(
        url,
        proxy=None,
        compression=None,
        ping_interval=None,
        max_queue=1,
        open_timeout=CONNECT_TIMEOUT_S,
        close_timeout=CLOSE_TIMEOUT_S,
    )


async def slow_socket_outcome(ws: ClientConnection) -> tuple[str, int]:
    """Read a slow socket, at last, up to its close frame: the close code it got (or what happened instead)
    and how many frames came before it (presence, the warm-up, the flood frames that got out before the close)."""
    frames = 0

    async def read_to_close() -> str:
        nonlocal frames
        for _ in range(MAX_SENDS_PER_SOCKET):
            await ws.recv()
            frames += 1
        return "still open"

    try:
        return await asyncio.wait_for(read_to_close(), SLOW_DRAIN_TIMEOUT_S), frames
    except ConnectionClosed as exc:
        return (str(exc.rcvd.code) if exc.rcvd is not None else "dropped without a close frame"), frames
    except TimeoutError:
        return "still open", frames


def slow_closed_metric(port: int) -> float | None:
    """Worker's chat_ws_slow_closed_total from GET /metrics (None if absent or unreachable)."""
    try:
        response = httpx.get(
            f"http://{HOST}:{port}/metrics",
            headers={"Authorization": f"Bearer {METRICS_TOKEN}"},
            timeout=REQUEST_TIMEOUT_S,
            trust_env=False,
        )
    except httpx.TransportError:
        return None
    match = re.search(rf"^{SLOW_CLOSED_METRIC} (\S+)$", response.text, re.MULTILINE)
    return float(match.group(1)) if response.status_code == 200 and match else None


async def run_slow_variant(
    tmp: Path, redis_child: Child, private_pem: bytes, args: argparse.Namespace, tracker: Tracker, slow: SlowRun
) -> None:
    """One run of (d) with fresh workers and a fresh database, filling `slow`: the normal load of
    --slow-conversations (donors on worker A, agents on B, window 1 until received), plus per the variant
    the flood from worker B into one more conversation and, on worker A in it, SLOW_SOCKETS never-reading
    sockets or FAST_READERS sockets that read everything (of the same user)."""
    run = f"d{slow.round}-{slow.variant}"
    floods, slow_count, fast_count = SLOW_VARIANTS[slow.variant]
    env = {
        **os.environ,
        "DATABASE_URL": f"sqlite:///{tmp / f'{run}.sqlite3'}",
        "METRICS_TOKEN": METRICS_TOKEN,
        "CHAT_WS_SLOW_CLOSE_GRACE_S": SLOW_CLOSE_GRACE_S,
    }
    migrate_source(REPO_ROOT, env)
    with workers(tmp, redis_child, phase=run, layer=SLOW_LAYER, threads=None, env=env) as children:
        worker_a, worker_b = children
        # One more than the normal load in every variant, so every run's database starts the same.
        *normal, flooded = create_conversations(worker_a.port, private_pem, args.slow_conversations + 1)
        peers = await open_pairs(app_urls(normal, [c.port for c in children], alternate=False), tracker)
        flood: Flood | None = None
        slow_sockets: list[ClientConnection] = []
        fast_readers: list[FastReader] = []

        async def fast_window_end(deadline: float) -> None:  # the fast readers' flood frames when the window ends
            await asyncio.sleep(max(0.0, deadline - time.perf_counter()))
            slow.fast_window_frames = [reader.flood_frames for reader in fast_readers]

        try:
            if floods:
                token = mint(private_pem, FLOOD_USER, "ADMIN")
                url = f"ws://{HOST}:{worker_b.port}/ws/conversations/{flooded.id}?token={token}"
                flood = Flood(await open_socket(url), run, slow)
            if slow_count:
                token = mint(private_pem, SLOW_USER, "ADMIN")
                url = f"ws://{HOST}:{worker_a.port}/ws/conversations/{flooded.id}?token={token}"
                for _ in range(slow_count):  # one by one, so the finally below closes every one that opened
                    slow_sockets.append(await open_slow_socket(url))
            if fast_count:
                assert flood is not None
                token = mint(private_pem, SLOW_USER, "ADMIN")
                url = f"ws://{HOST}:{worker_a.port}/ws/conversations/{flooded.id}?token={token}"
                for _ in range(fast_count):  # one by one, as the slow sockets
                    fast_readers.append(FastReader(await open_socket(url), flood.prefix))
            if flood is not None:  # one message through, so its one-time costs are not in the RSS growth
                await flood.send(0)
                await asyncio.wait_for(flood.acked.wait(), PONG_TIMEOUT_S)
            await asyncio.sleep(SLOW_SETTLE_S)
            slow.rss_before_kib = rss_kib(worker_a.pid)
            rss = RssPeak(worker_a.pid)
            slow.result = await run_throughput(
                peers,
                tracker,
                CpuMeter([*children, redis_child]),
                run=run,
                server=slow.variant,
                layer=SLOW_LAYER,
                threads="default",
                duration=args.duration,
                window=FLOOR_WINDOW,
                until_received=True,
                scenario="d",
                alongside=[
                    rss.watch,
                    *([flood.run] if flood is not None else []),
                    *([fast_window_end] if fast_readers else []),
                ],
            )
            slow.rss_peak_kib = rss.peak_kib
            if fast_readers:
                assert flood is not None
                settled = time.perf_counter() + FAST_DRAIN_TIMEOUT_S
                await asyncio.gather(*(reader.settle(slow.flood_acked, settled) for reader in fast_readers))
                slow.fast_outcomes = Counter(reader.outcome for reader in fast_readers)
                slow.fast_frames = [reader.flood_frames for reader in fast_readers]
            outcomes = await asyncio.gather(*(slow_socket_outcome(ws) for ws in slow_sockets))
            slow.slow_outcomes = Counter(outcome for outcome, _ in outcomes)
            slow.slow_frames = [frames for _, frames in outcomes]
            slow.slow_closed_metric = slow_closed_metric(worker_a.port)
            if flood is not None:
                slow.result.problems.update(flood.problems)
        finally:
            await close_peers(peers, tracker)
            if flood is not None:
                await flood.close()
            await close_many(slow_sockets)
            await close_fast_readers(fast_readers)
        slow.rss_end_kib = rss_kib(worker_a.pid)


async def slow_readers(tmp: Path, redis_child: Child, private_pem: bytes, args: argparse.Namespace) -> SlowComparison:
    """Scenario (d): --repeat rounds of baseline, slow (, flood with --slow-flood-control) (, fast with
    --slow-readers-control), interleaved. A run that fails is recorded with its error and the next run goes on."""
    variants = [
        "baseline",
        "slow",
        *(["flood"] if args.slow_flood_control else []),
        *(["fast"] if args.slow_readers_control else []),
    ]
    comparison = SlowComparison(variants)
    tracker = Tracker()
    for round_ in range(1, args.repeat + 1):
        for variant in variants:
            print(f"(d) round {round_}/{args.repeat}: {variant}", flush=True)
            slow = SlowRun(round_, variant)
            comparison.runs.append(slow)
            try:
                await run_slow_variant(tmp, redis_child, private_pem, args, tracker, slow)
            except Exception as exc:  # one broken run must not end the others
                slow.error = f"{type(exc).__name__}: {exc}"
                slow.result = None
                print(f"  FAILED: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}", flush=True)
                continue
            r = slow.result
            assert r is not None
            print(
                f"  {r.key}: {r.rate:,.0f} msg/s, p99 {percentile(r.latencies_ms or [math.nan], 99):.1f} ms, "
                f"worker A RSS {slow.rss_before_kib / 1024:.1f} -> peak {slow.rss_peak_kib / 1024:.1f} MiB, "
                f"slow sockets {dict(slow.slow_outcomes)}, {SLOW_CLOSED_METRIC} {slow.slow_closed_metric}"
                + (
                    f", fast readers {dict(slow.fast_outcomes)}, flood frames {slow.fast_frames_text()} "
                    f"of {slow.flood_acked:,} acked"
                    if slow.fast_frames
                    else ""
                ),
                flush=True,
            )
    return comparison


# ------------------------------------------------------------------------------------------- reporting


def version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "?"


def machine_lines() -> list[str]:
    redis_version = subprocess.run(
        [REDIS_SERVER, "--version"], capture_output=True, text=True, check=False, timeout=10
    ).stdout.split()
    redis_v = next((part[2:] for part in redis_version if part.startswith("v=")), "?")
    return benchlib.machine_lines(
        versions=f"Redis {redis_v}; channels {version('channels')}, channels-redis {version('channels-redis')}, "
        f"daphne {version('daphne')}, websockets {version('websockets')}",
        extra=[f"- Code measured: {CODE_VERSION}"],
    )


def code_version() -> str:
    """The commit measured and any uncommitted changes to the app (the code changes while people work)."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=10
        ).stdout.strip()
        status = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no", "--", ".", ":(exclude)bench"],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.splitlines()
    except (OSError, subprocess.TimeoutExpired):
        return "unknown (git unavailable)"
    changed = [line[3:] for line in status if line.strip()]
    return f"git {head or '?'}" + (f" + uncommitted changes to {', '.join(changed)}" if changed else " (clean)")


def cpu_text(cpu: dict[str, float]) -> str:
    short = {"worker A": "A", "worker B": "B", "redis": "redis", "relay": "relay", "client": "client"}
    return " / ".join(f"{short.get(name, name)} {value:.0f}" for name, value in cpu.items())


def cpu_per_msg_text(r: RunResult) -> str:
    return "—" if math.isnan(r.server_cpu_us_per_msg) else f"{r.server_cpu_us_per_msg:,.0f}"


def results_table(results: Sequence[RunResult]) -> list[str]:
    lines = [
        "| Run | Server | Layer | DB threads | Offered | s | Sent | Acked | Delivered | In DB | Delivered msg/s "
        "| p50 ms | p95 ms | p99 ms | max ms | Errors | LOST | DUP | CPU % (100 = 1 core) | Server CPU µs/msg "
        "| Client lag p99 ms |",
        "|---|---|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|",
    ]
    for r in results:
        t = r.latencies_ms or [math.nan]
        lines.append(
            f"| {r.key} | {r.server} | {r.layer} | {r.threads} | {r.offered} | {r.duration_s:.1f} | {r.sent:,} "
            f"| {r.acked:,} | {r.delivered:,} | {'—' if r.in_db is None else f'{r.in_db:,}'} | {r.rate:,.0f} "
            f"| {percentile(t, 50):.1f} | {percentile(t, 95):.1f} | {percentile(t, 99):.1f} | {max(t):.1f} "
            f"| {r.error_count} | {r.lost} | {r.duplicated} | {cpu_text(r.cpu)} | {cpu_per_msg_text(r)} "
            f"| {r.client_lag_p99_ms:.1f} |"
        )
    return lines


def traceback_origins(text: list[str], roots: Sequence[Path] = (REPO_ROOT,)) -> Counter[str]:
    """Group a log's tracebacks by their innermost frame in the project's own code (not .venv) and the
    exception they end with, e.g. `realtime/presence.py:75 in join: MaxConnectionsError: ...`; `roots` are
    the project trees (the working tree, an extracted --compare-ref). A chain ("During handling of the above
    exception...") counts once, as its last exception."""
    origins: Counter[str] = Counter()
    frame, last, chained, inside = "(no project frame)", "", False, False
    for line in text:
        stripped = line.strip()
        if line.startswith("Traceback"):
            if not chained:
                frame = "(no project frame)"
            inside, chained = True, False
        elif stripped.startswith(("During handling of the above", "The above exception was the direct")):
            chained = True
            origins[last] -= 1
            if origins[last] <= 0:
                del origins[last]
        elif inside and stripped.startswith('File "') and "/.venv/" not in stripped:
            path, _, rest = stripped[len('File "') :].partition('", line ')
            root = next((root for root in roots if Path(path).is_relative_to(root)), None)
            if root is not None:
                number, _, function = rest.partition(", in ")
                frame = f"{Path(path).relative_to(root)}:{number} in {function}"
        elif inside and line and not line[0].isspace():
            last = f"{frame}: {stripped.split(' from ')[0][:120]}"
            origins[last] += 1
            inside = False
    return origins


def log_findings(log_paths: Sequence[Path], roots: Sequence[Path] = (REPO_ROOT,)) -> list[str]:
    """Per child log: tracebacks grouped by origin, and the distinct warning/error lines outside them."""
    lines = []
    for path in log_paths:
        if not path.exists():
            continue
        text = path.read_text(errors="replace").splitlines()
        origins = traceback_origins(text, roots)
        flagged = [line.strip() for line in text if " WARNING " in line or " ERROR " in line or "# WARNING" in line]
        if not origins and not flagged:
            continue
        lines.append(f"- `{path.name}`: {sum(origins.values())} tracebacks, {len(flagged)} WARNING/ERROR lines")
        lines += [f"  - {count}x `{origin}`" for origin, count in origins.most_common(MAX_LOG_EXCERPTS)]
        messages = Counter(line.split(" ", 2)[-1][:160] for line in flagged)  # without the timestamp
        lines += [f"  - {count}x `{message}`" for message, count in messages.most_common(MAX_LOG_EXCERPTS)]
    return lines or ["- No tracebacks, warnings or errors in any worker, Redis or relay log."]


def ratio_text(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}"


def median_or_nan(values: Sequence[float]) -> float:
    values = [v for v in values if not math.isnan(v)]
    return statistics.median(values) if values else math.nan


def failure_lines(runs: Sequence[FloorRun | SlowRun]) -> list[str]:
    """The failed runs of (c) or (d) with their errors (the head, then the last lines: a worker's log tail)."""
    failed = [run for run in runs if run.error is not None]
    if not failed:
        return []
    lines = ["", "Failed runs (the other runs are unaffected):", ""]
    for run in failed:
        assert run.error is not None
        head, *rest = run.error.splitlines() or [""]
        lines.append(f"- round {run.round}, {run.variant}: `{head[:300]}`")
        tail = [line for line in rest if line.strip()][-MAX_FAILURE_LINES:]
        if tail:
            lines += ["", "  ```", *(f"  {line[:200]}" for line in tail), "  ```"]
    return lines


def floor_section(floor: FloorComparison, args: argparse.Namespace) -> list[str]:
    """Scenario (c): every run, the median per variant, and the runs that failed."""
    n = args.floor_conversations
    lines = [
        f"## (c) Floor comparison: {n} conversations, {FLOOR_WINDOW} message in flight per socket, "
        f"{args.duration:.0f} s per run, {args.repeat} round(s)",
        "",
        *(f"- {variant}: {label}" for variant, label in floor.labels.items()),
        f"- Each run: Redis flushed, 2 fresh Daphne workers (A, B), {FLOOR_LAYER} channel layer; {n} conversations "
        f"with the donor's socket and the agent's on opposite workers ({2 * n} sockets); a socket sends its next "
        + (
            "message only after the previous one was both acknowledged (`message_sent`) and received by the other "
            "party (`--floor-gate delivery`: the floor acknowledges before it delivers, so waiting for the "
            "acknowledgement alone would let a backlog grow)."
            if args.floor_gate == "delivery"
            else "message only after `message_sent` for the previous (`--floor-gate ack`: a server that "
            "acknowledges before delivering, like the floor, can accept more than it delivers and build a backlog)."
        )
        + " A project run first migrates a fresh SQLite database "
        "with its own tree's manage.py and creates its conversations over REST (not timed); the floor has no "
        "database and ignores the token. Runs are interleaved per round: "
        f"{', '.join(floor.sources)}.",
        "- Server CPU µs/msg = CPU seconds of both workers + redis-server over the window / messages delivered in "
        "it. ÷ floor = the run's value / the value of the floor run of the same round (msg/s: higher is better; "
        "CPU/msg: lower is better).",
        "",
        "| Round | Variant | s | Sent | Acked | Delivered msg/s | p50 ms | p99 ms | Server CPU µs/msg | msg/s ÷ floor "
        "| CPU/msg ÷ floor | Errors | LOST | DUP | CPU % (100 = 1 core) | Client lag p99 ms |",
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|",
    ]
    for run in floor.runs:
        r = run.result
        if r is None:
            lines.append(f"| {run.round} | {run.variant} | FAILED (below) |" + " — |" * 13)
            continue
        t = r.latencies_ms or [math.nan]
        ratios = floor.ratios(run) if run.variant != "floor" else None
        lines.append(
            f"| {run.round} | {run.variant} | {r.duration_s:.1f} | {r.sent:,} | {r.acked:,} | {r.rate:,.0f} "
            f"| {percentile(t, 50):.1f} | {percentile(t, 99):.1f} | {cpu_per_msg_text(r)} "
            f"| {ratio_text(ratios[0] if ratios else None)} | {ratio_text(ratios[1] if ratios else None)} "
            f"| {r.error_count} | {r.lost} | {r.duplicated} | {cpu_text(r.cpu)} | {r.client_lag_p99_ms:.1f} |"
        )
    lines += [
        "",
        "Median per variant over its successful runs; the ratios are the medians of the per-round ratios "
        "(rounds where both the variant and the floor ran):",
        "",
        "| Variant | Runs OK | Delivered msg/s | p50 ms | p99 ms | Server CPU µs/msg | msg/s ÷ floor "
        "| CPU/msg ÷ floor |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for variant in floor.sources:
        ok = [run.result for run in floor.runs if run.variant == variant and run.result is not None]
        if not ok:
            lines.append(f"| {variant} | 0/{args.repeat} | — | — | — | — | — | — |")
            continue
        paired = [ratios for run in floor.runs if run.variant == variant and (ratios := floor.ratios(run))]
        rate_ratio = statistics.median(q for q, _ in paired) if paired and variant != "floor" else None
        cpu_ratio = statistics.median(c for _, c in paired) if paired and variant != "floor" else None
        p50 = median_or_nan([percentile(r.latencies_ms, 50) for r in ok if r.latencies_ms])
        p99 = median_or_nan([percentile(r.latencies_ms, 99) for r in ok if r.latencies_ms])
        cpu = median_or_nan([r.server_cpu_us_per_msg for r in ok])
        lines.append(
            f"| {variant} | {len(ok)}/{args.repeat} | {statistics.median(r.rate for r in ok):,.0f} | {p50:.1f} "
            f"| {p99:.1f} | {'—' if math.isnan(cpu) else f'{cpu:,.0f}'} | {ratio_text(rate_ratio)} "
            f"| {ratio_text(cpu_ratio)} |"
        )
    lines += failure_lines(floor.runs)
    lines.append("")
    return lines


def mib_text(kib: int) -> str:
    return f"{kib / 1024:.1f}"


def slow_section(slow: SlowComparison, args: argparse.Namespace) -> list[str]:
    """Scenario (d): every run, the median per variant with its ratios to the baseline, and failures."""
    n = args.slow_conversations
    lines = [
        f"## (d) Slow readers: {n} normal conversations, {FLOOR_WINDOW} message in flight per socket, "
        f"{args.duration:.0f} s per run, {args.repeat} round(s)",
        "",
        f"- Each run: Redis flushed, a fresh SQLite database migrated, 2 fresh Daphne workers (A, B) of the working "
        f"tree, {SLOW_LAYER} channel layer, METRICS_TOKEN set, CHAT_WS_SLOW_CLOSE_GRACE_S={SLOW_CLOSE_GRACE_S}, "
        f"the other bounds at their defaults; {n + 1} conversations created over REST (not timed). The normal "
        f"load: {n} conversations, every donor's socket on worker A and every agent's on worker B ({2 * n} "
        "sockets); a socket sends its next message once the previous one was acknowledged and received by the "
        "other party (as (c)).",
        f"- baseline: the normal load alone. slow: the same normal load, plus the one more conversation, where a "
        f"staff socket (`{FLOOD_USER}`, ADMIN) on worker B sends {FLOOD_RATE:.0f} frames/s of "
        f"{len(FLOOD_CONTENT) / 1000:.0f} KB on an open-loop schedule (it reads its acknowledgements) and "
        f"{SLOW_SOCKETS} sockets of one staff user (`{SLOW_USER}`, ADMIN) on worker A never read during the run "
        "(websockets with max_queue=1)."
        + (
            " flood (`--slow-flood-control`): the flood alone, without the slow sockets, so slow vs flood is "
            "the slow sockets' own cost."
            if "flood" in slow.variants
            else ""
        )
        + (
            f" fast (`--slow-readers-control`): the same flood, and {FAST_READERS} sockets of the same user "
            f"(`{SLOW_USER}`) on worker A that read every frame as it arrives (a task per socket doing recv() in a "
            "loop, counting frames) through the window and the drain after it: the same fan-out of the flood by "
            "worker A without the slowness, so slow vs fast tells whether the slow sockets cost because they are "
            "slow or because delivering the flood to 20 sockets is work (fast readers that keep up pay for every "
            "frame of the 20 s, the slow sockets only until they are closed)."
            if "fast" in slow.variants
            else ""
        )
        + f" Rounds interleave: {', '.join(slow.variants)}.",
        f"- Worker A RSS (VmRSS): before the window (every socket open, one flood message through, "
        f"{SLOW_SETTLE_S:.0f} s settled), its peak (read every {RSS_SAMPLE_S * 1000:.0f} ms during the window), "
        "growth = peak - before, and at the end (after the drains, every socket closed). 4008 = slow sockets "
        f"that, read after the run and its drain, ended with a close frame of code {CLOSE_TOO_SLOW} (of "
        f"{SLOW_SOCKETS}); `{SLOW_CLOSED_METRIC}` = worker A's /metrics after that. Flood sent / acked include "
        "one warm-up message before the window."
        + (
            f" In a fast run, 4008 = fast readers closed with {CLOSE_TOO_SLOW} (of {FAST_READERS}; 0 expected) and "
            "Fast flood frames = the flood frames (warm-up included) a fast reader received by the end of the "
            f"drain (up to {FAST_DRAIN_TIMEOUT_S:.0f} s more for the last ones), lowest / highest: every one of "
            "them should get every acknowledged flood message."
            if "fast" in slow.variants
            else ""
        ),
        "- Server CPU µs/msg = CPU seconds of both workers + redis-server over the window / normal messages "
        "delivered in it (with a flood it includes the flood's cost). ÷ baseline = the run's value / the value of "
        "the baseline run of the same round (msg/s: higher is better; latency: lower is better).",
        "",
        "| Round | Variant | s | Sent | Delivered msg/s | p50 ms | p95 ms | p99 ms | Server CPU µs/msg | msg/s ÷ base "
        "| p50 ÷ base | p99 ÷ base | A RSS before MiB | A RSS peak MiB | A RSS growth MiB | A RSS end MiB "
        f"| Flood sent / acked | 4008 | Fast flood frames | {SLOW_CLOSED_METRIC} | Errors | LOST | DUP "
        "| CPU % (100 = 1 core) | Client lag p99 ms |",
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:"
        "|---:|---:|---|---:|",
    ]
    for run in slow.runs:
        r = run.result
        if r is None:
            lines.append(f"| {run.round} | {run.variant} | FAILED (below) |" + " — |" * 22)
            continue
        t = r.latencies_ms or [math.nan]
        ratios = slow.ratios(run) if run.variant != "baseline" else None
        floods = SLOW_VARIANTS[run.variant][0]
        metric = "—" if run.slow_closed_metric is None else f"{run.slow_closed_metric:.0f}"
        lines.append(
            f"| {run.round} | {run.variant} | {r.duration_s:.1f} | {r.sent:,} | {r.rate:,.0f} "
            f"| {percentile(t, 50):.1f} | {percentile(t, 95):.1f} | {percentile(t, 99):.1f} | {cpu_per_msg_text(r)} "
            + " ".join(f"| {ratio_text(ratios[i] if ratios else None)}" for i in range(3))
            + f" | {mib_text(run.rss_before_kib)} | {mib_text(run.rss_peak_kib)} | {run.rss_growth_mib:.1f} "
            f"| {mib_text(run.rss_end_kib)} | {f'{run.flood_sent:,} / {run.flood_acked:,}' if floods else '—'} "
            f"| {run.too_slow_text()} | {run.fast_frames_text()} | {metric} | {r.error_count} "
            f"| {r.lost} | {r.duplicated} | {cpu_text(r.cpu)} | {r.client_lag_p99_ms:.1f} |"
        )
    lines += [
        "",
        "Median per variant over its successful runs; the ratios are the medians of the per-round ratios to the "
        "baseline (rounds where both ran):",
        "",
        "| Variant | Runs OK | Delivered msg/s | p50 ms | p95 ms | p99 ms | Server CPU µs/msg | A RSS growth MiB "
        f"| msg/s ÷ baseline | p50 ÷ baseline | p99 ÷ baseline | 4008 per run | Fast flood frames per run "
        f"| {SLOW_CLOSED_METRIC} per run |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|---|",
    ]
    for variant in slow.variants:
        ok = [run for run in slow.runs if run.variant == variant and run.result is not None]
        results = [run.result for run in ok if run.result is not None]
        if not results:
            lines.append(f"| {variant} | 0/{args.repeat} |" + " — |" * 12)
            continue
        paired = [ratios for run in ok if (ratios := slow.ratios(run))] if variant != "baseline" else []
        medians = [statistics.median(q[i] for q in paired) if paired else None for i in range(3)]
        timed = [r.latencies_ms for r in results if r.latencies_ms]
        p50, p95, p99 = (median_or_nan([percentile(t, q) for t in timed]) for q in (50, 95, 99))
        cpu = median_or_nan([r.server_cpu_us_per_msg for r in results])
        closes = ", ".join(run.too_slow_text() for run in ok) if any(SLOW_VARIANTS[variant][1:]) else "—"
        fast_frames = ", ".join(run.fast_frames_text() for run in ok) if SLOW_VARIANTS[variant][2] else "—"
        metrics = ", ".join("—" if run.slow_closed_metric is None else f"{run.slow_closed_metric:.0f}" for run in ok)
        lines.append(
            f"| {variant} | {len(results)}/{args.repeat} | {statistics.median(r.rate for r in results):,.0f} "
            f"| {p50:.1f} | {p95:.1f} | {p99:.1f} | {'—' if math.isnan(cpu) else f'{cpu:,.0f}'} "
            f"| {statistics.median(run.rss_growth_mib for run in ok):.1f} "
            + " ".join(f"| {ratio_text(value)}" for value in medians)
            + f" | {closes} | {fast_frames} | {metrics} |"
        )
    notes = []
    for run in slow.runs:
        other = {code: count for code, count in run.slow_outcomes.items() if code != str(CLOSE_TOO_SLOW)}
        if other:
            notes.append(f"- d{run.round}-{run.variant}: slow sockets that did not end with {CLOSE_TOO_SLOW}: {other}")
        if run.result is not None and SLOW_VARIANTS[run.variant][0]:
            notes.append(
                f"- d{run.round}-{run.variant}: worst lateness of the flood's schedule {run.flood_lag_max_ms:.1f} ms"
            )
        if run.slow_frames:
            low, mid, high = min(run.slow_frames), statistics.median(run.slow_frames), max(run.slow_frames)
            notes.append(
                f"- d{run.round}-{run.variant}: frames a slow socket read before its close frame (presence, the "
                f"warm-up and the flood frames that had left before the close): min {low:,}, median {mid:,.0f}, "
                f"max {high:,}; at {FLOOD_RATE:.0f} frames/s the median is ~{mid / FLOOD_RATE:.1f} s of flood"
            )
        if run.fast_frames:
            window = run.fast_window_frames or [0]
            notes.append(
                f"- d{run.round}-{run.variant}: flood frames a fast reader received, of {run.flood_acked:,} acked "
                f"(warm-up included): by the window's end min {min(window):,}, median {statistics.median(window):,.0f}"
                f", max {max(window):,}; after the drain min {min(run.fast_frames):,}, median "
                f"{statistics.median(run.fast_frames):,.0f}, max {max(run.fast_frames):,}; the readers' sockets at "
                f"the end: {dict(run.fast_outcomes)}"
            )
    if notes:
        lines += ["", *notes]
    lines += failure_lines(slow.runs)
    lines.append("")
    return lines


def report(
    *,
    args: argparse.Namespace,
    throughput: list[RunResult],
    latency: list[RunResult],
    idle: IdleRun | None,
    floor: FloorComparison | None,
    slow: SlowComparison | None,
    log_paths: Sequence[Path],
    setup_s: float,
) -> str:
    chosen = args.layers[0]
    n = args.conversations
    timed = bool(throughput or latency)
    lines = [
        "# WebSocket benchmark"
        + {"floor": ": floor comparison only (`--only floor`)", "slow": ": slow readers only (`--only slow`)"}.get(
            args.only or "", ""
        ),
        "",
        *machine_lines(),
    ]
    if timed:
        lines.append(
            f"- Topology: redis-server + 2 Daphne workers (A, B) on {HOST}, one "
            f"{'PostgreSQL' if args.database_url else 'SQLite (WAL)'} database, DEBUG off, "
            f"rate limits raised to {RATE_LIMIT}/s and the per-user socket cap to {SOCKETS_PER_USER}; "
            f"{n} conversations created over REST ({setup_s:.1f} s), each "
            f"with a donor socket and an agent socket on opposite workers ({2 * n} sockets), so every message "
            "crosses workers through Redis. One asyncio client process (websockets) drives and timestamps "
            "every socket."
        )
    lines += [
        f"- Latency = receive time at the other party - send time at the sender (same clock), matched by "
        f"clientMessageId. Delivered msg/s counts messages received within the {args.duration:.0f} s window. "
        f"After each window a drain of up to {DRAIN_TIMEOUT_S:.0f} s (the gap sweep runs every "
        f"{GAP_SWEEP_S} s) waits for stragglers, then {DUPLICATE_GRACE_S:.0f} s more for duplicates: LOST = "
        "acknowledged (`message_sent`) but never received; DUP = received more than once; In DB = the "
        "run's rows in the database. Errors = error frames + sends never answered + protocol anomalies.",
        "- CPU % is per process over the send window (100 = one core of 2); Server CPU µs/msg = CPU seconds of "
        "every server-side process (both workers + Redis, or the relay) over the send window / messages "
        "delivered within it; client lag p99 is how late the client's own event loop wakes from a "
        f"{LAG_TICK_S * 1000:.0f} ms sleep (its share of any latency).",
        "",
    ]
    if timed:
        lines += [
            f"## (a) Throughput: every socket sends with ≤ {WINDOW} unacknowledged messages, {args.duration:.0f} s",
            "",
            *results_table(throughput),
            "",
            f"## (b) Latency: open loop at {OFFERED_RATE:.0f} msg/s spread over all sockets, {args.duration:.0f} s",
            "",
            *results_table(latency),
            "",
        ]
    for r in latency:
        lines.append(f"- {r.key}: worst lateness of the send schedule itself {r.schedule_lag_max_ms:.1f} ms")
        if r.rate < CAPACITY_SHARE * OFFERED_RATE:
            lines.append(
                f"- {r.key}: only {r.rate:,.0f} of {OFFERED_RATE:.0f} msg/s delivered within the window: the offered "
                "load exceeds the server's capacity, so the latencies are mostly queueing delay that grows with "
                "the run's length"
            )
    if latency:
        lines.append("")
    if idle is not None:
        k = idle.workers[0].sockets
        lines += [
            f"## Idle sockets: {k:,} donor sockets per worker ({chosen} layer)",
            "",
            "| Worker | Sockets | Opened | Answered ping | Open time s (both workers) | RSS before MiB "
            "| RSS after MiB | RSS per socket KiB |",
            "|---|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for i in idle.workers:
            lines.append(
                f"| {i.worker} | {i.sockets:,} | {i.opened:,} | {i.ponged:,} | {i.open_seconds:.1f} "
                f"| {i.rss_before_kib / 1024:.1f} | {i.rss_after_kib / 1024:.1f} | {i.kib_per_socket:.1f} |"
            )
        before, after = idle.redis_before, idle.redis_after_close
        lines += [
            "",
            f"After closing all {2 * k:,} idle sockets at once and waiting {IDLE_CLEANUP_S:.0f} s, Redis holds "
            f"{after.channels:,} pub/sub channels and {after.presence_keys:,} presence keys; before the idle run "
            f"(and its warm-up of {IDLE_WARMUP_SOCKETS} sockets per worker, also closed at once) it held "
            f"{before.channels:,} and {before.presence_keys:,}. Anything above that is left behind by closed sockets.",
        ]
        if idle.problems:
            lines += ["", f"Idle-run problems (client side): {dict(idle.problems)}"]
        lines.append("")

    if floor is not None:
        lines += floor_section(floor, args)
    floor_results = [run.result for run in floor.runs if run.result is not None] if floor is not None else []
    if slow is not None:
        lines += slow_section(slow, args)
    slow_results = [run.result for run in slow.runs if run.result is not None] if slow is not None else []

    problems = [(r.key, r.problems) for r in (*throughput, *latency, *floor_results, *slow_results) if r.problems]
    if problems:
        lines += ["Errors by kind:", ""]
        lines += [f"- {key}: {dict(counter)}" for key, counter in problems]
        lines.append("")

    lines += ["## Targets", ""]
    default_threads = str(DEFAULT_DB_THREADS)
    ours = next((r for r in throughput if (r.server, r.layer, r.threads) == ("daphne", chosen, default_threads)), None)
    relay = next((r for r in throughput if r.server == "relay"), None)
    if ours is not None:
        verdict = "PASS" if ours.rate >= TARGET_RATE else "FAIL"
        lines.append(
            f"- (a) ≥ {TARGET_RATE:,.0f} persisted-and-delivered msg/s ({ours.key}): {verdict} ({ours.rate:,.0f})"
        )
        if relay is not None and relay.rate > 0:
            share = ours.rate / relay.rate
            verdict = "PASS" if share >= TARGET_RELAY_SHARE else "FAIL"
            lines.append(
                f"- (a) ≥ {TARGET_RELAY_SHARE:.0%} of the bare relay: {verdict} (ours/relay = "
                f"{ours.rate:,.0f}/{relay.rate:,.0f} = {share:.1%})"
            )
    for r in latency:
        p99 = percentile(r.latencies_ms, 99) if r.latencies_ms else math.inf
        verdict = "PASS" if p99 <= TARGET_P99_MS else "FAIL"
        lines.append(f"- (b) p99 ≤ {TARGET_P99_MS:.0f} ms ({r.key}): {verdict} ({p99:.1f} ms)")
    for i in idle.workers if idle is not None else ():
        verdict = "PASS" if i.kib_per_socket <= TARGET_IDLE_KIB else "FAIL"
        lines.append(
            f"- ≤ {TARGET_IDLE_KIB:.0f} KiB RSS per idle socket ({i.worker}): {verdict} ({i.kib_per_socket:.1f} KiB)"
        )
        verdict = "PASS" if i.ponged == i.sockets else "FAIL"
        lines.append(f"- every idle socket opened and answered ({i.worker}): {verdict} ({i.ponged:,}/{i.sockets:,})")
    for run in floor.runs if floor is not None else ():
        if run.error is not None:
            lines.append(f"- (c) run completed (c{run.round}-{run.variant}): FAIL (see the failed runs above)")
    for run in slow.runs if slow is not None else ():
        _, slow_count, fast_count = SLOW_VARIANTS[run.variant]
        if run.error is not None:
            lines.append(f"- (d) run completed (d{run.round}-{run.variant}): FAIL (see the failed runs above)")
        elif slow_count:
            growth = run.rss_growth_mib
            verdict = "PASS" if growth <= TARGET_SLOW_RSS_GROWTH_MIB else "FAIL"
            lines.append(
                f"- (d) worker A RSS growth ≤ {TARGET_SLOW_RSS_GROWTH_MIB:.0f} MiB with {slow_count} slow sockets "
                f"(d{run.round}-{run.variant}): {verdict} ({growth:.1f} MiB)"
            )
            closed_ok = run.closed_too_slow == slow_count and run.slow_closed_metric == slow_count
            lines.append(
                f"- (d) every slow socket closed with {CLOSE_TOO_SLOW} and counted (d{run.round}-{run.variant}): "
                f"{'PASS' if closed_ok else 'FAIL'} ({run.closed_too_slow}/{slow_count} got {CLOSE_TOO_SLOW}, "
                f"{SLOW_CLOSED_METRIC} = {run.slow_closed_metric})"
            )
        elif fast_count:
            fast_ok = (
                run.fast_outcomes["open"] == fast_count
                and len(run.fast_frames) == fast_count
                and min(run.fast_frames) >= run.flood_acked
                and run.slow_closed_metric == 0
            )
            lines.append(
                f"- (d) every fast reader got every flood frame and stayed open (d{run.round}-{run.variant}): "
                f"{'PASS' if fast_ok else 'FAIL'} (flood frames {run.fast_frames_text()} of {run.flood_acked:,} "
                f"acked, sockets {dict(run.fast_outcomes)}, {SLOW_CLOSED_METRIC} = {run.slow_closed_metric})"
            )
    for r in (*throughput, *latency, *floor_results, *slow_results):
        verdict = "PASS" if r.lost == 0 and r.duplicated == 0 and r.sent > 0 else "FAIL"
        lines.append(f"- 0 lost, 0 duplicated ({r.key}): {verdict} (lost {r.lost}, duplicated {r.duplicated})")
    roots = [REPO_ROOT, *(path for path in floor.sources.values() if path)] if floor is not None else [REPO_ROOT]
    lines += ["", "## Server logs", "", *log_findings(log_paths, roots)]
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------------------------------------ main


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--conversations", type=int, default=DEFAULT_CONVERSATIONS, help="conversations (2 sockets each)"
    )
    parser.add_argument("--duration", type=float, default=DEFAULT_DURATION_S, help="seconds per timed run")
    parser.add_argument("--idle-sockets", type=int, default=DEFAULT_IDLE_SOCKETS, help="idle sockets per worker")
    parser.add_argument("--skip-idle", action="store_true", help="skip the idle-socket memory run")
    parser.add_argument("--keep-logs", type=Path, help="copy the Redis, worker and relay logs to this directory")
    parser.add_argument(
        "--database-url",
        help="an empty PostgreSQL database to use instead of a temporary SQLite file (emptied first)",
    )
    parser.add_argument(
        "--layers",
        default=",".join(DEFAULT_LAYERS),
        help="comma-separated channel layers to compare (pubsub, core); the first is the chosen one",
    )
    parser.add_argument(
        "--only",
        choices=("floor", "slow"),
        help="run only this scenario: floor = (c), slow = (d); without (a), (b), the relay and the idle run",
    )
    parser.add_argument("--skip-floor", action="store_true", help="skip scenario (c), the floor comparison")
    parser.add_argument("--skip-slow", action="store_true", help="skip scenario (d), the slow readers")
    parser.add_argument(
        "--compare-ref",
        metavar="REF",
        help='(c): also run the project at this git ref ("before", via git archive) next to the working tree',
    )
    parser.add_argument(
        "--repeat",
        type=int,
        default=DEFAULT_REPEAT,
        help="(c): rounds of floor, before, after; (d): rounds of baseline, slow (, flood) (, fast)",
    )
    parser.add_argument(
        "--floor-conversations",
        type=int,
        default=DEFAULT_FLOOR_CONVERSATIONS,
        help="(c): conversations (2 sockets each, on opposite workers)",
    )
    parser.add_argument(
        "--floor-gate",
        choices=FLOOR_GATES,
        default=FLOOR_GATES[0],
        help="(c): a socket's next message waits until the previous one was acknowledged and received by the "
        "other party (delivery, default) or only acknowledged (ack; the floor then builds a backlog)",
    )
    parser.add_argument(
        "--slow-conversations",
        type=int,
        default=DEFAULT_SLOW_CONVERSATIONS,
        help="(d): normal conversations (donor on worker A, agent on worker B)",
    )
    parser.add_argument(
        "--slow-flood-control",
        action="store_true",
        help="(d): one more variant per round, flood: the flood without the slow sockets (the flood's own cost)",
    )
    parser.add_argument(
        "--slow-readers-control",
        action="store_true",
        help="(d): one more variant per round, fast: the same flood with 20 sockets of the same user on worker A "
        "that read everything (is the cost slowness or the fan-out?)",
    )
    parser.add_argument(
        "--output",
        type=Path,
        help=f"report file (default {RESULTS_FILE.relative_to(REPO_ROOT)}; {FLOOR_RESULTS_FILE.name} with "
        f"--only floor, {SLOW_RESULTS_FILE.name} with --only slow, ws_bench_postgres.md with --database-url)",
    )
    args = parser.parse_args(argv)
    args.layers = [layer.strip() for layer in args.layers.split(",") if layer.strip()]
    if not args.layers or any(layer not in DEFAULT_LAYERS for layer in args.layers):
        parser.error(f"--layers must list some of: {', '.join(DEFAULT_LAYERS)}")
    if len(set(args.layers)) != len(args.layers):
        parser.error("--layers lists a layer twice")
    if args.conversations < 1:
        parser.error("--conversations must be at least 1")
    if not 1 <= args.duration <= 600:
        parser.error("--duration must be between 1 and 600 seconds")
    if args.idle_sockets < 1:
        parser.error("--idle-sockets must be at least 1")
    if args.only == "floor" and args.skip_floor:
        parser.error("--only floor and --skip-floor exclude each other")
    if args.only == "slow" and args.skip_slow:
        parser.error("--only slow and --skip-slow exclude each other")
    if args.compare_ref and (args.skip_floor or args.only == "slow"):
        parser.error("--compare-ref is for scenario (c), which --skip-floor and --only slow skip")
    if not 1 <= args.repeat <= MAX_REPEAT:
        parser.error(f"--repeat must be between 1 and {MAX_REPEAT}")
    if args.floor_conversations < 1:
        parser.error("--floor-conversations must be at least 1")
    if args.slow_conversations < 1:
        parser.error("--slow-conversations must be at least 1")
    if args.output is None:
        # One results file per kind of run, so a partial or PostgreSQL run does not replace the full report.
        args.output = {"floor": FLOOR_RESULTS_FILE, "slow": SLOW_RESULTS_FILE}.get(args.only or "", RESULTS_FILE)
        if args.database_url and args.only is None:
            args.output = RESULTS_FILE.with_name("ws_bench_postgres.md")
    return args


async def timed_runs(
    tmp: Path, redis_child: Child, private_pem: bytes, args: argparse.Namespace
) -> tuple[list[Conversation], list[RunResult], list[RunResult], float]:
    """Every (a) and (b) run; returns the conversations (reused by the idle run) and the results."""
    tracker = Tracker()
    throughput: list[RunResult] = []
    latency: list[RunResult] = []
    conversations: list[Conversation] = []
    setup_s = 0.0
    plans = [(layer, DEFAULT_DB_THREADS) for layer in args.layers]
    plans.insert(1, (args.layers[0], 0))  # the thread-pool comparison, right after the chosen layer's run
    for layer, threads in plans:
        with workers(tmp, redis_child, phase="timed", layer=layer, threads=threads) as children:
            if not conversations:
                started = time.perf_counter()
                conversations = create_conversations(children[0].port, private_pem, args.conversations)
                setup_s = time.perf_counter() - started
            print(f"workers up: layer={layer} threads={threads}", flush=True)
            peers = await open_pairs(app_urls(conversations, [c.port for c in children]), tracker)
            cpu = CpuMeter([*children, redis_child])
            common = {"server": "daphne", "layer": layer, "threads": str(threads), "duration": args.duration}
            try:
                result = await run_throughput(peers, tracker, cpu, run=f"a-{layer}-{threads}", **common)
                throughput.append(result)
                print(f"  {result.key}: {result.rate:,.0f} msg/s", flush=True)
                if threads == DEFAULT_DB_THREADS:
                    result = await run_open_loop(
                        peers, tracker, cpu, run=f"b-{layer}-{threads}", rate=OFFERED_RATE, **common
                    )
                    latency.append(result)
                    print(f"  {result.key}: p99 {percentile(result.latencies_ms or [math.nan], 99):.1f} ms", flush=True)
            finally:
                await close_peers(peers, tracker)
    for result in (*throughput, *latency):
        result.in_db = await asyncio.to_thread(count_in_db, tmp, result.key)

    with relay_server(tmp) as relay:
        print("relay up", flush=True)
        peers = await open_pairs(relay_urls(conversations, relay.port), tracker)
        try:
            result = await run_throughput(
                peers,
                tracker,
                CpuMeter([relay]),
                run="a-relay",
                server="relay",
                layer="—",
                threads="—",
                duration=args.duration,
            )
            throughput.append(result)
            print(f"  {result.key}: {result.rate:,.0f} msg/s", flush=True)
        finally:
            await close_peers(peers, tracker)
    return conversations, throughput, latency, setup_s


async def bench(tmp: Path, private_pem: bytes, args: argparse.Namespace, before: tuple[Path, str] | None) -> str:
    redis_child = start_redis(tmp)
    os.environ["REDIS_URL"] = f"redis://{HOST}:{redis_child.port}/0"
    throughput: list[RunResult] = []
    latency: list[RunResult] = []
    setup_s = 0.0
    idle: IdleRun | None = None
    floor: FloorComparison | None = None
    slow: SlowComparison | None = None
    try:
        if args.only is None:
            conversations, throughput, latency, setup_s = await timed_runs(tmp, redis_child, private_pem, args)
            if not args.skip_idle:
                layer = args.layers[0]
                with workers(tmp, redis_child, phase="idle", layer=layer, threads=DEFAULT_DB_THREADS) as children:
                    print(f"idle run: {args.idle_sockets:,} sockets per worker", flush=True)
                    idle = await run_idle(conversations, children, args.idle_sockets, redis_child.port)
        if not args.skip_floor and args.only in (None, "floor"):
            floor = await floor_comparison(tmp, redis_child, private_pem, args, before)
        if not args.skip_slow and args.only in (None, "slow"):
            slow = await slow_readers(tmp, redis_child, private_pem, args)
    finally:
        stop(redis_child)
        if args.keep_logs:
            args.keep_logs.mkdir(parents=True, exist_ok=True)
            for path in tmp.glob("*.log"):
                shutil.copy(path, args.keep_logs / path.name)
    return report(
        args=args,
        throughput=throughput,
        latency=latency,
        idle=idle,
        floor=floor,
        slow=slow,
        log_paths=sorted(tmp.glob("*.log")),
        setup_s=setup_s,
    )


def main(argv: list[str] | None = None) -> int:
    global CODE_VERSION
    args = parse_args(argv)
    CODE_VERSION = code_version()  # at start: the workers import the code as it is now
    run_started = time.perf_counter()
    full = args.only is None
    needed = (0 if args.skip_idle or not full else 2 * args.idle_sockets) + 4 * args.conversations + FD_RESERVE
    limit = raise_fd_limit(needed)
    if limit < needed:
        print(f"RLIMIT_NOFILE is {limit}, {needed} needed: lower --idle-sockets", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="chat-ws-bench-") as tmp_name:
        tmp = Path(tmp_name)
        before: tuple[Path, str] | None = None
        if args.compare_ref and not args.skip_floor:
            try:
                source = tmp / "before-src"
                before = (source, extract_ref(args.compare_ref, source))
            except (ValueError, RuntimeError, subprocess.SubprocessError) as exc:
                print(f"--compare-ref: {exc}", file=sys.stderr)
                return 2
        private_pem = prepare_environment(tmp, args.database_url)
        if full:
            migrate()  # (c) and (d) migrate a fresh database per project run themselves
        text_report = asyncio.run(bench(tmp, private_pem, args, before))

    text_report += f"\nTotal run time: {time.perf_counter() - run_started:.1f} s\n"
    print(text_report)
    results = args.output.resolve()
    results.parent.mkdir(parents=True, exist_ok=True)
    results.write_text(text_report)
    print(f"written to {os.path.relpath(results, REPO_ROOT) if results.is_relative_to(REPO_ROOT) else results}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
