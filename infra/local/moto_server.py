"""The moto emulator as the local stack runs it: moto's own server, with DynamoDB transactions
made atomic and cheap.

Two properties of moto 5 (pinned in bootstrap.sh) would otherwise make the concurrency tests
meaningless or slow:

1. Requests are served on threads and the DynamoDB backend takes no lock, so a
   TransactWriteItems can interleave with other writes; worse, a cancelled transaction rolls back
   by restoring a snapshot of the whole table, wiping out writes other threads made meanwhile.
   Here every DynamoDB backend call holds one lock, so each call is atomic, as DynamoDB's are.
2. That snapshot is a deep copy of the whole table (stream records included) for every item of
   every transaction, so transactions slow down as the table grows (32/s at 1,000 items). Here a
   transaction saves only the items it touches and the stream's length, and a cancellation puts
   exactly those back.

Usage is moto_server's: python moto_server.py -H 127.0.0.1 -p 4566
"""

import copy
import functools
import sys
import threading

import moto.dynamodb.models as dynamodb_models
from moto.dynamodb.models import DynamoDBBackend
from moto.dynamodb.models.dynamo_type import DynamoType
from moto.dynamodb.models.table import Table
from moto.server import main

_LOCK = threading.RLock()


def _serialized(method):
    @functools.wraps(method)
    def locked(*args, **kwargs):
        with _LOCK:
            return method(*args, **kwargs)

    return locked


for _name, _member in list(vars(DynamoDBBackend).items()):
    if callable(_member) and not _name.startswith("_"):
        setattr(DynamoDBBackend, _name, _serialized(_member))


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

if __name__ == "__main__":
    sys.exit(main())
