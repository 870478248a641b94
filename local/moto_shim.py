"""moto server, with its DynamoDB transactions made item-scoped.

moto's TransactWriteItems deep-copies every table a transaction touches, to roll back
on failure. That costs time in proportion to the whole table (seconds with 10,000
nodes), and it races with concurrent writes: a deepcopy taken while another request
thread inserts an item fails ("dictionary changed size during iteration", a 500), and
a rollback restores the whole table, losing writes other requests made meanwhile.

This shim snapshots only the items the transaction names, serializes transactions
with one lock, and on failure restores exactly those items: DynamoDB's own semantics,
at a cost independent of table size.

moto also serializes data-plane answers (Query, GetItem ...) through its generic,
model-driven serializer, which walks every attribute of every item: about 10 ms per
node-sized item, a second for a 100-node page. Those answers are already DynamoDB JSON,
so the shim writes them with json.dumps, as DynamoDB's wire protocol (JSON 1.0) is.

Finally, every Query on an index sorts the whole table, then the matches, comparing
moto's DynamoType objects (each comparison re-parses the value): 1.3 s for a 100-node
page with 10,000 nodes stored. The shim sorts by a plain (type, value) key instead —
the same order DynamoDB defines (strings and binaries bytewise, numbers numerically).
And one SQS fix: when several in-flight messages of one FIFO group time out together,
moto releases them one by one while scanning, so the group counts as busy until the
last of them is reached — and the *last* is delivered first, out of order. The shim
releases every timed-out message before moto scans, as SQS does (order kept per group).
Everything else is moto as released.
Usage: the same arguments as moto_server (local/moto.ts starts it).
"""

import copy
import json
import sys
import threading
from decimal import Decimal

import moto.dynamodb.models as dynamodb_models
from moto.dynamodb.models import DynamoDBBackend
from moto.dynamodb.models.table import Table
from moto.dynamodb.responses import DynamoHandler, DynamoResult
from moto.server import main
from moto.sqs.models import SQSBackend

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
        return 200, {"Content-Type": "application/x-amz-json-1.0"}, json.dumps(self._result)


def _fast(method):
    def wrapper(self, *args, **kwargs):
        result = method(self, *args, **kwargs)
        return _JsonResult(result.result) if isinstance(result, DynamoResult) else result

    wrapper.__name__ = method.__name__
    wrapper.__wrapped__ = method
    return wrapper


for _name in ("query", "get_item", "batch_get_item", "scan"):
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


_original_receive = SQSBackend.receive_message


def _receive_message(self, queue_name, *args, **kwargs):
    queue = self.get_queue(queue_name)
    for message in list(queue.pending_messages):
        if message.visible:
            queue.pending_messages.discard(message)
    return _original_receive(self, queue_name, *args, **kwargs)


SQSBackend.receive_message = _receive_message
Table.all_items = _all_items
Table.sorted_items = _sorted_items
dynamodb_models.copy = _TableKeepingCopy
DynamoDBBackend.transact_write_items = _transact_write_items



def _instrument(stats_path, profile_path):
    """Diagnostics for benchmarks (env METALPLANE_MOTO_STATS / METALPLANE_MOTO_PROFILE):
    per-action request counts and seconds (JSON), and a cProfile of every request
    (pstats), written when moto exits."""
    import atexit
    import cProfile
    import pstats
    import time

    from moto.server import DomainDispatcherApplication

    lock = threading.Lock()
    counts = {}
    merged = []
    original_call = DomainDispatcherApplication.__call__

    def call(self, environ, start_response):
        target = environ.get("HTTP_X_AMZ_TARGET") or environ.get("PATH_INFO", "?")
        action = target.rsplit(".", 1)[-1]
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
