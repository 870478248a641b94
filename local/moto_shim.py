"""moto server, made to keep the guarantees of DynamoDB and SQS that Metalplane relies on.

Isolation: DynamoDB requests run one at a time (moto applied an UpdateItem attribute by
attribute while other request threads read and conditionally wrote the same item), and
SQS operations likewise (concurrent receives handed out one message twice). SQS FIFO:
deduplication for five minutes after a send, ReceiveRequestAttemptId, stale receipt
handles refused. Each restored guarantee, and what still differs from AWS, is listed in
docs/local-aws.md with the test that guards it (test/integration/local-aws.test.ts).

Transactions are item-scoped:

moto's TransactWriteItems deep-copies every table a transaction touches, to roll back
on failure. That costs time in proportion to the whole table (seconds with 10,000
nodes), and it races with concurrent writes: a deepcopy taken while another request
thread inserts an item fails ("dictionary changed size during iteration", a 500), and
a rollback restores the whole table, losing writes other requests made meanwhile.

This shim snapshots only the items the transaction names, serializes transactions
with one lock, and on failure restores exactly those items: DynamoDB's own semantics,
at a cost independent of table size.

moto also serializes data-plane answers (Query, GetItem, UpdateItem ...) through its generic,
model-driven serializer, which walks every attribute of every item: about 10 ms per
node-sized item, a second for a 100-node page. Those answers are already DynamoDB JSON,
so the shim writes them with json.dumps, as DynamoDB's wire protocol (JSON 1.0) is, laid
out as moto's serializer lays them out (members in the output shape's order, doubles as
floats): the same bytes as plain moto's answers.

Every Query on an index sorted the whole table, then the matches, comparing moto's
DynamoType objects (each comparison re-parses the value): 1.3 s for a 100-node page with
10,000 nodes stored. The shim sorts by a plain (type, value) key instead — the same
order DynamoDB defines (strings and binaries bytewise, numbers numerically).
And moto still walked the whole table for every Query (150-340 ms for one 101-item page
of an index with 10,000 items). The shim keeps each partition of the table and of every
secondary index sorted in moto's query order, kept on every write path (Table.put_item
and Table.delete_item, which PutItem, BatchWriteItem, DeleteItem, transactions and their
rollback go through; DynamoDBBackend.update_item, which changes items in place), and
answers a Query from the partition's stretch between the start key and the key
condition's bounds: O(log n + page), the same answer as moto's item for item
(test/integration/local-dynamodb-conformance.test.ts compares it with plain moto).
And the DynamoDB write path, where moto spent most of an UpdateItem (4-5 ms for a
node-sized item) on avoidable work: it parsed the same UpdateExpression twice per call,
deep-copied the parse tree through the generic reduce protocol, walked it ten times with
abstract-class isinstance checks, deep-copied the whole stored item twice (one copy only
turned into JSON, the other kept for a stream the table does not have), re-copied every
nested value once per nesting level to make JSON, and re-summed the whole item's size for
each attribute it built (PutItem: quadratic). The shim caches each UpdateExpression's
parse tree by its string (moto's validator copies the tree before changing anything, and
nothing else writes to it; errors are not cached), copies trees and builds JSON with
code specialised for them, skips the two copies whose contents nothing reads, and adds
up an item's size as it builds it: the same answers, items and errors as moto's
(test/integration/local-dynamodb-writes.test.ts compares them with plain moto's).
And one SQS fix: when several in-flight messages of one FIFO group time out together,
moto releases them one by one while scanning, so the group counts as busy until the
last of them is reached — and the *last* is delivered first, out of order. The shim
releases every timed-out message before moto scans, as SQS does (order kept per group).
And the per-request overhead of moto server itself, which on a busy local stack was
most of moto's CPU (cProfile, deploy bench): every request listed moto's package
directory and stat'ed each entry under the dispatcher's global lock to find its backend
(a third of moto's time, and every other request thread waiting on that lock), ran
inspect.getmembers over the handler class to find the action, and drew a 52-character
request id one random.choice at a time. The shim resolves a host to its backend once,
lists the handler's methods once per class, and draws the request id in one call.
Werkzeug's development server also closes the connection after every answer (it cannot
tell where a request body ends), so each AWS SDK call paid a TCP connect and a new
server thread; the shim keeps connections alive for requests whose body length is known
(read in full before moto sees it), and closes them as before for any other.
And the read path (profiled in process, 2,000 node-sized items): a 101-node Query page still
deep-copied every item (45 % of it), rebuilt each copy as plain dicts (25 %) and re-summed
each item's size (18 %); a GetItem spent most of its time in Flask and werkzeug. The shim
answers a Query from the stored items when nothing would change them, keeps each stored
item's JSON and size on the item (dropped by every write that changes an item in place,
and all at once by any action that might), and sends DynamoDB calls from moto's dispatcher
straight to moto's DynamoHandler, past Flask, answering in one send
(test/integration/local-dynamodb-reads.test.ts compares every answer, byte for byte,
errors included, with plain moto's).
And two costs that grew with the run or came with every request: an event delivered
to a queue walked the queue three times, reading the clock per message, and built a PLY
parser per JSONPath of the target's template (half of moto's CPU in the API tests: the
webhook events queue is never drained there); and every request's headers went through
the email package's feed parser. The shim counts with one clock read, caches parsed
paths, and reads plain header blocks itself (local-events-sqs.test.ts and
local-moto-headers.test.ts compare both with moto's and http.client's answers).
An S3 GET with a Range reads only that range of the object (moto read all of it, then
sliced: parallel ranged downloads of a large object crawled).
And moto's request parsing and conditions: every request's JSON walked against the
botocore model after json.loads, every condition lexed and parsed again at each stage of
a request. The shim takes the JSON as the parameters where the walk would change nothing,
keeps each condition's tokens, and reuses a request's parse within that request
(local-dynamodb-writes.test.ts compares the answers with plain moto's). And SQS: each
message built its queue's attributes several times, converting every attribute's name
from CamelCase character by character; the conversions are kept, and the receive's
retention check reads the one field it needs.
Everything else is moto as released.
Usage: the same arguments as moto_server (local/moto.ts starts it).
"""

import base64
import bisect
import copy
import email.parser
import http.client
import io
import json
import re
import socket
import sys
import threading
import time
from decimal import Decimal

import random

import moto.backends as moto_backends
import moto.core.responses as moto_responses
import moto.dynamodb.models as dynamodb_models
import moto.moto_server.werkzeug_app as werkzeug_app
import moto.server as moto_server_module
import moto.utilities.aws_headers as aws_headers
from moto.dynamodb.models import DynamoDBBackend
from moto.dynamodb.comparisons import OpDefault as _OpDefault
from moto.dynamodb.models.dynamo_type import DynamoType
from moto.dynamodb.models.table import RESULT_SIZE_LIMIT, GlobalSecondaryIndex, Table
from moto.core.responses import ActionResult
from moto.dynamodb.responses import DynamoHandler, DynamoResult
import moto.s3.models as s3_models
from moto.s3.responses import S3Response
from moto.moto_server.werkzeug_app import DomainDispatcherApplication
from moto.server import main
from moto.sqs.exceptions import InvalidParameterValue
from moto.sqs.models import Queue, SQSBackend
from moto.sqs.responses import SQSResponse

_transactions = threading.RLock()
_original_transact = DynamoDBBackend.transact_write_items


class _TableKeepingCopy:
    """`copy` for moto's DynamoDB module: a Table is not deep-copied (we snapshot items)."""

    @staticmethod
    def deepcopy(value, memo=None):
        return value if isinstance(value, Table) else copy.deepcopy(value, memo)

    copy = staticmethod(copy.copy)


def _item_key(table, op):
    if "Item" in op:
        attrs = op["Item"]
        key = {table.hash_key_attr: attrs[table.hash_key_attr]}
        if table.range_key_attr is not None:
            key[table.range_key_attr] = attrs[table.range_key_attr]
        return key
    return op["Key"]


def _transact_write_items(self, transact_items):
    with _transactions:
        snapshots = []
        for entry in transact_items:
            _, op = next(iter(entry.items()))
            table = self.tables.get(op.get("TableName"))
            if table is None:
                continue
            try:
                key = _item_key(table, op)
                current = self.get_item(op["TableName"], key)
            except Exception:  # malformed op: moto's own validation reports it
                continue
            snapshots.append((op["TableName"], key, None if current is None else current.to_json()["Attributes"]))
        try:
            return _original_transact(self, transact_items)
        except Exception:
            for table_name, key, attributes in reversed(snapshots):
                if attributes is None:
                    self.delete_item(table_name, key)
                else:
                    self.put_item(table_name, attributes, overwrite=True)
            raise


class _JsonResult(DynamoResult):
    """A data-plane answer, already DynamoDB JSON: written as is."""

    def __init__(self, result):  # noqa: D107 - the result is already transformed
        self._result = result

    def execute_result(self, context):
        try:
            body = json.dumps(_in_shape_order(self._result, context))
        except TypeError:  # binary attributes (bytes): moto's own serializer encodes them
            return ActionResult.execute_result(self, context)
        return 200, {"Content-Type": "application/x-amz-json-1.0"}, body


def _in_shape_order(result, context):
    """The answer as moto's model-driven serializer lays it out, items aside: structure
    members in the order of the operation's output shape (a Query's Items before Count),
    members the shape does not have left out, doubles written as floats (CapacityUnits
    2.0, not 2). Attribute maps (items, keys) are handed back as they are, the same objects."""
    try:
        shape = context.operation_model.output_shape
    except Exception:
        return result
    return _shaped(result, shape) if shape is not None else result


def _shaped(value, shape):
    kind = shape.type_name
    if kind == "structure":
        if not isinstance(value, dict):
            return value
        return {name: _shaped(value[name], member) for name, member in shape.members.items() if name in value}
    if kind == "list":
        if not isinstance(value, list):
            return value
        member = shape.member
        if member.type_name == "map" and member.value.name == "AttributeValue":
            return value  # items: the same dicts, for their cached JSON
        return [_shaped(nested, member) for nested in value]
    if kind == "map":
        if not isinstance(value, dict) or shape.value.name == "AttributeValue":
            return value
        return {key: _shaped(nested, shape.value) for key, nested in value.items()}
    if kind == "double" and type(value) is int:
        return float(value)
    return value


def _fast(method):
    def wrapper(self, *args, **kwargs):
        outer = getattr(_fast_action, "active", False)
        _fast_action.active = True  # its DynamoResult keeps the items for cached JSON (below)
        try:
            result = method(self, *args, **kwargs)
        finally:
            _fast_action.active = outer
        if isinstance(result, _CachedJsonResult):
            return result
        return _JsonResult(result.result) if isinstance(result, DynamoResult) else result

    wrapper.__name__ = method.__name__
    wrapper.__wrapped__ = method
    return wrapper


for _name in ("query", "get_item", "batch_get_item", "scan", "put_item", "update_item", "delete_item"):
    setattr(DynamoHandler, _name, _fast(getattr(DynamoHandler, _name)))

def _sort_key(value):
    """DynamoDB's ordering of a key attribute, as a cheap Python sort key."""
    if value is None:
        return ("", "")
    kind = value.type
    if kind == "N":
        return (kind, Decimal(value.value))
    return (kind, value.value)


def _all_items(self):
    items = []
    for hash_set in self.items.values():
        if self.range_key_attr:
            items.extend(hash_set.values())
        else:
            items.append(hash_set)
    return sorted(items, key=lambda item: (_sort_key(item.hash_key), _sort_key(item.range_key)))


def _sorted_items(self, hash_key_attrs, range_key_attrs, items):
    attrs_to_sort_by = self._generate_attr_to_sort_by(hash_key_attrs, range_key_attrs)
    items.sort(key=lambda item: tuple(_sort_key(item.attrs.get(key)) for key in attrs_to_sort_by))
    return items


# --- Isolation: one request at a time per service -------------------------------------

# moto answers each HTTP request on its own thread and applies an UpdateItem attribute by
# attribute, with no lock: a concurrent GetItem can read half an update (a command
# `succeeded` with no result yet), and two conditional writes to one item can both pass
# their condition (a late `running` ack overwriting a `failed` result). DynamoDB makes
# every single-item request atomic and isolated, and a transaction all-or-nothing for
# readers. The shim runs DynamoDB's requests one at a time, answer serialization included
# (it reads the items): serializable, stronger than DynamoDB's per-item isolation, and no
# slower in practice since moto's CPU work runs under the GIL anyway.
_dynamodb = threading.RLock()
_original_dynamo_call_action = DynamoHandler.call_action


def _dynamo_call_action(self):
    with _dynamodb:
        _request_conditions.clear()  # the previous request's parses (see _condition_parse)
        try:
            return _original_dynamo_call_action(self)
        finally:
            _drop_region_indexes(self)  # an action that may change items unseen (see below)


DynamoHandler.call_action = _dynamo_call_action

# SQS likewise: moto's receive walks a queue's messages unlocked, so two concurrent
# receives can hand out one message twice, or a FIFO group's second message while its
# first is in flight. Every SQS backend operation below takes this lock; a long poll
# holds it only while it looks, and waits outside it for a change (a send, a delete, a
# visibility change) or a short tick (visibility timeouts pass without an event).
_sqs = threading.RLock()
_sqs_changed = threading.Condition(_sqs)
_LONG_POLL_TICK_SECONDS = 0.1


def _sqs_locked(method, notify):
    def wrapper(self, *args, **kwargs):
        with _sqs:
            result = method(self, *args, **kwargs)
            if notify:
                _sqs_changed.notify_all()
            return result

    wrapper.__name__ = method.__name__
    wrapper.__wrapped__ = method
    return wrapper


# --- SQS FIFO semantics moto lacks ---------------------------------------------------------

# Deduplication: SQS FIFO drops a message whose deduplication id was seen in the last five
# minutes, whether or not the first one was since deleted; moto compares only with the
# messages still in the queue, so a resend after the delete was queued again.
DEDUPLICATION_SECONDS = 300
_original_add_message = Queue.add_message


def _add_message(self, message):
    if self.fifo_queue and message.deduplication_id:
        now = time.time()
        seen = self.__dict__.setdefault("_metalplane_dedup", {})
        if len(seen) > 1024:  # forget what is out of the window, now and then
            for key, at in list(seen.items()):
                if now - at >= DEDUPLICATION_SECONDS:
                    del seen[key]
        at = seen.get(message.deduplication_id)
        if at is not None and now - at < DEDUPLICATION_SECONDS:
            return  # accepted, never delivered: as SQS does
        seen[message.deduplication_id] = now
    _original_add_message(self, message)


Queue.add_message = _add_message

# Receipt handles: in a FIFO queue a receipt handle is good only while its receive's
# visibility timeout runs and only if it is the message's latest; SQS answers a stale one
# "The receipt handle has expired" (InvalidParameterValue) and the message stays. moto
# accepted any receipt the message ever had, so a late delete with an old receipt removed
# a message another consumer was processing.
_original_queue_delete = Queue.delete_message


def _expired_receipt(receipt_handle):
    return InvalidParameterValue(
        f"Value {receipt_handle} for parameter ReceiptHandle is invalid. Reason: The receipt handle has expired."
    )


def _fifo_check_receipt(queue, receipt_handle):
    if not queue.fifo_queue:
        return
    for message in queue._messages:
        if message.had_receipt_handle(receipt_handle):
            if message.receipt_handle != receipt_handle or message.visible:
                raise _expired_receipt(receipt_handle)
            return


def _queue_delete_message(self, receipt_handle):
    _fifo_check_receipt(self, receipt_handle)
    return _original_queue_delete(self, receipt_handle)


Queue.delete_message = _queue_delete_message

_original_change_visibility = SQSBackend.change_message_visibility


def _change_message_visibility(self, queue_name, receipt_handle, visibility_timeout):
    _fifo_check_receipt(self.get_queue(queue_name), receipt_handle)
    return _original_change_visibility(self, queue_name, receipt_handle, visibility_timeout)


# ReceiveRequestAttemptId (FIFO): a receive retried with the same attempt id within five
# minutes answers the same messages with the same receipt handles (resetting their
# visibility timeout) as long as none of them was deleted or changed; moto ignored it, so
# a retried receive (a lost answer) left its messages in flight, their group blocked
# until the timeout.
_receive_attempts = threading.local()
_original_receive = SQSBackend.receive_message


def _receive_message(self, queue_name, count, wait_seconds_timeout, visibility_timeout, *args, **kwargs):
    queue = self.get_queue(queue_name)
    attempt_id = getattr(_receive_attempts, "id", None) if queue.fifo_queue else None
    deadline = time.monotonic() + (wait_seconds_timeout or 0)
    with _sqs:
        while True:
            replay = _replay_attempt(queue, attempt_id, visibility_timeout)
            if replay is not None:
                return replay
            # A timed-out in-flight message leaves its group free (moto released them one
            # at a time while scanning, delivering a group's last message first).
            for message in list(queue.pending_messages):
                if message.visible:
                    queue.pending_messages.discard(message)
            messages = _original_receive(self, queue_name, count, 0, visibility_timeout, *args, **kwargs)
            if messages:
                _record_attempt(queue, attempt_id, messages)
                _sqs_changed.notify_all()
                return messages
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return messages
            _sqs_changed.wait(min(remaining, _LONG_POLL_TICK_SECONDS))


def _record_attempt(queue, attempt_id, messages):
    if not attempt_id:
        return
    attempts = queue.__dict__.setdefault("_metalplane_attempts", {})
    now = time.time()
    for key, (at, _) in list(attempts.items()):
        if now - at >= DEDUPLICATION_SECONDS:
            del attempts[key]
    attempts[attempt_id] = (now, [(m.id, m.receipt_handle) for m in messages])


def _replay_attempt(queue, attempt_id, visibility_timeout):
    if not attempt_id:
        return None
    entry = queue.__dict__.get("_metalplane_attempts", {}).get(attempt_id)
    if entry is None or time.time() - entry[0] >= DEDUPLICATION_SECONDS:
        return None
    by_id = {m.id: m for m in queue._messages}
    originals = []
    for message_id, receipt in entry[1]:
        message = by_id.get(message_id)
        if message is None or message.receipt_handle != receipt:
            return None  # deleted, or received again since: a fresh receive
        originals.append(message)
    copies = []
    for message in originals:
        if visibility_timeout:
            message.change_visibility(visibility_timeout)
        queue.pending_messages.add(message)
        copies.append(copy.deepcopy(message))
    return copies


_original_receive_response = SQSResponse.receive_message


def _receive_message_response(self):
    _receive_attempts.id = self._get_param("ReceiveRequestAttemptId")
    try:
        return _original_receive_response(self)
    finally:
        _receive_attempts.id = None


SQSResponse.receive_message = _receive_message_response
SQSBackend.receive_message = _receive_message
SQSBackend.change_message_visibility = _change_message_visibility
for _name, _notify in (
    ("send_message", True),
    ("send_message_batch", True),
    ("delete_message", True),
    ("delete_message_batch", True),
    ("change_message_visibility", True),
    ("change_message_visibility_batch", True),
    ("purge_queue", True),
    ("get_queue_attributes", False),
    ("delete_queue", True),
):
    setattr(SQSBackend, _name, _sqs_locked(getattr(SQSBackend, _name), _notify))

# --- EventBridge to SQS: each event in time independent of the queue ---------------------

# Half of moto's CPU in the API-heavy test files went to PutEvents (py-spy --gil over
# hostile-input, cli-fleet, authz-matrix and nodes: 49 %), for two reasons.
# 1. Delivering an event to a queue target sends it through SQSBackend.send_message,
#    which reads `queue.attributes` for one flag, and that computes every attribute: the
#    three approximate message counts each walk the whole queue, reading the clock
#    (utcnow, a datetime, a subtraction) once per message per count. The webhook events
#    queue grows by one message per event wherever no webhook worker drains it (the api
#    tests), so each event cost more than the last. The shim reads the clock once per
#    count (or per `messages` list) and compares each message's two times with it: the
#    same predicates as Message.visible and Message.delayed, whose answers could only
#    differ for a message whose time falls within the few microseconds of one walk.
# 2. The target's input template is filled through jsonpath_ng, whose `parse` builds a
#    new PLY parser, tables and all, for each of the template's eight paths, per event.
#    Parsed paths are cached by their text (a parsed path is only read by `find`).
from functools import lru_cache as _lru_cache  # noqa: E402

import jsonpath_ng.ext as _jsonpath_ext  # noqa: E402
from moto.sqs.models import unix_time_millis as _sqs_clock  # noqa: E402

_jsonpath_ext.parse = _lru_cache(maxsize=256)(_jsonpath_ext.parse)


def _queue_messages(self):
    now = _sqs_clock()
    return [m for m in self._messages if now > m.visible_at and not now < m.delayed_until]


def _queue_count_not_visible(self):
    now = _sqs_clock()
    return sum(1 for m in self._messages if not now > m.visible_at)


def _queue_count_delayed(self):
    now = _sqs_clock()
    return sum(1 for m in self._messages if now < m.delayed_until)


# moto's approximate_number_of_messages is len(self.messages): it counts through this one.
Queue.messages = property(_queue_messages)
Queue.approximate_number_of_messages_not_visible = property(_queue_count_not_visible)
Queue.approximate_number_of_messages_delayed = property(_queue_count_delayed)

# And every message sent builds `queue.attributes` three to five times (its own checks,
# and the retention check through get_queue_attributes, which builds the whole dict twice
# per name asked), each time turning every attribute's CamelCase name into the
# snake_case of the Queue's field character by character (camelcase_to_underscores: 8 %
# of moto's CPU over the deploy bench, cProfile). That conversion is a pure function of
# its string: the shim keeps its answers. The retention check reads the one field it
# needs (`message_retention_period`, what the attribute holds; an unknown queue raises
# QueueDoesNotExist from get_queue, as before).
import moto.core.responses as _core_responses  # noqa: E402
import moto.core.utils as _core_utils  # noqa: E402
import moto.sqs.models as _sqs_models  # noqa: E402

_camel_to_snake = _lru_cache(maxsize=1024)(_core_utils.camelcase_to_underscores)
for _module in (_core_utils, _core_responses, _sqs_models):
    _module.camelcase_to_underscores = _camel_to_snake


def _retained(self, queue_name, message):
    retention_period = self.get_queue(queue_name).message_retention_period
    return retention_period + message.sent_timestamp / 1000 > _sqs_models.unix_time()


SQSBackend.is_message_valid_based_on_retention_period = _retained


# --- moto server's per-request overhead --------------------------------------------------

_moto_modules = tuple(moto_backends.list_of_moto_modules())
moto_backends.list_of_moto_modules = lambda: _moto_modules

_original_backend_for_host = DomainDispatcherApplication.get_backend_for_host
_backends_by_host = {}


def _backend_for_host(self, host):
    """Which backend serves a host: a pure function of the host (moto's URL patterns)."""
    try:
        return _backends_by_host[host]
    except KeyError:
        backend = _original_backend_for_host(self, host)
        if len(_backends_by_host) < 1024:
            _backends_by_host[host] = backend
        return backend


DomainDispatcherApplication.get_backend_for_host = _backend_for_host

_method_names = {}
_original_method_names = moto_responses.method_names_from_class


def _method_names_from_class(clazz):
    """A handler class's methods; the classes do not change once the shim has patched them."""
    names = _method_names.get(clazz)
    if names is None:
        names = _method_names[clazz] = _original_method_names(clazz)
    return list(names)


moto_responses.method_names_from_class = _method_names_from_class


_ids = random.Random()


def _request_id(headerdict=None):
    """moto's 52-character request id, drawn in one call instead of 52."""
    # Not os.urandom (uuid4): its syscall gives up the GIL, and under load each request
    # then waits to get it back. A request id needs no cryptographic randomness.
    req_id = "%052X" % _ids.getrandbits(208)
    if isinstance(headerdict, dict):
        headerdict["x-amzn-requestid"] = req_id
    return req_id


aws_headers.gen_amzn_requestid_long = _request_id
moto_responses.gen_amzn_requestid_long = _request_id


# http.server reads a request's headers with http.client.parse_headers, which hands them
# to the email package's feed parser: 28.5 µs for an SDK call's dozen plain ASCII lines
# (8 µs this way), of the 0.5 ms moto spends on a GetItem. A block whose every line is a
# plain `Name: value` line (a name of printable ASCII without a colon, printable ASCII
# or tab in the value, one line ending) is turned into the same message the feed parser
# makes: the same class, fields as compat32 stores them (the value without the blanks
# after the colon or the line ending), an empty payload. Any other block (folded lines,
# bytes past ASCII, a bare CR, a missing name, no blank line at the end) goes to the
# feed parser, as before. The lines are read by http.client itself, with its limits.
_SIMPLE_HEADER_BLOCK = re.compile(rb"(?:[\x21-\x39\x3b-\x7e]+:[\t\x20-\x7e]*\r?\n)*")
_original_parse_headers = http.client.parse_headers


def _parse_headers(fp, _class=http.client.HTTPMessage):
    lines = http.client._read_headers(fp)
    block = b"".join(lines[:-1])
    if lines[-1] not in (b"\r\n", b"\n") or not _SIMPLE_HEADER_BLOCK.fullmatch(block):
        return email.parser.Parser(_class=_class).parsestr(b"".join(lines).decode("iso-8859-1"))
    message = _class()
    # splitlines drops each line's ending; the block holds no other line break character.
    for line in block.decode("ascii").splitlines():
        name, _, value = line.partition(":")
        message.set_raw(name, value.lstrip(" \t"))
    message.set_payload("")
    return message


http.client.parse_headers = _parse_headers

Table.all_items = _all_items
Table.sorted_items = _sorted_items
dynamodb_models.copy = _TableKeepingCopy
DynamoDBBackend.transact_write_items = _transact_write_items


# --- DynamoDB Query: each partition kept sorted ------------------------------------------

# moto answers a Query by walking every item of the table (filtering by the partition key,
# then sorting the matches): O(table) per page, 150-340 ms for one 101-item page of an
# index with 10,000 nodes stored. DynamoDB reads only the partition asked for, from the
# start key on, in sort-key order: O(log n + page). The shim keeps, per table and per
# "view" (the table itself, each secondary index), every partition's items in moto's own
# query order (`_generate_attr_to_sort_by`, compared as `_sort_key` does), and answers a
# Query by bisecting to the start key and the key condition's range, then running moto's
# own per-item loop (Limit, the 1 MB page, LastEvaluatedKey, projection, FilterExpression)
# over just that stretch: the same answer as moto's, item for item.
#
# The index is built on a table's first Query and then kept on every write: Table.put_item
# and Table.delete_item (PutItem, BatchWriteItem, transactions and their rollback, PartiQL)
# re-place the item they wrote, and DynamoDBBackend.update_item (which changes the stored
# item in place, index keys included) re-places its item after the update, even a failed
# one. Any other DynamoDB action that could touch items (UpdateTable, restores, imports,
# PartiQL ...) drops the indexes of its region's tables: rebuilt by the next Query. A Query
# the index cannot answer exactly (legacy KeyConditions/QueryFilter, multi-attribute keys,
# key values of mixed or unusual types) goes to moto's own implementation.

_QUERY_INDEX = "_metalplane_query_index"
_MAX_ITEM_SIZE = 405000  # moto's bound on one item (dynamo_type.LimitedSizeDict)
_RANGE_OPERATORS = {"=", "<", "<=", ">", ">=", "BETWEEN", "BEGINS_WITH"}
_INDEX_KEEPING_ACTIONS = {
    # Reads, and the writes whose items the hooks below re-place.
    "Query", "Scan", "GetItem", "BatchGetItem", "TransactGetItems",
    "PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem", "TransactWriteItems",
    # Table-level actions that leave items alone (a new table starts without an index).
    "CreateTable", "DeleteTable", "DescribeTable", "ListTables", "DescribeTimeToLive",
    "UpdateTimeToLive", "ListTagsOfResource", "TagResource", "UntagResource",
    "DescribeContinuousBackups", "DescribeEndpoints",
}


def _key_part(value):
    """`_sort_key` of a key attribute's value, or None if it is no scalar key (S, N, B)."""
    if value is None:
        return None
    kind, raw = value.type, value.value
    if kind == "S" or kind == "B":
        return (kind, raw) if isinstance(raw, str) else None
    if kind == "N":
        try:
            number = Decimal(raw)
        except Exception:
            return None
        return (kind, number) if number.is_finite() else None
    return None


class _Partition:
    """The items of one partition of a view, in query order (`keys[i]` sorts `items[i]`)."""

    __slots__ = ("keys", "items", "odd")

    def __init__(self):
        self.keys = []
        self.items = []
        self.odd = set()  # primary keys of items with an unorderable sort attribute


class _View:
    """The table, or one secondary index: moto's partition attribute and sort order."""

    def __init__(self, table, index):
        self.index = index
        self.partitions = {}
        if index is None:
            self.hash_attr = table.hash_key_attr
            self.range_attr = table.range_key_attr
            self.required = ()
            hash_attrs, range_attrs = [table.hash_key_attr], [table.range_key_attr]
        else:
            # As Table.query does for a single-attribute index.
            (self.hash_attr,) = [k["AttributeName"] for k in index.schema if k["KeyType"] == "HASH"]
            ranges = [k["AttributeName"] for k in index.schema if k["KeyType"] == "RANGE"]
            if ranges:
                (self.range_attr,) = ranges
                index_range = self.range_attr
            else:
                self.range_attr = None  # moto refuses a range condition here
                is_global = isinstance(index, GlobalSecondaryIndex)
                index_range = table.range_key_attr if is_global and table.range_key_attr else table.hash_key_attr
            self.required = (self.hash_attr, *ranges)
            hash_attrs = [self.hash_attr, table.hash_key_attr]
            range_attrs = [index_range, table.range_key_attr]
        self.sort_attrs = table._generate_attr_to_sort_by(hash_attrs, range_attrs)

    def place(self, item):
        """(partition, sort key or None if unorderable) of an item, None if not in the view."""
        attrs = item.attrs
        if self.index is None:
            partition = _key_part(item.hash_key)
        else:
            for name in self.required:
                if attrs.get(name) is None:
                    return None
            partition = _key_part(attrs[self.hash_attr])
        if partition is None:
            return None  # never equal to an S, N or B partition value a query names
        key = tuple(_key_part(attrs.get(name)) for name in self.sort_attrs)
        return partition, (None if None in key else key)


def _signature(table):
    return (
        table.hash_key_attr,
        table.range_key_attr,
        tuple((type(i).__name__, i.name, repr(i.schema)) for i in table.all_indexes()),
    )


def _stored_item(table, hash_key, range_key):
    if table.range_key_attr is None:
        return table.items.get(hash_key)
    if range_key is None:
        return None
    partition = table.items.get(hash_key)
    return None if partition is None else partition.get(range_key)


class _TableIndex:
    """Every view of one table, and where each item (by primary key) sits in them."""

    def __init__(self, table, signature):
        self.signature = signature
        self.views = {None: _View(table, None)}
        for index in table.all_indexes():
            hashes = [k for k in index.schema if k["KeyType"] == "HASH"]
            ranges = [k for k in index.schema if k["KeyType"] == "RANGE"]
            if len(hashes) == 1 and len(ranges) <= 1 and index.name not in self.views:
                self.views[index.name] = _View(table, index)
        self.placed = {}
        pending = {}
        for hash_set in list(table.items.values()):
            for item in list(hash_set.values()) if table.range_key_attr else [hash_set]:
                self.add((_sort_key(item.hash_key), _sort_key(item.range_key)), item, pending)
        for part, members in pending.values():
            members.sort(key=lambda member: member[0])  # keys are unique: items never compared
            part.keys = [key for key, _ in members]
            part.items = [item for _, item in members]

    def remove(self, pk):
        for view, partition, key in self.placed.pop(pk, ()):
            part = view.partitions[partition]
            if key is None:
                part.odd.discard(pk)
            else:
                at = bisect.bisect_left(part.keys, key)
                if at == len(part.keys) or part.keys[at] != key:
                    raise LookupError(f"query index lost {pk} in {partition}")
                del part.keys[at]
                del part.items[at]
            if not part.keys and not part.odd:
                del view.partitions[partition]

    def add(self, pk, item, pending=None):
        """Places an item in every view it belongs to. With `pending` (the first build), its
        sorted entries are gathered there, to be sorted once, instead of inserted one by one."""
        entries = []
        for view in self.views.values():
            place = view.place(item)
            if place is None:
                continue
            partition, key = place
            part = view.partitions.get(partition)
            if part is None:
                part = view.partitions[partition] = _Partition()
            if key is None:
                part.odd.add(pk)
            elif pending is not None:
                pending.setdefault(id(part), (part, []))[1].append((key, item))
            else:
                at = bisect.bisect_left(part.keys, key)
                part.keys.insert(at, key)
                part.items.insert(at, item)
            entries.append((view, partition, key))
        if entries:
            self.placed[pk] = entries


def _table_index(table):
    """The table's index, built now if it has none or its indexes changed since."""
    signature = _signature(table)
    index = table.__dict__.get(_QUERY_INDEX)
    if index is None or index.signature != signature:
        index = table.__dict__[_QUERY_INDEX] = _TableIndex(table, signature)
    return index


def _drop_query_index(table):
    table.__dict__.pop(_QUERY_INDEX, None)


def _replace(table, hash_key, range_key):
    """Re-place the item stored under a primary key (gone: only removed) in the table's index."""
    index = table.__dict__.get(_QUERY_INDEX)
    if index is None:
        return
    try:
        pk = (_sort_key(hash_key), _sort_key(range_key))
        index.remove(pk)
        item = _stored_item(table, hash_key, range_key)
        if item is not None:
            index.add(pk, item)
    except Exception:  # never a wrong answer: rebuilt by the next Query
        _drop_query_index(table)


_original_table_put_item = Table.put_item
_original_table_delete_item = Table.delete_item
_original_update_item = DynamoDBBackend.update_item
_original_query = Table.query


def _table_put_item(self, *args, **kwargs):
    item = _original_table_put_item(self, *args, **kwargs)
    _replace(self, item.hash_key, item.range_key)
    return item


def _table_delete_item(self, hash_key, range_key):
    try:
        return _original_table_delete_item(self, hash_key, range_key)
    finally:
        if self.range_key_attr is not None and not range_key:
            _drop_query_index(self)  # moto popped a whole partition
        else:
            _replace(self, hash_key, range_key)


def _update_item(self, table_name, key, *args, **kwargs):
    try:
        return _original_update_item(self, table_name, key, *args, **kwargs)
    finally:
        # The item was changed in place (or created), whether or not the update then failed.
        try:
            table = self.get_table(table_name)  # by name or ARN
        except Exception:
            table = None
        if table is not None and _QUERY_INDEX in table.__dict__:
            try:  # the key as moto's update_item reads it
                hash_key = DynamoType(key[table.hash_key_attr] if table.hash_key_attr in key else key)
                range_key = (
                    DynamoType(key[table.range_key_attr])
                    if table.hash_key_attr in key and table.range_key_attr in key
                    else None
                )
            except Exception:
                _drop_query_index(table)
            else:
                _replace(table, hash_key, range_key)


def _drop_region_indexes(handler):
    try:
        if handler._get_action() in _INDEX_KEEPING_ACTIONS:
            return
    except Exception:
        pass
    _forget_all_items()  # the items' cached JSON (see "DynamoDB reads") likewise
    try:
        tables = handler.dynamodb_backend.tables
    except Exception:
        return
    for table in list(tables.values()):
        _drop_query_index(table)


def _window(keys, comparison, bounds):
    """Positions [lo, hi) of `keys` whose range value (element 1) meets the key condition."""
    at = lambda key: key[1]  # noqa: E731
    if comparison == "=":
        return bisect.bisect_left(keys, bounds[0], key=at), bisect.bisect_right(keys, bounds[0], key=at)
    if comparison == "<":
        return 0, bisect.bisect_left(keys, bounds[0], key=at)
    if comparison == "<=":
        return 0, bisect.bisect_right(keys, bounds[0], key=at)
    if comparison == ">":
        return bisect.bisect_right(keys, bounds[0], key=at), len(keys)
    if comparison == ">=":
        return bisect.bisect_left(keys, bounds[0], key=at), len(keys)
    if comparison == "BETWEEN":
        lo = bisect.bisect_left(keys, bounds[0], key=at)
        return lo, max(lo, bisect.bisect_right(keys, bounds[1], key=at))
    # BEGINS_WITH on strings: a prefix's strings are contiguous in sorted order.
    kind, prefix = bounds[0]
    cut = len(prefix)
    head = lambda key: (key[1][0], key[1][1][:cut])  # noqa: E731
    return bisect.bisect_left(keys, (kind, prefix), key=head), bisect.bisect_right(keys, (kind, prefix), key=head)


def _query_plan(table, hash_key, range_comparison, range_objs, limit, exclusive_start_key,
                index_name, consistent_read, hash_key_conditions, range_key_conditions, filter_kwargs):
    """What the index answers, or None when only moto's own Query gives the exact answer."""
    if filter_kwargs or (range_key_conditions and len(range_key_conditions) > 1):
        return None
    if limit is not None and (type(limit) is not int or limit < 1):
        return None
    index = _table_index(table)
    if index_name:
        view = index.views.get(index_name)
        if view is None or (consistent_read and isinstance(view.index, GlobalSecondaryIndex)):
            return None  # unknown or multi-attribute index, or a refused read: moto says why
        if not hash_key_conditions or len(hash_key_conditions) != 1:
            return None
        attr, value = hash_key_conditions[0]
        if attr != view.hash_attr:
            return None
        partition_value = _key_part(value)
    else:
        view = index.views[None]
        partition_value = None if hash_key is None else _key_part(hash_key)
    if partition_value is None:
        return None
    part = view.partitions.get(partition_value)
    if part is None:
        return view, None, 0, 0, 0, 0
    if part.odd:
        return None
    keys = part.keys
    n = len(keys)
    # Types moto would compare: the range value's type must be the partition's one.
    range_kind = keys[0][1][0] if len(keys[0]) > 1 else None
    if len(keys[0]) > 1 and keys[-1][1][0] != range_kind:
        return None
    lo, hi = 0, n
    if range_comparison:
        name = range_key_conditions[-1][0] if range_key_conditions else None
        if view.range_attr is None or (name or view.range_attr) != view.range_attr:
            return None
        if range_comparison not in _RANGE_OPERATORS:
            return None
        bounds = [_key_part(obj) for obj in range_objs]
        if len(bounds) != (2 if range_comparison == "BETWEEN" else 1):
            return None
        if any(bound is None or bound[0] != range_kind for bound in bounds):
            return None
        if range_comparison == "BEGINS_WITH" and range_kind not in ("S", "B"):
            return None
        lo, hi = _window(keys, range_comparison, bounds)
    start = None
    if exclusive_start_key is not None:
        try:
            start = tuple(_key_part(DynamoType(exclusive_start_key[name])) for name in view.sort_attrs)
        except Exception:
            return None  # moto's own Query says what is wrong with it
        # moto compares the start key attribute by attribute: of the types stored, as here.
        if any(value is None or value[0] != stored[0] for value, stored in zip(start, keys[0])):
            return None
    return view, part, lo, hi, start, n


def _query(self, hash_key, range_comparison, range_objs, limit, exclusive_start_key, scan_index_forward,
           projection_expressions, index_name=None, consistent_read=False, filter_expression=None,
           hash_key_conditions=None, range_key_conditions=None, **filter_kwargs):
    plan = _query_plan(self, hash_key, range_comparison, range_objs, limit, exclusive_start_key,
                       index_name, consistent_read, hash_key_conditions, range_key_conditions, filter_kwargs)
    if plan is None:
        return _original_query(
            self, hash_key, range_comparison, range_objs, limit, exclusive_start_key, scan_index_forward,
            projection_expressions, index_name, consistent_read, filter_expression,
            hash_key_conditions=hash_key_conditions, range_key_conditions=range_key_conditions, **filter_kwargs,
        )
    view, part, lo, hi, start, n = plan
    results = []
    last_evaluated_key = None
    if part is not None:
        keys, items = part.keys, part.items
        # Positions [first, last) remain after the ExclusiveStartKey (moto skips the items
        # at or before it in the query's direction); [lo, hi) meet the range condition.
        if scan_index_forward is False:
            first, last = 0, (n if start is None else bisect.bisect_left(keys, start))
            matching = range(min(last, hi) - 1, max(first, lo) - 1, -1)
            after = range(max(first, lo) - 1, first - 1, -1)
        else:
            first, last = (0 if start is None else bisect.bisect_right(keys, start)), n
            matching = range(max(first, lo), min(last, hi))
            after = range(min(last, hi), last)
        # moto's loop: Limit and the 1 MB page counted on matching items. The items moto
        # looks at before the matching stretch change nothing (no result yet, none over
        # 1 MB); one after it ends the page with a LastEvaluatedKey if the page is full.
        result_size = 0
        for position in matching:
            item = items[position]
            size = _item_size(item)
            if len(results) == limit or result_size + size > RESULT_SIZE_LIMIT:
                last_evaluated_key = self._get_last_evaluated_key(results[-1], index_name)
                break
            results.append(item)
            result_size += size
        else:
            if results and len(after) > 0:
                if len(results) == limit:
                    last_evaluated_key = self._get_last_evaluated_key(results[-1], index_name)
                elif result_size + _MAX_ITEM_SIZE > RESULT_SIZE_LIMIT:
                    for position in after:
                        if result_size + _item_size(items[position]) > RESULT_SIZE_LIMIT:
                            last_evaluated_key = self._get_last_evaluated_key(results[-1], index_name)
                            break
    scanned_count = len(results)
    no_filter = filter_expression is None or type(filter_expression) is _OpDefault  # OpDefault: always True
    if no_filter and not projection_expressions and _projects_all(self, index_name):
        # Nothing below would change an item: the stored ones go to the answer, which only
        # reads them (as cached JSON, see "DynamoDB reads" below), under the DynamoDB lock.
        return results, scanned_count, last_evaluated_key
    results = copy.deepcopy(results)
    if index_name:
        index = self.get_index(index_name)
        results = [index.project(r) for r in results]
    if filter_expression is not None:
        results = [item for item in results if filter_expression.expr(item)]
    if projection_expressions:
        results = [r.project(projection_expressions) for r in results]
    return results, scanned_count, last_evaluated_key


Table.put_item = _table_put_item
Table.delete_item = _table_delete_item
Table.query = _query
DynamoDBBackend.update_item = _update_item

# --- DynamoDB writes: no re-parsing, no needless copies ----------------------------------

# An UpdateItem cost moto 4-5 ms for a node-sized item (2.4 KB, 30 attributes, nested
# maps; cProfile, in process): it tokenized and parsed the UpdateExpression twice (handler,
# backend), deep-copied the parsed tree with the generic copy.deepcopy (__reduce_ex__ and
# reconstruct per node) for validation, walked the tree ten times (one per validation
# step) with an isinstance against abstract classes for every node, deep-copied the whole
# stored item twice (the handler's "old" item, only ever turned into JSON; the backend's
# copy for a stream record, taken even when the table has no stream), and turned items
# into JSON by deep-copying every nested value once per nesting level. A PutItem built its
# Item re-summing the whole item's size for every attribute added (quadratic). The shim:
# - caches the parsed UpdateExpression tree per expression string (errors are not cached:
#   a bad expression is parsed again and raises the same error every time). Safe because
#   nothing writes to the parsed tree: the handlers only search it (find_clauses), and
#   moto's Validator deep-copies it before its steps replace nodes (validators.Validator);
# - makes that copy of the tree with a copier specialised for AST nodes (attributes copied
#   one by one, lists and shared nodes through deepcopy's memo, anything else by
#   copy.deepcopy): the same copy, without the reduce/reconstruct protocol;
# - walks the tree for each validation step as DepthFirstTraverser does, with each
#   isinstance answered once per node class (no Node class is registered virtually);
# - hands UpdateItem's handler, instead of a deep copy of the stored item, a snapshot of
#   that item's JSON taken at the same point: the handler only calls to_json on it, at
#   once, and Item.to_json builds fresh containers all the way down;
# - skips the backend's stream-record copy of the item when the table has no stream
#   (moto uses that copy for nothing else);
# - builds DynamoType.to_regular_json (the nested values of Item.to_json) in one pass
#   instead of deep-copying the value, then each nested value again: the same JSON;
# - builds an Item adding up its size as attributes are added: the same 405000 bound,
#   checked at the same attribute, raising the same ItemSizeTooLarge; and sizes a map
#   without rebuilding each of its values first (DynamoType.size): the same sizes.
# test/integration/local-dynamodb-writes.test.ts replays one seeded random sequence of
# writes (valid and invalid expressions, conditions met and not, ReturnValues, cancelled
# transactions, projections) against plain moto and this shim and compares every answer,
# error and the final tables.

from moto.dynamodb.exceptions import ItemSizeTooLarge as _ItemSizeTooLarge
from moto.dynamodb.models.dynamo_type import Item as _Item
from moto.dynamodb.models.dynamo_type import LimitedSizeDict as _LimitedSizeDict
from moto.dynamodb.models.utilities import bytesize as _bytesize
from moto.dynamodb.parsing import ast_nodes as _ast_nodes
from moto.dynamodb.parsing import validators as _validators
from moto.dynamodb.parsing.expressions import UpdateExpressionParser as _UpdateExpressionParser
import moto.dynamodb.responses as _dynamodb_responses

_PARSED_LIMIT = 1024
_parsed_updates = {}
_original_update_make = _UpdateExpressionParser.make.__func__


def _update_make(cls, expression_str):
    if cls is not _UpdateExpressionParser or not isinstance(expression_str, str):
        return _original_update_make(cls, expression_str)
    tree = _parsed_updates.get(expression_str)
    if tree is None:
        tree = _original_update_make(cls, expression_str)  # raises for a bad expression
        if len(_parsed_updates) >= _PARSED_LIMIT:
            _parsed_updates.clear()
        _parsed_updates[expression_str] = tree
    return tree


_UpdateExpressionParser.make = classmethod(_update_make)

# Request parameters: moto parses every request body with json.loads and then walks the
# result against the operation's botocore model (`RequestParser._parse_shape`), about a
# quarter of moto's time for a small DynamoDB write. For the data-plane actions the walk
# changes nothing but three things: it base64-decodes blobs (`B`, `BS`), drops members
# whose value is null, and drops members the model does not know. The shim takes
# json.loads's answer as the parameters when none of those can occur: a JSON object with
# no `"B"`/`"BS"` string and no `null` in its text (a conservative test: such text in an
# attribute's value or name also takes moto's walk), from a client that sends only
# modelled members, as the AWS SDKs do. Anything else (blobs, nulls, an empty or
# malformed body, control-plane actions with timestamps) goes through moto's parser.
_JSON_PARAMETER_ACTIONS = frozenset({
    "GetItem", "PutItem", "UpdateItem", "DeleteItem", "Query", "Scan", "BatchGetItem",
    "BatchWriteItem", "TransactGetItems", "TransactWriteItems",
})
_original_dynamo_parse_parameters = DynamoHandler.parse_parameters


def _dynamo_parse_parameters(self, request):
    body = request.data
    if (
        isinstance(body, bytes)
        and body.startswith(b"{")
        and b"null" not in body
        and b'"B"' not in body
        and b'"BS"' not in body
        and self._get_action() in _JSON_PARAMETER_ACTIONS
    ):
        try:
            parsed = json.loads(body)
        except ValueError:
            parsed = None
        if isinstance(parsed, dict):
            self.params = parsed
            return
    _original_dynamo_parse_parameters(self, request)


DynamoHandler.parse_parameters = _dynamo_parse_parameters

# Condition expressions: moto lexes each one from its text on every use, and a
# transaction's conditional Put uses it three times (validation, the transaction, the
# table's put). The lexer's answer depends only on the text, and its nodes are immutable
# tuples the later stages read but never change: the shim keeps each text's nodes (a
# bad expression raises as before and is not kept) and hands out a fresh deque of them.
from moto.dynamodb.comparisons import ConditionExpressionParser as _ConditionExpressionParser  # noqa: E402
from collections import deque as _deque  # noqa: E402

_lexed_conditions = {}
_original_lex_condition = _ConditionExpressionParser._lex_condition_expression


def _lex_condition_expression(self):
    text = self.condition_expression
    nodes = _lexed_conditions.get(text)
    if nodes is None:
        nodes = tuple(_original_lex_condition(self))
        if len(_lexed_conditions) >= _PARSED_LIMIT:
            _lexed_conditions.clear()
        _lexed_conditions[text] = nodes
    return _deque(nodes)


_ConditionExpressionParser._lex_condition_expression = _lex_condition_expression

# And within one request, moto parses the same condition again at each stage (a
# transaction's conditional Put: validation, the transaction, the table's put), each
# time with the same text and the same names and values objects of the request. The
# shim keeps the request's parses, keyed by the text and the identity of those objects
# (an empty mapping counts as none: such an expression uses no names or values), and
# answers a repeat with the same tree: its nodes are set once, at construction, and only
# read when evaluated. What a parse found (`expr_attr_names_found`, which moto's callers
# extend in place) is copied into each parser. `_dynamo_call_action` empties the memo
# at the start of every DynamoDB request, under the lock that runs them one at a time.
_request_conditions = {}
_original_condition_parse = _ConditionExpressionParser.parse


def _condition_parse(self):
    names = self.expression_attribute_names or None
    values = self.expression_attribute_values or None
    key = (self.condition_expression, id(names), id(values))
    known = _request_conditions.get(key)
    if known is not None and known[0] is names and known[1] is values:
        _, _, tree, names_found, values_found = known
        self.expr_attr_names_found.extend(names_found)
        self.expr_attr_values_found.extend(values_found)
        return tree
    tree = _original_condition_parse(self)  # raises for a bad expression: nothing kept
    _request_conditions[key] = (
        names, values, tree, list(self.expr_attr_names_found), list(self.expr_attr_values_found),
    )
    return tree


_ConditionExpressionParser.parse = _condition_parse

_AstNode = _ast_nodes.Node
_IMMUTABLE = (str, int, float, bool, type(None))


def _copy_ast(value, memo):
    """copy.deepcopy(value, memo) for a parsed expression tree, specialised for its nodes."""
    kind = type(value)
    if kind in _IMMUTABLE:
        return value
    if kind is list:
        found = memo.get(id(value))
        if found is not None:
            return found
        result = []
        memo[id(value)] = result
        result.extend(_copy_ast(element, memo) for element in value)
        return result
    if isinstance(value, _AstNode) and getattr(kind, "__deepcopy__", None) is None:
        found = memo.get(id(value))
        if found is not None:
            return found
        result = object.__new__(kind)
        memo[id(value)] = result
        result.__dict__.update({name: _copy_ast(attr, memo) for name, attr in value.__dict__.items()})
        return result
    return copy.deepcopy(value, memo)


def _validators_deepcopy(value, memo=None):
    return _copy_ast(value, {} if memo is None else memo)


_validators.deepcopy = _validators_deepcopy


_is_node_type = {}  # type -> isinstance(x, Node) for x of that type
_is_processed = {}  # (the processor's node classes, type) -> isinstance(node, those classes)


def _traverse(self, node):
    """DepthFirstTraverser.traverse: the same walk, each isinstance answered once per type."""
    targets = self.nodes_to_be_processed()
    pre_processing = self.pre_processing_of_child
    hooked = type(self).pre_processing_of_child is not _DepthFirstTraverser.pre_processing_of_child

    def visit(node, child_id):
        kind = type(node)
        is_node = _is_node_type.get(kind)
        if is_node is None:
            is_node = _is_node_type[kind] = isinstance(node, _AstNode)
        if is_node:
            parent_node = node.parent
            if node.children is not None:
                for i, child_node in enumerate(node.children):
                    if hooked:
                        pre_processing(node, i)
                    visit(child_node, i)
            processed = _is_processed.get((targets, kind))
            if processed is None:
                processed = _is_processed[(targets, kind)] = isinstance(node, targets)
            if processed:
                node = self.process(node)
                node.parent = parent_node
                if parent_node:
                    parent_node.children[child_id] = node
        return node

    return visit(node, -1)


_DepthFirstTraverser = _ast_nodes.DepthFirstTraverser
_DepthFirstTraverser.traverse = _traverse


class _ItemJsonSnapshot:
    """What UpdateItem's handler needs of the item as it was: its JSON."""

    __slots__ = ("_json",)

    def __init__(self, item):
        self._json = item.to_json()

    def to_json(self, root_attr_name="Attributes"):
        if root_attr_name == "Attributes":
            return self._json
        return {root_attr_name: self._json["Attributes"]}


class _ResponsesCopy:
    """`copy` for moto's DynamoDB handlers (UpdateItem's only deep copy is of the old item)."""

    @staticmethod
    def deepcopy(value, memo=None):
        if type(value) is _Item and memo is None:
            return _ItemJsonSnapshot(value)
        return copy.deepcopy(value, memo)

    copy = staticmethod(copy.copy)


_dynamodb_responses.copy = _ResponsesCopy

_no_stream_copy = threading.local()
_table_keeping_deepcopy = _TableKeepingCopy.deepcopy


def _models_deepcopy(value, memo=None):
    if type(value) is _Item and getattr(_no_stream_copy, "active", False):
        return value  # update_item's copy for the stream record, which it then ignores
    return _table_keeping_deepcopy(value, memo)


_TableKeepingCopy.deepcopy = staticmethod(_models_deepcopy)


def _update_item_without_stream_copy(self, table_name, key, *args, **kwargs):
    try:
        table = self.get_table(table_name)
    except Exception:
        table = None
    outer = getattr(_no_stream_copy, "active", False)
    _no_stream_copy.active = table is not None and table.stream_shard is None
    try:
        return _update_item(self, table_name, key, *args, **kwargs)
    finally:
        _no_stream_copy.active = outer


DynamoDBBackend.update_item = _update_item_without_stream_copy


def _regular_value(value):
    if isinstance(value, DynamoType):
        return value.to_regular_json()
    if type(value) in _IMMUTABLE or type(value) is bytes:
        return value
    return copy.deepcopy(value)


def _to_regular_json(self):
    """DynamoType.to_regular_json in one pass (moto deep-copies each level again)."""
    value = self.value
    if isinstance(value, dict):
        value = {key: _regular_value(nested) for key, nested in value.items()}
    elif isinstance(value, list):
        value = [_regular_value(nested) for nested in value]
    else:
        value = copy.deepcopy(value)
    if self.is_binary() and isinstance(value, str):
        value = base64.b64decode(value)
    return {self.type: value}


DynamoType.to_regular_json = _to_regular_json


def _item_init(self, hash_key, range_key, attrs):
    """Item.__init__ with the item size summed as it grows (moto re-sums the whole item for
    every attribute added: quadratic). The same bound (405000), checked at the same points."""
    self.hash_key = hash_key
    self.range_key = range_key
    limited = _LimitedSizeDict()
    size = 0
    for key, value in attrs.items():  # distinct keys: nothing is replaced
        value = DynamoType(value)
        added = _bytesize(key) + value.size()
        if size + added > 405000:
            raise _ItemSizeTooLarge
        dict.__setitem__(limited, key, value)
        size += added
    self.attrs = limited


_Item.__init__ = _item_init


_original_size = DynamoType.size


def _dynamo_size(self):
    """DynamoType.size without re-wrapping every map value: moto sized a map's value as
    DynamoType(value).size(), which rebuilds the value's whole subtree first; a value that
    is already a DynamoType (always, as DynamoType wraps nested values) has the same size."""
    if self.type == "M":
        return sum(
            _bytesize(key) + (nested.size() if type(nested) is DynamoType else DynamoType(nested).size())
            for key, nested in self.value.items()
        )
    return _original_size(self)


DynamoType.size = _dynamo_size




# --- DynamoDB reads: each stored item's JSON made once ----------------------------------

# A list page (Query, Limit 101, node-sized items) cost moto about 90 ms of CPU: it deep-
# copied every item of the page (45 % of the request), turned each copy back into plain
# dicts with dynamo_to_dict (25 %), summed each item's size attribute by attribute to
# count the 1 MB page (18 %), then wrote the JSON. A GetItem paid dynamo_to_dict and JSON
# for its item likewise. The shim:
# - answers a Query without copying its items when nothing would change them (no
#   FilterExpression, no ProjectionExpression, an index projecting ALL): the answer only
#   reads them, under the DynamoDB lock, and is written before the lock is released;
# - keeps, on each stored item's attribute dict, the item's JSON (exactly what
#   json.dumps(dynamo_to_dict(attrs)) writes) and its size, made on first read;
# - writes a read's answer (GetItem, BatchGetItem, Query, Scan, and the write answers
#   that return items) by joining those fragments, the rest with json.dumps: the same
#   bytes as json.dumps of the whole answer, which is what the shim wrote before.
# The cache is dropped wherever an item can change in place: DynamoDBBackend.update_item
# (UpdateItem, transactions' Update; in a finally, so a failed update too) drops the
# item's entry; PutItem, BatchWriteItem and restores store new Item objects (new dicts,
# no entry); any DynamoDB action outside _INDEX_KEEPING_ACTIONS (PartiQL, imports,
# restores ...) drops every entry at once (an epoch). An entry also names the dict it was
# made for (a deep copy of the dict carries it along, and does not use it). An item with
# binary attributes is not cached: moto's own serializer writes those answers.

_READ_CACHE = "_metalplane_json"
_read_epoch = [0]
_fast_action = threading.local()


def _forget_all_items():
    _read_epoch[0] += 1


def _forget_item(item):
    if item is not None:
        item.attrs.__dict__.pop(_READ_CACHE, None)


def _cache_entry(attrs):
    entry = attrs.__dict__.get(_READ_CACHE)
    if entry is not None and entry[0] == id(attrs) and entry[1] == _read_epoch[0]:
        return entry
    return None


def _item_size(item):
    """item.size(), kept with the item's JSON."""
    attrs = item.attrs
    entry = _cache_entry(attrs)
    if entry is None:
        entry = attrs.__dict__[_READ_CACHE] = [id(attrs), _read_epoch[0], None, item.size()]
    elif entry[3] is None:
        entry[3] = item.size()
    return entry[3]


def _attrs_json(attrs):
    """json.dumps(dynamo_to_dict(attrs)), kept on the dict (TypeError for binary values)."""
    entry = _cache_entry(attrs)
    if entry is not None and entry[2] is not None:
        return entry[2]
    text = json.dumps(_dynamo_to_dict(attrs))  # raises TypeError for bytes: not kept
    if entry is None:
        attrs.__dict__[_READ_CACHE] = [id(attrs), _read_epoch[0], text, None]
    else:
        entry[2] = text
    return text


def _encode(value):
    """json.dumps(dynamo_to_dict(value)), item dicts taken from their cached JSON."""
    kind = type(value)
    if kind is _LimitedSizeDict:
        return _attrs_json(value)
    if kind is dict:
        return "{" + ", ".join(json.dumps(key) + ": " + _encode(nested) for key, nested in value.items()) + "}"
    if kind is list:
        return "[" + ", ".join([_encode(nested) for nested in value]) + "]"
    return json.dumps(_dynamo_to_dict(value))


from moto.dynamodb.models.utilities import dynamo_to_dict as _dynamo_to_dict  # noqa: E402

_OriginalDynamoResult = _dynamodb_responses.DynamoResult


class _CachedJsonResult(_OriginalDynamoResult):
    """An answer of the actions below, kept as the handler built it (items as stored) and
    written with the items' cached JSON. Other actions' DynamoResults are moto's own."""

    def __init__(self, result):  # noqa: D107
        if getattr(_fast_action, "active", False):
            self._result = result
            self._raw = True
        else:
            super().__init__(result)
            self._raw = False

    def execute_result(self, context):
        if self._raw:
            try:
                body = _encode(_in_shape_order(self._result, context))
            except TypeError:  # binary attributes: moto's own serializer encodes them
                self._result, self._raw = _dynamo_to_dict(self._result), False
            else:
                return 200, {"Content-Type": "application/x-amz-json-1.0"}, body
        return _OriginalDynamoResult.execute_result(self, context)


_dynamodb_responses.DynamoResult = _CachedJsonResult


def _projects_all(table, index_name):
    """Whether the index (if any) hands its items over unchanged (SecondaryIndex.project)."""
    if not index_name:
        return True
    try:
        projection = table.get_index(index_name).projection
    except Exception:
        return False
    return not projection or projection.get("ProjectionType") not in ("KEYS_ONLY", "INCLUDE")


def _update_item_forgetting(self, table_name, key, *args, **kwargs):
    try:
        return _update_item_without_stream_copy(self, table_name, key, *args, **kwargs)
    finally:
        # The stored item was changed in place (or created), whether or not the update failed.
        try:
            table = self.get_table(table_name)
            hash_key = DynamoType(key[table.hash_key_attr] if table.hash_key_attr in key else key)
            range_key = (
                DynamoType(key[table.range_key_attr])
                if table.hash_key_attr in key and table.range_key_attr in key
                else None
            )
            _forget_item(_stored_item(table, hash_key, range_key))
        except Exception:
            _forget_all_items()


DynamoDBBackend.update_item = _update_item_forgetting


# --- S3 ranged GETs -----------------------------------------------------------------------

# moto answers a ranged GET by reading the whole object out of its spooled temporary file,
# then slicing: each 8 MiB range of a 2 GiB object cost a 2 GiB read and copy (parallel
# ranged downloads, as `aws s3 cp` and the agent make, crawled at a few MiB/s and held
# gigabytes). During a ranged GET the key's value is a stand-in that reads only the slice.

_ranged_get = threading.local()


class _KeyBytes:
    """A key's value as moto's range handling uses it: a length, and slices read on demand."""

    __slots__ = ("key",)

    def __init__(self, key):
        self.key = key

    def __len__(self):
        return self.key.size

    def __getitem__(self, index):
        start, stop, _ = index.indices(self.key.size)
        with self.key.lock:
            self.key._value_buffer.seek(start)
            return self.key._value_buffer.read(max(0, stop - start))


_original_key_value = s3_models.FakeKey.value


def _key_value(self):
    if getattr(_ranged_get, "active", False):
        return _KeyBytes(self)
    return _original_key_value.fget(self)


s3_models.FakeKey.value = property(_key_value, _original_key_value.fset)
_original_key_response = S3Response.key_response


def _key_response(self, request, full_url, headers):
    if request.method != "GET" or not request.headers.get("range"):
        return _original_key_response(self, request, full_url, headers)
    _ranged_get.active = True
    try:
        status, response_headers, content = _original_key_response(self, request, full_url, headers)
    finally:
        _ranged_get.active = False
    if isinstance(content, _KeyBytes):  # not a range moto serves (several, or unparsable): all of it
        content = content[:]
    return status, response_headers, content


S3Response.key_response = _key_response


# --- HTTP keep-alive ----------------------------------------------------------------------

# A socket at end of stream: after an answer werkzeug drains "what is left" of the request
# from its connection; pointed at this, that drain ends at once instead of eating the next
# request of a kept-alive connection.
_drained, _drained_peer = socket.socketpair()
_drained_peer.close()


# --- DynamoDB requests: straight to moto's handler ----------------------------------------

# A GetItem spent most of its time in moto server's plumbing, not in DynamoDB: Flask's
# request context, URL routing, before/after-request hooks, its Response machinery and
# flask-cors (about a quarter of the request), werkzeug writing the status and headers
# and then the body in two sends, and an access-log line per request. A DynamoDB JSON
# call (POST /, X-Amz-Target DynamoDB_20120810.*, routed by moto's own dispatcher to the
# dynamodb backend, no Origin header) now goes from the dispatcher straight to what
# Flask would have called, DynamoHandler.dispatch, with the same request object (moto's
# BackendRequest), and its answer is built as moto's Flask view builds it (the same
# Response class, headers and status) plus the one header flask-cors adds to a request
# without Origin (Access-Control-Allow-Origin: *). The handler, its parsing, validation,
# isolation lock and error answers are moto's, unchanged. Any other request (other
# services, moto-api, a CORS request with an Origin) goes through Flask as before.

from flask import Response as _FlaskResponse  # noqa: E402
from moto.core.request import normalize_request as _normalize_request  # noqa: E402
from moto.moto_api import recorder as _recorder  # noqa: E402
from botocore.exceptions import ClientError as _ClientError  # noqa: E402

_DYNAMODB_TARGET = "DynamoDB_20120810."


def _is_dynamodb_call(environ):
    return (
        environ.get("REQUEST_METHOD") == "POST"
        and environ.get("PATH_INFO") == "/"
        and environ.get("HTTP_X_AMZ_TARGET", "").startswith(_DYNAMODB_TARGET)
        and "HTTP_ORIGIN" not in environ
    )


def _dynamodb_app(environ, start_response):
    """What moto's Flask app does for POST / on the dynamodb backend, without Flask."""
    request = _normalize_request(werkzeug_app.BackendRequest(environ))
    _recorder._record_request(request)
    try:
        result = DynamoHandler.dispatch(request, request.raw_url, dict(request.headers))
    except _ClientError as exc:
        result = 400, {}, exc.response["Error"]["Message"]
    if len(result) == 3:
        status, headers, content = result
    else:
        status, headers, content = 200, {}, result
    response = _FlaskResponse(response=content, status=status, headers=headers)
    response.headers["Access-Control-Allow-Origin"] = "*"  # flask-cors, request without Origin
    return response(environ, start_response)


_original_dispatcher_call = DomainDispatcherApplication.__call__


def _dispatcher_call(self, environ, start_response):
    if _is_dynamodb_call(environ):
        app = self.get_application(environ)  # moto's own routing decides
        if getattr(app, "service", None) == "dynamodb":
            return _dynamodb_app(environ, start_response)
        return app(environ, start_response)
    return _original_dispatcher_call(self, environ, start_response)


DomainDispatcherApplication.__call__ = _dispatcher_call


class _KeepAliveRequestHandler(werkzeug_app.MotoRequestHandler):
    """moto's request handler, keeping the connection for requests of known length."""

    _keep_alive = False
    _quiet = False

    def setup(self):
        super().setup()
        # An answer goes out in several writes (status and headers, then the body): without
        # this, Nagle holds the body until the client's delayed ACK, 40 ms a request.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def run_wsgi(self):
        length = self.headers.get("Content-Length")
        self._keep_alive = (
            not self.close_connection
            and "Transfer-Encoding" not in self.headers
            and "Expect" not in self.headers
            and (length is None or length.isdigit())
        )
        if not self._keep_alive:
            return super().run_wsgi()
        connection, rfile = self.connection, self.rfile
        self.rfile = io.BytesIO(rfile.read(int(length)) if length else b"")
        self.connection = _drained
        # A DynamoDB call's answer (small, complete before it is written) goes out in one
        # send instead of two (status and headers, then body), and logs no access line.
        self._quiet = self.command == "POST" and self.headers.get("X-Amz-Target", "").startswith(_DYNAMODB_TARGET)
        wfile = self.wfile
        if self._quiet:
            self.wfile = io.BytesIO()
        try:
            return super().run_wsgi()
        finally:
            self.connection, self.rfile = connection, rfile
            if self._quiet:
                answer, self.wfile, self._quiet = self.wfile.getvalue(), wfile, False
                wfile.write(answer)

    def make_environ(self):
        # moto's override walks the headers twice more to keep the spelling of underscored
        # S3 metadata names (x-amz-meta-my_key); with no underscore in any header name it
        # adds only an empty map of them (the SDK's calls: every DynamoDB and SQS request).
        if any("_" in name for name in self.headers.keys()):
            return super().make_environ()
        environ = werkzeug_app.WSGIRequestHandler.make_environ(self)
        environ[werkzeug_app.PRESERVED_HEADER_NAMES_ENVIRON_KEY] = {}
        return environ

    def log_request(self, *args, **kwargs):
        if not self._quiet:
            super().log_request(*args, **kwargs)

    def send_header(self, keyword, value):
        if self._keep_alive and keyword.lower() == "connection" and value.lower() == "close":
            return
        super().send_header(keyword, value)


moto_server_module.MotoRequestHandler = _KeepAliveRequestHandler


def _instrument(stats_path, profile_path):
    """Diagnostics for benchmarks (env METALPLANE_MOTO_STATS / METALPLANE_MOTO_PROFILE):
    per-action request counts and seconds (JSON), and a cProfile of every request
    (pstats), written when moto exits."""
    import atexit
    import cProfile
    import pstats
    import time

    lock = threading.Lock()
    counts = {}
    merged = []
    original_call = DomainDispatcherApplication.__call__

    def call(self, environ, start_response):
        target = environ.get("HTTP_X_AMZ_TARGET") or environ.get("PATH_INFO", "?")
        action = target.rsplit(".", 1)[-1]
        body = environ.get("wsgi.input")
        if action == "Query" and isinstance(body, io.BytesIO):
            action += ":" + str(json.loads(body.getvalue() or b"{}").get("IndexName"))
        profiler = cProfile.Profile() if profile_path else None
        started = time.perf_counter()
        if profiler:
            profiler.enable()
        try:
            return original_call(self, environ, start_response)
        finally:
            if profiler:
                profiler.disable()
            elapsed = time.perf_counter() - started
            with lock:
                entry = counts.setdefault(action, [0, 0.0])
                entry[0] += 1
                entry[1] += elapsed
                if profiler:
                    if merged:
                        merged[0].add(profiler)
                    else:
                        merged.append(pstats.Stats(profiler))

    def dump():
        with lock:
            if stats_path:
                with open(stats_path, "w") as out:
                    json.dump({k: {"count": v[0], "seconds": round(v[1], 3)} for k, v in counts.items()}, out, indent=1)
            if profile_path and merged:
                merged[0].dump_stats(profile_path)

    DomainDispatcherApplication.__call__ = call
    atexit.register(dump)


if __name__ == "__main__":
    import os

    if os.environ.get("METALPLANE_MOTO_STATS") or os.environ.get("METALPLANE_MOTO_PROFILE"):
        _instrument(os.environ.get("METALPLANE_MOTO_STATS"), os.environ.get("METALPLANE_MOTO_PROFILE"))
    main(sys.argv[1:])
