"""Webhook benchmark: what one endpoint subscribed to message.created adds to storing a message, how
fast deliveries go out, and what offline notifications add to a staff reply.

What is measured (in one process, SQLite, the embedded job runner, a real local HTTP receiver answering
204 on 127.0.0.1):

* **Added cost per message.** `messages_send` of 1,000 messages in batches of 10 (as the WebSocket
  batcher stores them), with no endpoint and with one endpoint subscribed to message.created, runs
  interleaved, CPU time of this process per message. With the endpoint, each message also records a
  delivery job in its transaction; the deliveries themselves are held back (the runner is not told), so
  the figure is the send path's own added cost.
* **Delivery throughput.** The 1,000 recorded deliveries are then handed to the embedded runner (its 4
  threads) at once: deliveries per second until the receiver has them all, and CPU time per delivery.
  One conversation per 10 messages, so per-conversation ordering applies as in production.
* **Notification checks per reply.** The same 1,000 messages as staff replies to donors who are away,
  without and with the offline-notification check each records (notifications.services.replies_recorded,
  replaced by a no-op for the first run).

Run from the repository root: `.venv/bin/python bench/webhook_bench.py [--messages N] [--repeat R]`;
the report is printed and written to `bench/results/webhook_bench.md`.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from benchlib import machine_lines, prepare_environment  # noqa: E402

RESULTS_FILE = REPO_ROOT / "bench" / "results" / "webhook_bench.md"
DEFAULT_MESSAGES = 1_000  # per run: enough that per-message figures settle
BATCH = 10  # messages per messages_send call, like a busy worker's group commit
PER_CONVERSATION = 10  # messages per conversation: deliveries are ordered per conversation
DEFAULT_REPEAT = 3
DELIVERY_TIMEOUT_S = 300.0


class Receiver:
    def __init__(self) -> None:
        self.count = 0
        self.lock = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers["content-length"]))
                self.send_response(204)
                self.send_header("content-length", "0")
                self.end_headers()
                with receiver.lock:
                    receiver.count += 1
                    receiver.lock.notify_all()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def wait_for(self, count: int) -> None:
        deadline = time.monotonic() + DELIVERY_TIMEOUT_S
        with self.lock:
            while self.count < count:
                if not self.lock.wait(timeout=max(0.0, deadline - time.monotonic())):
                    raise RuntimeError(f"only {self.count} of {count} deliveries arrived")


def store(messages: int, *, staff: bool = False) -> float:
    """CPU seconds of this process to store `messages` messages through messages_send: a donor's, or
    (`staff`) replies of an agent to donors who are away."""
    from chatservice.authentication import Principal
    from conversations import services as conversation_services
    from messaging.services import SendRequest, Sent, messages_send

    donor = Principal(user_id="donor-bench", role="USER")
    agent = Principal(user_id="agent-bench", role="ADMIN")

    conversations = [
        conversation_services.conversation_create(creator=donor, subject=f"bench {n}")
        for n in range(messages // PER_CONVERSATION)
    ]
    started = time.process_time()
    for start in range(0, messages, BATCH):
        requests = [
            SendRequest(
                conversation_id=conversations[(start + i) // PER_CONVERSATION].pk,
                sender=agent if staff else donor,
                content=f"message {start + i}",
            )
            for i in range(BATCH)
        ]
        refused = [result for result in messages_send(requests) if not isinstance(result, Sent)]
        if refused:
            raise RuntimeError(f"a message was not stored: {refused[0]}")
    return time.process_time() - started


def _compared(without: float, with_: float, *, bold: bool = False) -> str:
    """The table cells without | with | added | ratio, for a cost measured without and with something."""
    cells = [f"{without:,.0f}", f"{with_:,.0f}", f"{with_ - without:,.0f}", f"{with_ / without:.2f}"]
    return " | ".join(f"**{cell}**" if bold else cell for cell in cells)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=DEFAULT_MESSAGES)
    parser.add_argument("--repeat", type=int, default=DEFAULT_REPEAT)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="webhook-bench-") as tmp:
        prepare_environment(
            f"sqlite:///{Path(tmp) / 'bench.sqlite3'}",
            {"CHAT_WEBHOOK_ALLOW_PRIVATE": "true", "CHAT_AUTO_ASSIGN": "off", "LOG_LEVEL": "warning"},
        )
        import django

        django.setup()
        from django.core.management import call_command

        call_command("migrate", verbosity=0)
        from jobs import runner
        from jobs.models import Job, JobStatus
        from jobs.selectors import jobs_due
        from notifications import services as notifications
        from notifications.services import CHECK_KIND
        from webhooks.models import WebhookEndpoint
        from webhooks.selectors import forget_endpoints
        from webhooks.services import DELIVER_KIND, endpoint_create

        replies_recorded = notifications.replies_recorded

        receiver = Receiver()
        runner.embedded().start_scheduler()  # the sweep runs, as in production
        rows: list[dict[str, float]] = []
        dispatch = runner.dispatch
        for _ in range(args.repeat):
            # Without an endpoint, then with one; deliveries held back while storing.
            runner.dispatch = lambda job_id: None  # type: ignore[assignment]
            WebhookEndpoint.objects.all().delete()
            forget_endpoints()
            without = store(args.messages)
            endpoint_create(url=receiver.url, events=["message.created"])
            with_endpoint = store(args.messages)
            recorded = Job.objects.filter(kind=DELIVER_KIND, status=JobStatus.PENDING).count()
            runner.dispatch = dispatch
            before, cpu_before, started = receiver.count, time.process_time(), time.perf_counter()
            for job_id in jobs_due(limit=recorded):
                runner.dispatch(job_id)
            receiver.wait_for(before + recorded)
            elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu_before
            runner.stop_embedded()
            # Staff replies to away donors: without, then with their notification checks (one pending per
            # conversation: its first reply records it, the others find it). No endpoint, checks held back.
            WebhookEndpoint.objects.all().delete()
            forget_endpoints()
            runner.dispatch = lambda job_id: None  # type: ignore[assignment]
            notifications.replies_recorded = lambda donors: list(donors)  # type: ignore[assignment]
            replies_without = store(args.messages, staff=True)
            notifications.replies_recorded = replies_recorded
            replies_with = store(args.messages, staff=True)
            runner.dispatch = dispatch
            Job.objects.filter(kind=CHECK_KIND).delete()
            runner.embedded().start_scheduler()
            rows.append(
                {
                    "without_us": without / args.messages * 1e6,
                    "with_us": with_endpoint / args.messages * 1e6,
                    "recorded": recorded,
                    "deliveries_per_s": recorded / elapsed,
                    "delivery_cpu_us": cpu / recorded * 1e6,
                    "replies_without_us": replies_without / args.messages * 1e6,
                    "replies_with_us": replies_with / args.messages * 1e6,
                }
            )
            print(rows[-1], flush=True)
        runner.stop_embedded()
        receiver.server.shutdown()

    def median(key: str) -> float:
        return statistics.median(row[key] for row in rows)

    lines = [
        "# Webhook benchmark",
        "",
        *machine_lines(),
        f"- {args.messages} messages per run ({BATCH} per messages_send, {PER_CONVERSATION} per conversation), "
        f"{args.repeat} runs, medians; SQLite, embedded runner (4 threads), a local receiver answering 204.",
        "",
        "| Run | Store CPU µs/msg, no endpoint | with 1 endpoint (message.created) | added | ratio | "
        "Deliveries | Deliveries/s | CPU µs/delivery |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for n, row in enumerate(rows, 1):
        lines.append(
            f"| {n} | {_compared(row['without_us'], row['with_us'])} | {row['recorded']:,.0f} | "
            f"{row['deliveries_per_s']:,.0f} | {row['delivery_cpu_us']:,.0f} |"
        )
    lines += [
        f"| **median** | {_compared(median('without_us'), median('with_us'), bold=True)} | | "
        f"**{median('deliveries_per_s'):,.0f}** | **{median('delivery_cpu_us'):,.0f}** |",
        "",
        "Offline notifications: staff replies to donors who are away, without and with their notification",
        "checks recorded (one pending check per conversation; the checks themselves held back).",
        "",
        "| Run | Reply CPU µs/msg, no checks | with checks | added | ratio |",
        "|---:|---:|---:|---:|---:|",
    ]
    for n, row in enumerate(rows, 1):
        lines.append(f"| {n} | {_compared(row['replies_without_us'], row['replies_with_us'])} |")
    lines += [
        f"| **median** | {_compared(median('replies_without_us'), median('replies_with_us'), bold=True)} |",
        "",
    ]
    report = "\n".join(lines)
    print(report)
    RESULTS_FILE.write_text(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
