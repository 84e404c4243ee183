"""WebSocket benchmark: persisted-and-delivered messages across two Daphne workers, against a bare relay.

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
* Correctness in every run: after the window, a bounded drain (longer than the app's gap sweep, which
  re-delivers events the channel layer lost) waits for every acknowledged message to arrive. LOST =
  acknowledged but never received; DUPLICATED = received more than once; the ``In DB`` column counts the
  run's rows in the database independently of the protocol.

Why the baseline exists
-----------------------
A number like "1,200 msg/s" mixes the app's cost with the cost of Python WebSocket framing, JSON and the
benchmark client on a 2-core machine. ``bench/relay.py`` does only that part (a ``websockets`` broadcast
relay: no auth, no database, no Redis, one process), driven by the same client code and scenario (a);
the ratio ours/relay says how much of the machine's attainable rate the app keeps. CPU per process
(workers, Redis, relay, client) is reported for every run to show where the time goes; 100 % = one core.

Idle sockets
------------
K idle donor sockets per worker; each worker's RSS (``/proc/<pid>/status`` VmRSS) is read before they
open (after a warm-up that opens and closes a few, so one-time imports and pools are not counted) and
after all are open and answered a ping; (after - before) / K is the memory one connected user costs.

Run from the repository root: ``.venv/bin/python bench/ws_bench.py [--conversations N] [--duration S]
[--idle-sockets K | --skip-idle] [--layers pubsub,core]``; the report is printed and written to
``bench/results/ws_bench.md``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.metadata
import json
import math
import os
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter, deque
from collections.abc import Iterator, Sequence
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

RESULTS_FILE = REPO_ROOT / "bench" / "results" / "ws_bench.md"
DAPHNE = REPO_ROOT / ".venv" / "bin" / "daphne"
RELAY = REPO_ROOT / "bench" / "relay.py"
REDIS_SERVER = "/usr/bin/redis-server"

DEFAULT_CONVERSATIONS = 50  # 100 sockets in the timed runs: many conversations, none of them hot
DEFAULT_DURATION_S = 15.0  # per timed run: long enough for several gap sweeps and a stable rate
DEFAULT_IDLE_SOCKETS = 5_000  # per worker: a worker's share of a busy support desk's open tabs
DEFAULT_LAYERS = ("pubsub", "core")  # the first is "the chosen layer" (idle run, thread comparison)
OFFERED_RATE = 300.0  # msg/s for scenario (b): a busy desk, well below saturation, so latency is pure
WINDOW = 4  # unacknowledged messages per socket in (a): pipelining like a fast typist, bounded queues
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
CAPACITY_SHARE = 0.95  # (b) delivering less than this share of the offered rate means the server is saturated


# ------------------------------------------------------------------------------------------ processes


@dataclass
class Child:
    """A child process of the benchmark (Redis, a Daphne worker, the relay) and its log file."""

    name: str
    process: subprocess.Popen[bytes]
    port: int
    log_path: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    def log_tail(self, chars: int = 3000) -> str:
        return self.log_path.read_text(errors="replace")[-chars:]


def spawn(name: str, argv: list[str], port: int, log_path: Path, env: dict[str, str]) -> Child:
    # The child keeps its own copy of the descriptor; ours can close as soon as it has started.
    with open(log_path, "wb") as log:
        process = subprocess.Popen(argv, cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
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
def workers(tmp: Path, redis_child: Child, *, phase: str, layer: str, threads: int) -> Iterator[list[Child]]:
    """Two Daphne workers on one database and one Redis (flushed first: no stale groups or presence);
    `phase` names their log files."""
    redis.Redis(host=HOST, port=redis_child.port).flushdb()
    env = {**os.environ, "CHAT_CHANNEL_LAYER": layer, "CHAT_WS_DB_THREADS": str(threads)}
    children: list[Child] = []
    try:
        for name in ("A", "B"):
            port = free_port()
            log_path = tmp / f"daphne-{phase}-{layer}-{threads}-{name}.log"
            argv = [str(DAPHNE), "-b", HOST, "-p", str(port), "chatservice.asgi:application"]
            children.append(spawn(f"worker {name}", argv, port, log_path, env))
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
    """CPU used by each child and by this client process between start() and stop(), as % of one core."""

    def __init__(self, children: Sequence[Child]) -> None:
        self.children = list(children)
        self.started = 0.0
        self.before: dict[str, float] = {}
        self.percent: dict[str, float] = {}

    def _now(self) -> dict[str, float]:
        values = {child.name: cpu_seconds(child.pid) for child in self.children}
        values["client"] = time.process_time()
        return values

    def start(self) -> None:
        self.before, self.started = self._now(), time.perf_counter()

    def stop(self) -> None:
        after, wall = self._now(), time.perf_counter() - self.started
        self.percent = {name: 100 * (after[name] - self.before[name]) / wall for name in after}


# ---------------------------------------------------------------------------------------------- setup


def prepare_environment(tmp: Path, database_url: str | None) -> bytes:
    """The service's environment with every rate limit raised (benchlib.prepare_environment); returns the
    private key PEM. REDIS_URL is added once Redis has a port."""
    return benchlib.prepare_environment(
        database_url or f"sqlite:///{tmp / 'bench.sqlite3'}", dict.fromkeys(RATE_LIMIT_VARS, RATE_LIMIT)
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
            if record.windowed and peer.window is not None:
                peer.window.release()
        elif kind == "error":
            # The consumer handles one socket's frames strictly in order: an error answers the oldest send.
            self.note(f"error frame: {frame.get('code')}")
            if peer.pending:
                record = self.by_id[peer.pending.popleft()]
                record.failed = str(frame.get("code"))
                if record.windowed and peer.window is not None:
                    peer.window.release()
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
    schedule_lag_max_ms: float | None = None
    in_db: int | None = None

    @property
    def rate(self) -> float:
        return self.in_window / self.duration_s if self.duration_s > 0 else 0.0

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
    )


def frame_for(cmid: str) -> str:
    return json.dumps({"type": "message", "content": CONTENT, "clientMessageId": cmid}, separators=(",", ":"))


async def send_one(peer: Peer, tracker: Tracker, cmid: str, *, windowed: bool) -> None:
    frame = frame_for(cmid)
    tracker.add(cmid, Record(peer.index, peer.partner, time.perf_counter(), windowed))
    peer.pending.append(cmid)
    try:
        await peer.ws.send(frame)
    except ConnectionClosed:
        peer.pending.remove(cmid)
        tracker.by_id[cmid].failed = "socket closed"
        tracker.note("send on closed socket")


async def pump(peer: Peer, tracker: Tracker, run: str, deadline: float) -> None:
    """Scenario (a) for one socket: send whenever fewer than WINDOW messages are unacknowledged."""
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
        await send_one(peer, tracker, f"{run}-{peer.index}-{n}", windowed=True)


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
) -> RunResult:
    tracker.begin(run)
    for peer in peers:
        peer.window = asyncio.Semaphore(WINDOW)
    lag = LagProbe()
    lag.start(duration)
    cpu.start()
    started = time.perf_counter()
    deadline = started + duration
    await asyncio.gather(*(pump(peer, tracker, run, deadline) for peer in peers))
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
        scenario="a",
        offered=f"max ({WINDOW} in flight/socket)",
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


def app_urls(conversations: Sequence[Conversation], ports: Sequence[int]) -> list[tuple[str, str, str]]:
    """(url, worker name, role) per socket: donor then agent per conversation, on opposite workers;
    even conversations put the donor on worker A, odd ones on worker B."""
    urls = []
    for i, conv in enumerate(conversations):
        donor_worker, agent_worker = (0, 1) if i % 2 == 0 else (1, 0)
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


def results_table(results: Sequence[RunResult]) -> list[str]:
    lines = [
        "| Run | Server | Layer | DB threads | Offered | s | Sent | Acked | Delivered | In DB | Delivered msg/s "
        "| p50 ms | p95 ms | p99 ms | max ms | Errors | LOST | DUP | CPU % (100 = 1 core) | Client lag p99 ms |",
        "|---|---|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|",
    ]
    for r in results:
        t = r.latencies_ms or [math.nan]
        lines.append(
            f"| {r.key} | {r.server} | {r.layer} | {r.threads} | {r.offered} | {r.duration_s:.1f} | {r.sent:,} "
            f"| {r.acked:,} | {r.delivered:,} | {'—' if r.in_db is None else f'{r.in_db:,}'} | {r.rate:,.0f} "
            f"| {percentile(t, 50):.1f} | {percentile(t, 95):.1f} | {percentile(t, 99):.1f} | {max(t):.1f} "
            f"| {r.error_count} | {r.lost} | {r.duplicated} | {cpu_text(r.cpu)} | {r.client_lag_p99_ms:.1f} |"
        )
    return lines


def traceback_origins(text: list[str]) -> Counter[str]:
    """Group a log's tracebacks by their innermost frame in the project's own code (not .venv) and the
    exception they end with, e.g. `realtime/presence.py:75 in join: MaxConnectionsError: ...`. A chain
    ("During handling of the above exception...") counts once, as its last exception."""
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
        elif inside and stripped.startswith('File "') and str(REPO_ROOT) in stripped and "/.venv/" not in stripped:
            path, _, rest = stripped[len('File "') :].partition('", line ')
            number, _, function = rest.partition(", in ")
            frame = f"{Path(path).relative_to(REPO_ROOT)}:{number} in {function}"
        elif inside and line and not line[0].isspace():
            last = f"{frame}: {stripped.split(' from ')[0][:120]}"
            origins[last] += 1
            inside = False
    return origins


def log_findings(log_paths: Sequence[Path]) -> list[str]:
    """Per child log: tracebacks grouped by origin, and the distinct warning/error lines outside them."""
    lines = []
    for path in log_paths:
        if not path.exists():
            continue
        text = path.read_text(errors="replace").splitlines()
        origins = traceback_origins(text)
        flagged = [line.strip() for line in text if " WARNING " in line or " ERROR " in line or "# WARNING" in line]
        if not origins and not flagged:
            continue
        lines.append(f"- `{path.name}`: {sum(origins.values())} tracebacks, {len(flagged)} WARNING/ERROR lines")
        lines += [f"  - {count}x `{origin}`" for origin, count in origins.most_common(MAX_LOG_EXCERPTS)]
        messages = Counter(line.split(" ", 2)[-1][:160] for line in flagged)  # without the timestamp
        lines += [f"  - {count}x `{message}`" for message, count in messages.most_common(MAX_LOG_EXCERPTS)]
    return lines or ["- No tracebacks, warnings or errors in any worker, Redis or relay log."]


def report(
    *,
    args: argparse.Namespace,
    throughput: list[RunResult],
    latency: list[RunResult],
    idle: IdleRun | None,
    log_paths: Sequence[Path],
    setup_s: float,
) -> str:
    chosen = args.layers[0]
    n = args.conversations
    lines = [
        "# WebSocket benchmark",
        "",
        *machine_lines(),
        f"- Topology: redis-server + 2 Daphne workers (A, B) on {HOST}, one "
        f"{'PostgreSQL' if args.database_url else 'SQLite (WAL)'} database, DEBUG off, "
        f"rate limits raised to {RATE_LIMIT}/s; {n} conversations created over REST ({setup_s:.1f} s), each "
        f"with a donor socket and an agent socket on opposite workers ({2 * n} sockets), so every message "
        "crosses workers through Redis. One asyncio client process (websockets) drives and timestamps "
        "every socket.",
        f"- Latency = receive time at the other party - send time at the sender (same clock), matched by "
        f"clientMessageId. Delivered msg/s counts messages received within the {args.duration:.0f} s window. "
        f"After each window a drain of up to {DRAIN_TIMEOUT_S:.0f} s (the gap sweep runs every "
        f"{GAP_SWEEP_S} s) waits for stragglers, then {DUPLICATE_GRACE_S:.0f} s more for duplicates: LOST = "
        "acknowledged (`message_sent`) but never received; DUP = received more than once; In DB = the "
        "run's rows in SQLite. Errors = error frames + sends never answered + protocol anomalies.",
        "- CPU % is per process over the send window (100 = one core of 2); client lag p99 is how late the "
        f"client's own event loop wakes from a {LAG_TICK_S * 1000:.0f} ms sleep (its share of any latency).",
        "",
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

    problems = [(r.key, r.problems) for r in (*throughput, *latency) if r.problems]
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
    for r in (*throughput, *latency):
        verdict = "PASS" if r.lost == 0 and r.duplicated == 0 and r.sent > 0 else "FAIL"
        lines.append(f"- 0 lost, 0 duplicated ({r.key}): {verdict} (lost {r.lost}, duplicated {r.duplicated})")
    lines += ["", "## Server logs", "", *log_findings(log_paths)]
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


async def bench(tmp: Path, private_pem: bytes, args: argparse.Namespace) -> str:
    redis_child = start_redis(tmp)
    os.environ["REDIS_URL"] = f"redis://{HOST}:{redis_child.port}/0"
    idle: IdleRun | None = None
    try:
        conversations, throughput, latency, setup_s = await timed_runs(tmp, redis_child, private_pem, args)
        if not args.skip_idle:
            layer = args.layers[0]
            with workers(tmp, redis_child, phase="idle", layer=layer, threads=DEFAULT_DB_THREADS) as children:
                print(f"idle run: {args.idle_sockets:,} sockets per worker", flush=True)
                idle = await run_idle(conversations, children, args.idle_sockets, redis_child.port)
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
        log_paths=sorted(tmp.glob("*.log")),
        setup_s=setup_s,
    )


def main(argv: list[str] | None = None) -> int:
    global CODE_VERSION
    args = parse_args(argv)
    CODE_VERSION = code_version()  # at start: the workers import the code as it is now
    run_started = time.perf_counter()
    needed = (0 if args.skip_idle else 2 * args.idle_sockets) + 4 * args.conversations + FD_RESERVE
    limit = raise_fd_limit(needed)
    if limit < needed:
        print(f"RLIMIT_NOFILE is {limit}, {needed} needed: lower --idle-sockets", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="chat-ws-bench-") as tmp_name:
        tmp = Path(tmp_name)
        private_pem = prepare_environment(tmp, args.database_url)
        migrate()
        text_report = asyncio.run(bench(tmp, private_pem, args))

    text_report += f"\nTotal run time: {time.perf_counter() - run_started:.1f} s\n"
    print(text_report)
    # One results file per database kind, so a PostgreSQL run does not replace the default (SQLite) one.
    results = RESULTS_FILE if not args.database_url else RESULTS_FILE.with_name("ws_bench_postgres.md")
    results.parent.mkdir(parents=True, exist_ok=True)
    results.write_text(text_report)
    print(f"written to {results.relative_to(REPO_ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
