"""The consumers' Lambda image (`docker build --target lambda`), invoked for real.

Lambda talks to the runtime interface client in the image (awslambdaric) over the Lambda Runtime
API, plain HTTP. A minimal stand-in of that API on the host hands the image one Kinesis event
that carries one TrackingEvent and takes the handler's answer. The container runs on the compose
stack's network with the stack's settings, so the handler stores the event in the stack's
DynamoDB, where the compose check then finds it like any other.
"""

from __future__ import annotations

import base64
import json
import queue
import threading
import time
import uuid
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from compose_stack import CheckError, run, run_ok, say
from compose_traffic import MARKER_PARAM, Sent

from tracker.schema.tracking.v1 import tracking_pb2 as pb

LAMBDA_IMAGE = "adtracker-lambda:local"
RUNTIME = "/2018-06-01/runtime"
REQUEST_ID = "compose-check-invocation"
# A shard of its own: the record is made up, not on the stream the workers read, and rollup
# items keep a position per shard (docs/reporting.md), which a made-up sequence number on a real
# shard's id would contradict.
SHARD = "shardId-lambda-check"
SEQUENCE = "49000000000000000000000000000000000000000000000000000001"
FUNCTION_ARN = "arn:aws:lambda:us-east-1:000000000000:function:events"
ANSWER_SECONDS = 90  # start-up, opening the clients and one write, on a busy 2-core machine


def build_lambda_image(timeout: float) -> None:
    run_ok(["docker", "build", "--target", "lambda", "-t", LAMBDA_IMAGE, "."], timeout)
    # The handler's module and the runtime client import side by side, as Lambda will do it; and
    # the trimmed botocore still has every model the consumers use (redrive reads SQS, the event
    # lake's catalog is Glue).
    probe = (
        "import awslambdaric, botocore.session, consumers.lambda_handlers as h;"
        " h.events_handler, h.programs_handler;"
        " s = botocore.session.get_session();"
        " [s.get_service_model(n) for n in ('kinesis', 'dynamodb', 'sqs', 'glue', 'sts')]"
    )
    run_ok(["docker", "run", "--rm", "--entrypoint", "python", LAMBDA_IMAGE, "-c", probe], 120)


@dataclass(frozen=True)
class Invocation:
    network: str  # the compose stack's network
    env_file: str  # the stack's settings (infra/local/containers.env)
    program_id: str
    marker: str


def invoke_events_handler(invocation: Invocation) -> Sent:
    """Run the image's default handler on one event; what it must have stored is returned."""
    gateway = _gateway(invocation.network)
    api = RuntimeApi((gateway, 0), _kinesis_event(invocation))
    threading.Thread(target=api.serve_forever, daemon=True).start()
    container = f"{invocation.network}-lambda"
    try:
        run_ok(_docker_run(invocation, container, f"{gateway}:{api.server_port}"), 60)
        kind, body = api.answers.get(timeout=ANSWER_SECONDS)
    except queue.Empty:
        raise CheckError(f"the Lambda image answered nothing in {ANSWER_SECONDS} s") from None
    finally:
        logs = run(["docker", "logs", container], timeout=30)
        run(["docker", "rm", "-f", "-v", container], timeout=60)  # -v: its anonymous volume
        api.finish()
    if kind != "response" or body != {"batchItemFailures": []}:
        output = (logs.stdout + logs.stderr)[-3000:]
        raise CheckError(f"the Lambda handler answered {kind} {body!r}; its output:\n{output}")
    say(f"the Lambda image's events_handler stored one event: {body}")
    return Sent(invocation.marker, "IMPRESSION")


def _gateway(network: str) -> str:
    """The host's address on the network: where a container reaches the stand-in API."""
    template = "{{(index .IPAM.Config 0).Gateway}}"
    done = run_ok(["docker", "network", "inspect", "-f", template, network], timeout=30)
    return done.stdout.strip()


def _docker_run(invocation: Invocation, container: str, api_address: str) -> list[str]:
    return [
        "docker", "run", "-d", "--name", container,
        "--read-only", "--tmpfs", "/tmp",  # noqa: S108 (as on Lambda: only /tmp is writable)
        "--network", invocation.network, "--env-file", invocation.env_file,
        "-e", f"AWS_LAMBDA_RUNTIME_API={api_address}", "-e", "AWS_LAMBDA_FUNCTION_NAME=events",
        LAMBDA_IMAGE,
    ]  # fmt: skip


def _kinesis_event(invocation: Invocation) -> dict[str, Any]:
    """Lambda's Kinesis event with one record, every field Lambda sends."""
    event = pb.TrackingEvent(
        programid=invocation.program_id,
        message_id=uuid.uuid4().hex,
        event_type=pb.IMPRESSION,
        timestamp_ms=int(time.time() * 1000),
        validation=pb.OK,
        is_valid=True,
        consent=pb.CONSENT_NOT_APPLICABLE,
        params={MARKER_PARAM: invocation.marker},
    )
    stream_arn = "arn:aws:kinesis:us-east-1:000000000000:stream/tracking-events"
    record = {
        "kinesis": {
            "kinesisSchemaVersion": "1.0",
            "partitionKey": event.message_id,
            "sequenceNumber": SEQUENCE,
            "data": base64.b64encode(event.SerializeToString()).decode(),
            "approximateArrivalTimestamp": time.time(),
        },
        "eventSource": "aws:kinesis",
        "eventVersion": "1.0",
        "eventID": f"{SHARD}:{SEQUENCE}",
        "eventName": "aws:kinesis:record",
        "invokeIdentityArn": "arn:aws:iam::000000000000:role/events",
        "awsRegion": "us-east-1",
        "eventSourceARN": stream_arn,
    }
    return {"Records": [record]}


class RuntimeApi(ThreadingHTTPServer):
    """The Lambda Runtime API's invocation routes, for one invocation."""

    daemon_threads = True

    def __init__(self, address: tuple[str, int], event: dict[str, Any]) -> None:
        super().__init__(address, _RuntimeRoutes)
        self.event = json.dumps(event).encode()
        self.answers: queue.Queue[tuple[str, object]] = queue.Queue()
        self.handed_out = threading.Lock()
        self.finished = threading.Event()

    def finish(self) -> None:
        self.finished.set()  # releases a client still waiting for a next invocation
        self.shutdown()
        self.server_close()


class _RuntimeRoutes(BaseHTTPRequestHandler):
    server: RuntimeApi

    def do_GET(self) -> None:
        if self.path != f"{RUNTIME}/invocation/next":
            self._reply(404)
        elif self.server.handed_out.acquire(blocking=False):
            deadline_ms = int(time.time() * 1000) + ANSWER_SECONDS * 1000
            self._reply(200, self.server.event, self._invocation_headers(deadline_ms))
        else:  # the one invocation is handed out: hold the client, as Lambda does between events
            self.server.finished.wait(timeout=ANSWER_SECONDS * 2)
            self._reply(410)

    def do_POST(self) -> None:
        length = min(int(self.headers.get("Content-Length") or 0), 1 << 20)
        body = self.rfile.read(length)
        kind = self.path.rsplit("/", 1)[-1]  # response, or error (of an invocation or of init)
        try:
            answer: object = json.loads(body) if body else None
        except ValueError:
            answer = body[:2000].decode(errors="replace")
        self.server.answers.put((kind, answer))
        self._reply(202)

    @staticmethod
    def _invocation_headers(deadline_ms: int) -> dict[str, str]:
        return {
            "Lambda-Runtime-Aws-Request-Id": REQUEST_ID,
            "Lambda-Runtime-Deadline-Ms": str(deadline_ms),
            "Lambda-Runtime-Invoked-Function-Arn": FUNCTION_ARN,
            "Lambda-Runtime-Trace-Id": "Root=1-00000000-000000000000000000000000;Sampled=0",
        }

    def _reply(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the check reports what matters itself."""
