"""The moto emulator as the local stack runs it: moto's application, with DynamoDB's promises
kept and the emulator's own overheads taken out of the figures.

moto 5 (pinned in bootstrap.sh) as it comes would make the concurrency tests meaningless and the
benchmarks a measure of moto. The patches reach into moto's internals, so they hold for the pinned
version only: any other moto is refused at start (see `moto_version_problem`).

1. Requests are served on threads and the DynamoDB backend takes no lock, so a
   TransactWriteItems can interleave with other writes; worse, a cancelled transaction rolls back
   by restoring a snapshot of the whole table, wiping out writes other threads made meanwhile.
   Here every DynamoDB and DynamoDB Streams backend call holds one lock, so each call is
   atomic, as DynamoDB's are, and a stream read never sees a transaction's records before it is
   decided.
2. That snapshot is a deep copy of the whole table (stream records included) for every item of
   every transaction, so transactions slow down as the table grows (32/s at 1,000 items). Here a
   transaction saves only the items it touches and the stream's length, and a cancellation puts
   exactly those back.
3. Every SendMessage, and every message a ReceiveMessage hands out, computes all of the queue's
   attributes, message counts included: a scan of every message in the queue. A queue nothing
   drains locally (the e-mail outbox, whose consumer is the e-mail provider) makes each
   notification slower than the one before. Here the counts are computed only for
   GetQueueAttributes, the one call that returns them.
4. moto answers every request through a generic serializer that walks the response against the
   service's shape model, attribute by attribute: most of the emulator's time once items are
   orders of a few KB, and a stream read of a dozen new and old images took about 45 ms. The
   item and stream operations the system uses answer with their JSON as it is (it already has
   DynamoDB's wire shape; bytes become base64 and times epoch seconds, as the serializer would
   make them); errors and every other operation keep moto's serializer.
5. Per request, moto lists its own package directory (to tell a service from a host) and
   enumerates the handler class's methods: both are computed once here.
6. werkzeug's development server closes the connection after every answer, so each SDK call paid
   for a new connection and a new server thread (a third of the emulator's time under load).
   moto's application is served here by gunicorn instead: one process, so one state; a thread
   for every long poll at once; connections kept open; no log line per request.
7. moto has no SQS StartMessageMoveTask (a dead-letter queue's redrive; it answers 500). Here it
   moves every message available in the dead-letter queue at once, before it answers: same body
   and attributes, a new message id, receive counts from zero; to DestinationArn, or without it
   back to the queue each message was dead-lettered from (which moto does not record, so it is
   noted as receives dead-letter them). ListMessageMoveTasks lists those tasks, all COMPLETED.
8. Faults, off by default, for the fault-injection run: each is a share (0 to 1) of the calls the
   system's functions make (their SDK user agent names them: `app/<function>`; the local stack's
   pollers, the tests' and the tools' own calls are never faulted), drawn from
   `OMS_FAULT_SEED`:
   - `OMS_FAULT_DYNAMODB_THROTTLE`: a DynamoDB data call is answered
     `ProvisionedThroughputExceededException` before it runs (so nothing is written);
   - `OMS_FAULT_TRANSACTION_CONFLICT`: a `TransactWriteItems` is cancelled with a
     `TransactionConflict` for every item, before it runs;
   - `OMS_FAULT_SNS_ENTRY_FAILURE`: an entry of a `PublishBatch` fails (`InternalFailure`,
     not the sender's fault) and is not published; the batch's other entries are.
   `GET /_faults` answers how many of each were injected.

Usage: python moto_server.py -H 127.0.0.1 -p 4566
"""

import base64
import copy
import datetime
import decimal
import functools
import importlib.metadata
import json
import os
import re
import sys
import threading
import time
import uuid

_BOOTSTRAP = os.path.join(os.path.dirname(os.path.abspath(__file__)), "bootstrap.sh")


def pinned_moto_version(bootstrap=_BOOTSTRAP):
    """The moto version bootstrap.sh installs (its `moto_version=` line): the one the patches
    below were written for."""
    with open(bootstrap, encoding="utf-8") as script:
        match = re.search(r"^moto_version=([^\s#]+)\s*$", script.read(), re.MULTILINE)
    if match is None:
        raise ValueError(f"{bootstrap} has no moto_version= line")
    return match.group(1).strip("'\"")


def moto_version_problem(expected, found, python=sys.executable):
    """Why moto `found` (None: not installed) cannot run these patches, or None if it can."""
    if found == expected:
        return None
    has = f"has moto {found}" if found else "has no moto"
    return (
        f"moto_server.py needs moto {expected}, the version infra/local/bootstrap.sh pins (its "
        f"patches of moto's internals are written for that version and no other), but {python} "
        f"{has}.\n"
        f"Install moto {expected}: run infra/local/bootstrap.sh (in a .tools/venv made before the "
        f"pin changed: rm -rf .tools/venv first), or\n"
        f"  {python} -m pip install 'moto[dynamodb,sqs,sns]=={expected}'"
    )


def _check_moto_version():
    """Exits with a message on stderr unless the installed moto is the pinned one."""
    try:
        expected = pinned_moto_version()
    except (OSError, ValueError) as error:
        print(f"moto_server.py: cannot tell which moto version its patches are for: {error}",
              file=sys.stderr)
        sys.exit(2)
    try:
        found = importlib.metadata.version("moto")
    except importlib.metadata.PackageNotFoundError:
        found = None
    problem = moto_version_problem(expected, found)
    if problem:
        print(problem, file=sys.stderr)
        sys.exit(2)


# Before moto is imported: another version may not even have the modules patched below.
_check_moto_version()

import moto.dynamodb.models as dynamodb_models
from moto.dynamodb.models import DynamoDBBackend
from moto.dynamodb.models.dynamo_type import DynamoType
from moto.dynamodb.models.table import Table
from moto.dynamodb.responses import DynamoHandler
from moto.dynamodbstreams.models import DynamoDBStreamsBackend
from moto.dynamodbstreams.responses import DynamoDBStreamsHandler
import moto.backends as moto_backends
import moto.core.responses as moto_responses
from moto.core.responses import ActionResult
from moto.core.utils import unix_time
from moto.moto_api._internal.recorder.models import Recorder
from moto.sqs.exceptions import SQSException
from moto.sqs.models import Queue, SQSBackend
from moto.sqs.responses import SQSResponse
from moto.sns.models import SNSBackend

_LOCK = threading.RLock()


def _serialized_by(lock):
    def wrap(method):
        @functools.wraps(method)
        def locked(*args, **kwargs):
            with lock:
                return method(*args, **kwargs)

        return locked

    return wrap


_serialized = _serialized_by(_LOCK)


# The streams backend too: a stream read between a transaction's writes and its rollback would
# hand out records the rollback then removes, and the next writes reuse their sequence numbers,
# so the reader's iterator would skip them (an order placed but never published).
for _backend in (DynamoDBBackend, DynamoDBStreamsBackend):
    for _name, _member in list(vars(_backend).items()):
        if callable(_member) and not _name.startswith("_"):
            setattr(_backend, _name, _serialized(_member))


class _SnapshotlessCopy:
    """Stands in for the `copy` module inside moto's DynamoDB backend: a Table is "copied" as
    itself, so moto's own rollback (putting the copy back) changes nothing, and the undo log
    below restores what the transaction touched."""

    def __getattr__(self, name):
        return getattr(copy, name)

    @staticmethod
    def deepcopy(value, memo=None):
        if isinstance(value, Table):
            return value
        return copy.deepcopy(value, memo)


dynamodb_models.copy = _SnapshotlessCopy()
_original_transact = DynamoDBBackend.transact_write_items


def _key_of(table, operation, operation_type):
    source = operation.get("Item") if operation_type == "Put" else operation.get("Key")
    if not source or table.hash_key_attr not in source:
        return None
    hash_value = DynamoType(source[table.hash_key_attr])
    if table.range_key_attr is None:
        return hash_value, None
    if table.range_key_attr not in source:
        return None
    return hash_value, DynamoType(source[table.range_key_attr])


def _restore(table, hash_value, range_value, prior):
    if range_value is None:
        if prior is None:
            table.items.pop(hash_value, None)
        else:
            table.items[hash_value] = prior
    elif prior is None:
        table.items.get(hash_value, {}).pop(range_value, None)
        if hash_value in table.items and not table.items[hash_value]:
            del table.items[hash_value]
    else:
        table.items[hash_value][range_value] = prior


@functools.wraps(_original_transact)
def _transact_write_items(self, transact_items):
    with _LOCK:
        undo = []
        stream_lengths = {}
        for entry in transact_items:
            if len(entry) != 1:
                continue
            operation_type, operation = next(iter(entry.items()))
            table = self.tables.get(operation.get("TableName"))
            if table is None:
                continue
            key = _key_of(table, operation, operation_type)
            if key is None:
                continue
            if table.stream_shard is not None and table.name not in stream_lengths:
                stream_lengths[table.name] = (table, len(table.stream_shard.items))
            prior = table.get_item(*key)
            undo.append((table, key[0], key[1], copy.deepcopy(prior)))
        try:
            return _original_transact(self, transact_items)
        except Exception:
            for table, hash_value, range_value, prior in reversed(undo):
                _restore(table, hash_value, range_value, prior)
            for table, length in stream_lengths.values():
                del table.stream_shard.items[length:]
            raise


DynamoDBBackend.transact_write_items = _transact_write_items

_counting = threading.local()


def _counted_only_when_asked(exact):
    def count(queue):
        return exact(queue) if getattr(_counting, "asked", False) else 0

    return property(count)


for _name in (
    "approximate_number_of_messages",
    "approximate_number_of_messages_delayed",
    "approximate_number_of_messages_not_visible",
):
    setattr(Queue, _name, _counted_only_when_asked(getattr(Queue, _name).fget))
_original_get_queue_attributes = SQSBackend.get_queue_attributes


@functools.wraps(_original_get_queue_attributes)
def _get_queue_attributes(self, queue_name, attribute_names):
    _counting.asked = True
    try:
        return _original_get_queue_attributes(self, queue_name, attribute_names)
    finally:
        _counting.asked = False


def _within_retention(self, queue_name, message):
    retention = int(self.get_queue(queue_name).message_retention_period)
    return message.sent_timestamp / 1000 + retention > unix_time()


SQSBackend.get_queue_attributes = _get_queue_attributes
SQSBackend.is_message_valid_based_on_retention_period = _within_retention

# Which queue a dead-lettered message came from, for a redrive without DestinationArn: moto moves
# a message to the dead-letter queue inside ReceiveMessage, on the thread serving that receive,
# and keeps no note of where it was.
_receiving = threading.local()
_original_receive_message = SQSBackend.receive_message
_original_add_message = Queue.add_message


@functools.wraps(_original_receive_message)
def _receive_message(self, queue_name, *args, **kwargs):
    _receiving.queue = self.queues.get(queue_name)
    try:
        return _original_receive_message(self, queue_name, *args, **kwargs)
    finally:
        _receiving.queue = None


@functools.wraps(_original_add_message)
def _add_message(self, message):
    source = getattr(_receiving, "queue", None)
    if source is not None and source.dead_letter_queue is self:
        message.dead_lettered_from = source.queue_arn
    return _original_add_message(self, message)


SQSBackend.receive_message = _receive_message
Queue.add_message = _add_message


def _invalid(message):
    return SQSException("InvalidParameterValue", message)


def _queue_by_arn(backend, arn, parameter):
    for queue in backend.queues.values():
        if queue.queue_arn == arn:
            return queue
    raise SQSException(
        "ResourceNotFoundException",
        f"The resource that you specified for the {parameter} parameter doesn't exist: {arn}",
    )


def _redriving_to(backend, dead_letter_queue):
    """The queues whose RedrivePolicy names `dead_letter_queue` as their deadLetterTargetArn."""
    return [
        queue
        for queue in backend.queues.values()
        if (getattr(queue, "redrive_policy", None) or {}).get("deadLetterTargetArn")
        == dead_letter_queue.queue_arn
    ]


def _move_tasks(backend):
    # On the backend, so moto's reset forgets them with the queues.
    return backend.__dict__.setdefault("oms_message_move_tasks", [])


def start_message_move_task(self, source_arn, destination_arn=None, max_per_second=None):
    """Moves every message available now in the dead-letter queue `source_arn` (visible, not
    delayed: what a redrive would receive) and records the task; answers its handle."""
    if not source_arn:
        raise SQSException("MissingParameter", "The request must contain the parameter SourceArn.")
    source = _queue_by_arn(self, source_arn, "SourceArn")
    # As SQS: only a dead-letter queue of other queues can be redriven, DestinationArn or not.
    redriving = _redriving_to(self, source)
    if not redriving:
        raise _invalid(
            f"Source queue must be configured as a Dead Letter Queue: no queue's RedrivePolicy "
            f"names {source_arn} as its deadLetterTargetArn."
        )
    destination = _queue_by_arn(self, destination_arn, "DestinationArn") if destination_arn else None
    if destination is source:
        raise _invalid("The source and destination queues must be different queues.")

    def destination_of(message):
        if destination is not None:
            return destination
        origin = getattr(message, "dead_lettered_from", None)
        for queue in redriving:
            if queue.queue_arn == origin:
                return queue
        return redriving[0] if len(redriving) == 1 else None

    started = int(time.time() * 1000)
    with source._messages_lock:
        routes = [(message, destination_of(message)) for message in source.messages]
        unplaced = sum(1 for _, target in routes if target is None)
        if unplaced:
            # Before anything moves: a redrive that stops halfway is harder to reason about.
            raise _invalid(
                f"{unplaced} message(s) in {source_arn} did not come from a queue that redrives "
                f"to it, and {len(redriving)} queues do: give DestinationArn."
            )
        moving = {id(message) for message, _ in routes}
        source._messages = [m for m in source._messages if id(m) not in moving]
        for message, _ in routes:
            source.pending_messages.discard(message)
    moved = 0
    try:
        for message, target in routes:
            self.send_message(
                target.name,
                message.body,
                message_attributes=copy.deepcopy(message.message_attributes),
                group_id=message.group_id,
                # A new id: the message's own would be dropped as a duplicate by a FIFO queue it
                # left less than five minutes ago.
                deduplication_id=str(uuid.uuid4()) if target.fifo_queue else None,
                system_attributes=copy.deepcopy(message.system_attributes),
            )
            moved += 1
    except Exception:
        # What was not sent goes back, so a failed redrive loses nothing.
        with source._messages_lock:
            source._messages[:0] = [message for message, _ in routes[moved:]]
        raise
    handle = base64.urlsafe_b64encode(
        json.dumps({"taskId": str(uuid.uuid4()), "sourceArn": source_arn}).encode()
    ).decode()
    task = {
        "TaskHandle": handle,
        "Status": "COMPLETED",
        "SourceArn": source_arn,
        "ApproximateNumberOfMessagesMoved": moved,
        "ApproximateNumberOfMessagesToMove": len(routes),
        "StartedTimestamp": started,
    }
    # As SQS lists them: only when the request gave them.
    if destination_arn:
        task["DestinationArn"] = destination_arn
    if max_per_second is not None:
        task["MaxNumberOfMessagesPerSecond"] = int(max_per_second)
    _move_tasks(self).append(task)
    return handle


def list_message_move_tasks(self, source_arn, max_results=None):
    """The newest `max_results` (default 1, at most 10, as SQS) tasks of `source_arn`."""
    if not source_arn:
        raise SQSException("MissingParameter", "The request must contain the parameter SourceArn.")
    _queue_by_arn(self, source_arn, "SourceArn")
    count = 1 if max_results is None else int(max_results)
    if not 1 <= count <= 10:
        raise _invalid(f"Value {count} for parameter MaxResults is invalid: it must be 1 to 10.")
    tasks = [task for task in _move_tasks(self) if task["SourceArn"] == source_arn]
    return [dict(task) for task in reversed(tasks[-count:])]


SQSBackend.start_message_move_task = start_message_move_task
SQSBackend.list_message_move_tasks = list_message_move_tasks


def _start_message_move_task_action(self):
    handle = self.sqs_backend.start_message_move_task(
        self._get_param("SourceArn"),
        self._get_param("DestinationArn"),
        self._get_param("MaxNumberOfMessagesPerSecond"),
    )
    return ActionResult({"TaskHandle": handle})


def _list_message_move_tasks_action(self):
    results = self.sqs_backend.list_message_move_tasks(
        self._get_param("SourceArn"), self._get_param("MaxResults")
    )
    return ActionResult({"Results": results})


SQSResponse.start_message_move_task = _start_message_move_task_action
SQSResponse.list_message_move_tasks = _list_message_move_tasks_action

_moto_modules = tuple(moto_backends.list_of_moto_modules())
moto_backends.list_of_moto_modules = lambda: _moto_modules
moto_responses.method_names_from_class = functools.lru_cache(maxsize=None)(
    moto_responses.method_names_from_class
)

# The request recorder appends a line per request from whichever thread serves it; with
# requests served side by side, lines interleaved. One writer at a time.
Recorder._record_request = _serialized_by(threading.Lock())(Recorder._record_request)

_PLAIN_JSON_ACTIONS = {
    "BatchGetItem",
    "BatchWriteItem",
    "DeleteItem",
    "GetItem",
    "GetRecords",
    "PutItem",
    "Query",
    "Scan",
    "TransactGetItems",
    "TransactWriteItems",
    "UpdateItem",
}


def _wire_value(value):
    if isinstance(value, (bytes, bytearray)):
        return base64.b64encode(value).decode("ascii")
    if isinstance(value, datetime.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=datetime.timezone.utc)
        return value.timestamp()
    if isinstance(value, decimal.Decimal):
        return float(value)
    raise TypeError(f"no JSON form for {type(value).__name__}")


def _plain_json(serialized):
    @functools.wraps(serialized)
    def answer(self, action_result):
        if isinstance(action_result.result, Exception) or self._get_action() not in _PLAIN_JSON_ACTIONS:
            return serialized(self, action_result)
        body = json.dumps(action_result.result, default=_wire_value, separators=(",", ":"))
        headers = {"Content-Type": "application/x-amz-json-1.0", **self.response_headers}
        return 200, headers, body

    return answer


DynamoHandler.serialized = _plain_json(DynamoHandler.serialized)
DynamoDBStreamsHandler.serialized = _plain_json(DynamoDBStreamsHandler.serialized)


class Faults:
    """The fault switches (see the module's notes, 8) and the count of what they injected."""

    KINDS = ("dynamodb_throttle", "transaction_conflict", "sns_entry_failure")

    def __init__(self, environ):
        import random

        self.shares = {
            kind: float(environ.get(f"OMS_FAULT_{kind.upper()}", "0") or 0) for kind in self.KINDS
        }
        for kind, share in self.shares.items():
            if not 0 <= share <= 1:
                raise ValueError(f"OMS_FAULT_{kind.upper()} must be a share from 0 to 1, not {share}")
        self.random = random.Random(environ.get("OMS_FAULT_SEED", "oms"))
        self.injected = dict.fromkeys(self.KINDS, 0)
        self.lock = threading.Lock()
        self.caller = threading.local()

    def strike(self, kind):
        """Whether this call of a function is faulted with `kind` (and counts it if so)."""
        share = self.shares[kind]
        if share <= 0 or not getattr(self.caller, "function", False):
            return False
        with self.lock:
            hit = self.random.random() < share
            if hit:
                self.injected[kind] += 1
        return hit

    def report(self):
        with self.lock:
            return {"shares": dict(self.shares), "injected": dict(self.injected)}


_FAULTS = Faults(os.environ)


def _from_a_function(user_agent):
    """Whether a request's user agent names one of the system's functions (`app/<name>`), not
    the local stack, a test or a tool (whose names start with `oms-`)."""
    for part in user_agent.split():
        if part.startswith("app/"):
            return not part[len("app/"):].startswith("oms-")
    return False


_DYNAMODB_PREFIX = "DynamoDB_20120810."
_DYNAMODB_DATA_CALLS = {
    "BatchGetItem", "BatchWriteItem", "DeleteItem", "GetItem", "PutItem", "Query", "Scan",
    "TransactGetItems", "TransactWriteItems", "UpdateItem",
}


def _dynamodb_error(kind, message, **extra):
    body = json.dumps({"__type": f"com.amazonaws.dynamodb.v20120810#{kind}", "message": message, **extra})
    return "400 Bad Request", [("Content-Type", "application/x-amz-json-1.0")], body.encode()


def _with_faults(app, faults=_FAULTS):
    """The WSGI application with the fault switches in front of it, and `GET /_faults`."""

    def faulted(environ, start_response):
        if environ.get("PATH_INFO") == "/_faults":
            body = json.dumps(faults.report()).encode()
            start_response("200 OK", [("Content-Type", "application/json")])
            return [body]
        faults.caller.function = _from_a_function(environ.get("HTTP_USER_AGENT", ""))
        target = environ.get("HTTP_X_AMZ_TARGET", "")
        if target.startswith(_DYNAMODB_PREFIX) and target[len(_DYNAMODB_PREFIX):] in _DYNAMODB_DATA_CALLS:
            action = target[len(_DYNAMODB_PREFIX):]
            answer = None
            if action == "TransactWriteItems" and faults.strike("transaction_conflict"):
                length = int(environ.get("CONTENT_LENGTH") or 0)
                request = json.loads(environ["wsgi.input"].read(length) or b"{}")
                items = len(request.get("TransactItems", []))
                answer = _dynamodb_error(
                    "TransactionCanceledException",
                    "Transaction cancelled, please refer cancellation reasons for specific reasons "
                    f"[{', '.join(['TransactionConflict'] * items)}]",
                    CancellationReasons=[
                        {"Code": "TransactionConflict", "Message": "Transaction is ongoing for the item"}
                    ] * items,
                )
            elif faults.strike("dynamodb_throttle"):
                answer = _dynamodb_error(
                    "ProvisionedThroughputExceededException",
                    "The level of configured provisioned throughput for the table was exceeded "
                    "(injected by OMS_FAULT_DYNAMODB_THROTTLE)",
                )
            if answer is not None:
                status, headers, body = answer
                start_response(status, headers + [("Content-Length", str(len(body)))])
                return [body]
        return app(environ, start_response)

    return faulted


_original_publish_batch = SNSBackend.publish_batch


@functools.wraps(_original_publish_batch)
def _publish_batch(self, topic_arn, publish_batch_request_entries, faults=_FAULTS):
    kept, failed = [], []
    for entry in publish_batch_request_entries:
        if faults.strike("sns_entry_failure"):
            failed.append({
                "Id": entry["Id"],
                "Code": "InternalFailure",
                "Message": "injected by OMS_FAULT_SNS_ENTRY_FAILURE",
                "SenderFault": False,
            })
        else:
            kept.append(entry)
    successful, more_failed = _original_publish_batch(self, topic_arn, kept) if kept else ([], [])
    return successful, failed + more_failed


SNSBackend.publish_batch = _publish_batch


def serve(argv):
    """Serves moto on `-H host -p port` until stopped."""
    import argparse

    from gunicorn.app.base import BaseApplication
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app

    parser = argparse.ArgumentParser()
    parser.add_argument("-H", "--host", default="127.0.0.1")
    parser.add_argument("-p", "--port", type=int, default=5000)
    args = parser.parse_args(argv)
    os.environ.setdefault("MOTO_PORT", str(args.port))

    class Server(BaseApplication):
        def load_config(self):
            for key, value in {
                "bind": f"{args.host}:{args.port}",
                "workers": 1,
                "worker_class": "gthread",
                # A long poll holds a thread for its whole wait.
                "threads": 64,
                "keepalive": 120,
                "timeout": 0,
                "accesslog": None,
                "loglevel": "warning",
            }.items():
                self.cfg.set(key, value)

        def load(self):
            return _with_faults(DomainDispatcherApplication(create_backend_app))

    Server().run()


if __name__ == "__main__":
    sys.exit(serve(sys.argv[1:]))
