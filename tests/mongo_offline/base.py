"""django-mongodb-backend's DatabaseWrapper with a recording stub instead of a MongoClient."""

from __future__ import annotations

import json
import os
import threading
from dataclasses import dataclass, field
from typing import Any

from bson import ObjectId, json_util
from django_mongodb_backend import base

# The server version the stub reports: the oldest the compose stack and the README support.
SERVER_VERSION = [7, 0, 0, 0]
# Set to a file path to append every recorded operation as one JSON line (for a parent process).
LOG_PATH_ENV = "MONGO_OFFLINE_LOG"
STANDALONE_ENV = "MONGO_OFFLINE_STANDALONE"

_lock = threading.Lock()
operations: list[dict[str, Any]] = []


def record(target: str, op: str, *args: Any, **kwargs: Any) -> None:
    entry = {"target": target, "op": op, "args": args, "kwargs": {k: v for k, v in kwargs.items() if k != "session"}}
    with _lock:
        operations.append(entry)
        path = os.environ.get(LOG_PATH_ENV)
        if path:
            with open(path, "a") as log:
                log.write(json_util.dumps(entry, default=repr) + "\n")


class EmptyCursor:
    """What aggregate() returns for a collection with no documents."""

    alive = False

    def __iter__(self) -> EmptyCursor:
        return self

    def __next__(self) -> dict:
        raise StopIteration

    next = __next__

    def batch_size(self, size: int) -> EmptyCursor:
        return self

    def close(self) -> None:
        pass


@dataclass
class Result:
    inserted_ids: list[Any] = field(default_factory=list)
    matched_count: int = 0
    modified_count: int = 0
    deleted_count: int = 0
    upserted_id: Any = None


class Collection:
    def __init__(self, database: Database, name: str) -> None:
        self.database, self.name = database, name

    def _record(self, op: str, *args: Any, **kwargs: Any) -> None:
        record(self.name, op, *args, **kwargs)

    def aggregate(self, pipeline: list[dict], **kwargs: Any) -> EmptyCursor:
        self._record("aggregate", pipeline, **kwargs)
        return EmptyCursor()

    def insert_many(self, documents: list[dict], **kwargs: Any) -> Result:
        self._record("insert_many", documents, **kwargs)
        return Result(inserted_ids=[doc.get("_id", ObjectId()) for doc in documents])

    def update_many(self, criteria: dict, update: Any, **kwargs: Any) -> Result:
        self._record("update_many", criteria, update, **kwargs)
        return Result()

    def delete_many(self, criteria: dict, **kwargs: Any) -> Result:
        self._record("delete_many", criteria, **kwargs)
        return Result()

    def find_one_and_update(self, criteria: dict, update: Any, **kwargs: Any) -> None:
        self._record("find_one_and_update", criteria, update, **kwargs)

    def bulk_write(self, requests: list[Any], **kwargs: Any) -> Result:
        self._record("bulk_write", [repr(r) for r in requests], **kwargs)
        return Result()

    def create_indexes(self, indexes: list[Any], **kwargs: Any) -> list[str]:
        specs = [index.document for index in indexes]
        self._record("create_indexes", json.loads(json_util.dumps(specs)), **kwargs)
        return [spec["name"] for spec in specs]

    def drop_index(self, name: str, **kwargs: Any) -> None:
        self._record("drop_index", name, **kwargs)

    def index_information(self, **kwargs: Any) -> dict:
        return {}

    def list_search_indexes(self, *args: Any, **kwargs: Any) -> list:
        return []

    def drop(self, **kwargs: Any) -> None:
        self._record("drop", **kwargs)
        self.database.collections.discard(self.name)


class Database:
    def __init__(self, name: str) -> None:
        self.name = name
        self.collections: set[str] = set()

    def __getitem__(self, name: str) -> Collection:
        return Collection(self, name)

    get_collection = __getitem__

    def create_collection(self, name: str, **kwargs: Any) -> Collection:
        record(name, "create_collection", **kwargs)
        self.collections.add(name)
        return Collection(self, name)

    def list_collections(self, **kwargs: Any) -> list[dict]:
        return [{"name": name} for name in sorted(self.collections)]

    def list_collection_names(self, **kwargs: Any) -> list[str]:
        return sorted(self.collections)

    def drop_collection(self, name: str, **kwargs: Any) -> None:
        record(name, "drop_collection")
        self.collections.discard(name)

    def command(self, command: str | dict, *args: Any, **kwargs: Any) -> dict:
        # "hello" from a replica set member (transactions available, as in compose), or from a
        # standalone server when STANDALONE_ENV is set.
        if os.environ.get(STANDALONE_ENV):
            return {"ok": 1, "isWritablePrimary": True}
        return {"ok": 1, "setName": "rs0", "isWritablePrimary": True}


class Session:
    def start_transaction(self) -> None:
        record("session", "start_transaction")

    def commit_transaction(self) -> None:
        record("session", "commit_transaction")

    def abort_transaction(self) -> None:
        record("session", "abort_transaction")

    def end_session(self) -> None:
        pass


class Client:
    def __init__(self) -> None:
        self._databases: dict[str, Database] = {}

    def __getitem__(self, name: str) -> Database:
        return self._databases.setdefault(name, Database(name))

    @property
    def admin(self) -> Database:
        return self["admin"]

    def server_info(self) -> dict:
        return {"versionArray": SERVER_VERSION}

    def start_session(self, **kwargs: Any) -> Session:
        return Session()

    def close(self) -> None:
        pass


_client = Client()  # one per process, like MongoClient: collections created by migrate stay visible


class DatabaseWrapper(base.DatabaseWrapper):
    def get_new_connection(self, conn_params: dict) -> Client:
        return _client

    def get_collection(self, name: str, **kwargs: Any) -> Collection:
        return self.database[name]
