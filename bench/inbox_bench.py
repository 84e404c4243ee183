"""Inbox fan-out benchmark: what 50 staff inbox sockets (`/ws/inbox`) cost while conversations are busy.

What is measured
----------------
One real Daphne worker (embedded defaults: SQLite WAL, in-memory channel layer; DEBUG off), D donors
each with a conversation socket, sending M messages each at a steady pace, for two settings in the same
run, interleaved: K = 0 staff inbox sockets (the reference: the conversations alone) and K = 50. Every
inbox socket must receive one `inbox_message` per message (checked: a lost or extra frame fails the run).

* ``server CPU ms / message``: CPU seconds (user + system, /proc/<pid>/stat) the worker used during the
  window, per message sent. The steadiest figure on a shared machine.
* ``extra CPU µs / inbox frame``: (CPU with K sockets - CPU with 0) / (messages x K): what one inbox
  frame delivered to one socket costs the worker.
* ``inbox latency``: from the message's `createdAt` to the frame's arrival at an inbox socket (p50, p99).

Run from the repository root: ``.venv/bin/python bench/inbox_bench.py [--donors D] [--messages M]
[--inboxes K] [--repeat R]``; the report is printed and written to ``bench/results/inbox_bench.md``.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from benchlib import HOST, free_port, machine_lines, mint, percentile, prepare_environment, stop_process
from websockets.asyncio.client import connect

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

RESULTS_FILE = REPO_ROOT / "bench" / "results" / "inbox_bench.md"
DAPHNE = REPO_ROOT / ".venv" / "bin" / "daphne"
CLK_TCK = os.sysconf("SC_CLK_TCK")
DEFAULT_DONORS = 20  # busy conversations at once
DEFAULT_MESSAGES = 20  # per donor per run
DEFAULT_INBOXES = 50  # staff inbox sockets (the figure)
DEFAULT_REPEAT = 3
# Per donor: 2 messages/s each, 40/s in all with 20 donors: a very busy desk (each is 2,000 inbox frames/s
# to 50 staff sockets). At 400 messages/s (20,000 frames/s) one worker fell behind and its in-memory
# layer dropped inbox events: see README, "The inbox socket".
SEND_INTERVAL_S = 0.5
DRAIN_TIMEOUT_S = 30.0  # after the last send: every frame must have arrived by then
HEALTH_TIMEOUT_S = 30.0
# Far above the offered load: the benchmark measures delivery, not the rate limits.
UNLIMITED = {
    name: "10000"
    for name in (
        "CHAT_WS_MESSAGE_RATE",
        "CHAT_WS_MESSAGE_BURST",
        "CHAT_WS_USER_RATE",
        "CHAT_WS_USER_BURST",
    )
}
CONTENT = "Hi, my monthly donation was charged twice this month, could you check it please?"


def cpu_seconds(pid: int) -> float:
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def start_server(port: int, log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            [str(DAPHNE), "-b", HOST, "-p", str(port), "chatservice.asgi:application"],
            cwd=REPO_ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def wait_healthy(base_url: str) -> None:
    deadline = time.monotonic() + HEALTH_TIMEOUT_S
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{base_url}/health", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError("daphne did not become healthy")


async def run_once(
    base_url: str, ws_url: str, pid: int, pem: bytes, donors: int, messages: int, inboxes: int, run: int
) -> dict[str, float]:
    async with httpx.AsyncClient(base_url=base_url, timeout=10) as client:
        conversations = []
        for d in range(donors):
            token = mint(pem, f"donor-{run}-{d}", "USER")
            created = await client.post(
                "/api/conversations", json={"subject": f"busy {d}"}, headers={"Authorization": f"Bearer {token}"}
            )
            conversations.append((created.json()["conversationId"], token))
    staff = [
        await connect(f"{ws_url}/ws/inbox?token={mint(pem, f'agent-{i}', 'ADMIN')}", max_size=None)
        for i in range(inboxes)
    ]
    donor_sockets = [await connect(f"{ws_url}/ws/conversations/{cid}?token={token}") for cid, token in conversations]
    received = [0] * inboxes
    latencies: list[float] = []
    expected = donors * messages

    async def listen(index: int, ws) -> None:
        async for raw in ws:
            frame = json.loads(raw)
            if frame["type"] == "inbox_message":
                received[index] += 1
                if index == 0:
                    sent = dt.datetime.fromisoformat(frame["createdAt"].replace("Z", "+00:00")).timestamp()
                    latencies.append((time.time() - sent) * 1000)

    async def drain_donor(ws) -> None:
        async for _ in ws:
            pass

    listeners = [asyncio.create_task(listen(i, ws)) for i, ws in enumerate(staff)]
    drains = [asyncio.create_task(drain_donor(ws)) for ws in donor_sockets]
    await asyncio.sleep(0.5)  # conversation_created events of this run's setup are not measured
    for i in range(len(received)):
        received[i] = 0
    latencies.clear()

    cpu_before = cpu_seconds(pid)
    started = time.perf_counter()

    async def sender(ws) -> None:
        for n in range(messages):
            await ws.send(json.dumps({"type": "message", "content": CONTENT, "clientMessageId": f"m{n}"}))
            await asyncio.sleep(SEND_INTERVAL_S)

    await asyncio.gather(*(sender(ws) for ws in donor_sockets))
    deadline = time.monotonic() + DRAIN_TIMEOUT_S
    while any(count < expected for count in received) and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    # Server CPU until its work is done: after every frame arrived (or the deadline).
    elapsed = time.perf_counter() - started
    cpu = cpu_seconds(pid) - cpu_before
    for task in listeners + drains:
        task.cancel()
    for ws in staff + donor_sockets:
        await ws.close()
    if any(count != expected for count in received):
        raise AssertionError(f"inbox frames per socket {sorted(set(received))}, expected {expected}")
    return {
        "cpu_ms_per_msg": cpu * 1000 / expected,
        "cpu_s": cpu,
        "elapsed_s": elapsed,
        "p50_ms": percentile(latencies, 50) if latencies else 0.0,
        "p99_ms": percentile(latencies, 99) if latencies else 0.0,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--donors", type=int, default=DEFAULT_DONORS)
    parser.add_argument("--messages", type=int, default=DEFAULT_MESSAGES)
    parser.add_argument("--inboxes", type=int, default=DEFAULT_INBOXES)
    parser.add_argument("--repeat", type=int, default=DEFAULT_REPEAT)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="inbox-bench-") as tmp_name:
        tmp = Path(tmp_name)
        pem = prepare_environment(f"sqlite:///{tmp / 'bench.sqlite3'}", {**UNLIMITED, "CHAT_AUTO_ASSIGN": "off"})
        subprocess.run(
            [sys.executable, "manage.py", "migrate", "--noinput"], cwd=REPO_ROOT, check=True, stdout=subprocess.DEVNULL
        )
        port = free_port()
        base_url, ws_url = f"http://{HOST}:{port}", f"ws://{HOST}:{port}"
        server = start_server(port, tmp / "daphne.log")
        results: dict[int, list[dict[str, float]]] = {0: [], args.inboxes: []}
        try:
            wait_healthy(base_url)
            run = 0
            for _ in range(args.repeat):
                for k in (0, args.inboxes):  # interleaved: noise hits both settings alike
                    run += 1
                    results[k].append(
                        asyncio.run(run_once(base_url, ws_url, server.pid, pem, args.donors, args.messages, k, run))
                    )
                    print(f"K={k}: {results[k][-1]}", flush=True)
        finally:
            stop_process(server)

    def med(k: int, key: str) -> float:
        return statistics.median(r[key] for r in results[k])

    k = args.inboxes
    total = args.donors * args.messages
    extra_us = (med(k, "cpu_s") - med(0, "cpu_s")) * 1e6 / (total * k)
    lines = [
        "# Inbox fan-out benchmark",
        "",
        *machine_lines(),
        f"- Load: {args.donors} donors sending {args.messages} messages each "
        f"({1 / SEND_INTERVAL_S:.0f}/s each) over their conversation sockets; one Daphne worker (SQLite, "
        f"in-memory layer, DEBUG off); {args.repeat} runs per setting, interleaved; medians.",
        "",
        "| Staff inbox sockets | Messages | Inbox frames delivered | Server CPU ms / message | "
        "Inbox latency p50 ms | p99 ms |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for setting in (0, k):
        lines.append(
            f"| {setting} | {total} | {total * setting} | {med(setting, 'cpu_ms_per_msg'):.3f} | "
            f"{med(setting, 'p50_ms'):.1f} | {med(setting, 'p99_ms'):.1f} |"
            if setting
            else f"| 0 (reference) | {total} | 0 | {med(0, 'cpu_ms_per_msg'):.3f} | — | — |"
        )
    lines += [
        "",
        f"- Ratio of server CPU per message, {k} inbox sockets / none: "
        f"{med(k, 'cpu_ms_per_msg') / med(0, 'cpu_ms_per_msg'):.2f}x",
        f"- Extra server CPU per inbox frame delivered: {extra_us:.1f} µs",
    ]
    report = "\n".join(lines) + "\n"
    print(report)
    RESULTS_FILE.parent.mkdir(parents=True, exist_ok=True)
    RESULTS_FILE.write_text(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
