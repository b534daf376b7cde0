"""The Dagster instance `ulm run` executes in: the warehouse's own (WAREHOUSE/dagster_home and
the dagster.yaml there), with one change where that keeps Dagster's default SQLite storage:
the event log reuses one SQLAlchemy engine, and its pooled connection, per database file.

Dagster's SQLite event log creates an engine, connects and disposes of it for every event it
stores, and closing a database's last connection checkpoints its write-ahead log. A run
stores ~800 events (each step's start and end, every dbt model's materialization and test
result, log lines): an empty run took 23.0 s here, 17.3-17.9 s with the engines kept
(measured). The files, their schema and their locking are Dagster's own, so the UI
(`ulm ui`, which runs Dagster's stock storage classes) reads and writes them as before; a
storage configured in dagster.yaml (Postgres, another SQLite folder) is left as it is.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import dagster as dg
from dagster._core.instance.ref import InstanceRef
from dagster._core.storage.event_log.sqlite.sqlite_event_log import SqliteEventLogStorage
from dagster._core.storage.sqlite import SQLITE_BUSY_TIMEOUT_SECONDS
from dagster._core.storage.sqlite_storage import DagsterSqliteStorage, _event_logs_directory
from dagster._serdes import ConfigurableClassData
from sqlalchemy import create_engine
from sqlalchemy.engine import Connection, Engine

DEFAULT_STORAGE = ("dagster._core.storage.sqlite_storage", "DagsterSqliteStorage")
MAX_OPEN_DATABASES = 8  # the index and the current run's; a few more for readers of old runs


class PooledSqliteEventLogStorage(SqliteEventLogStorage):
    """Dagster's SQLite event log with one engine per database file (at most
    MAX_OPEN_DATABASES, least recently used closed first) instead of one per event."""

    def __init__(self, base_dir: str, inst_data: ConfigurableClassData | None = None):
        self._engines: OrderedDict[str, Engine] = OrderedDict()
        super().__init__(base_dir, inst_data)

    @classmethod
    def from_config_value(cls, inst_data, config_value) -> PooledSqliteEventLogStorage:
        return cls(inst_data=inst_data, **config_value)

    def _engine(self, shard: str) -> Engine:
        engine = self._engines.pop(shard, None)
        if engine is None:
            engine = create_engine(self.conn_string_for_shard(shard),
                                   connect_args={"timeout": SQLITE_BUSY_TIMEOUT_SECONDS})
        self._engines[shard] = engine
        while len(self._engines) > MAX_OPEN_DATABASES:
            self._engines.popitem(last=False)[1].dispose()
        return engine

    @contextmanager
    def _connect(self, shard: str) -> Iterator[Connection]:
        # as the parent's, with the engine kept: the lock serialises this process's threads
        with self._db_lock:
            engine = self._engine(shard)
            if shard not in self._initialized_dbs:
                self._initdb(engine)
                self._initialized_dbs.add(shard)
            with engine.connect() as conn, conn.begin():
                yield conn

    def close_databases(self) -> None:
        """Close every kept connection (their files may then be removed or replaced)."""
        with self._db_lock:
            while self._engines:
                self._engines.popitem()[1].dispose()

    def wipe(self) -> None:
        self.close_databases()  # the parent removes the run databases' files
        super().wipe()

    def dispose(self) -> None:
        self.close_databases()
        super().dispose()


class UlmSqliteStorage(DagsterSqliteStorage):
    """Dagster's default SQLite storage (runs, event log, schedules under one folder) with
    the pooled event log."""

    def __init__(self, base_dir: str, inst_data: ConfigurableClassData | None = None):
        super().__init__(base_dir, inst_data=inst_data)
        self._event_log_storage = PooledSqliteEventLogStorage(_event_logs_directory(base_dir))

    @classmethod
    def from_config_value(cls, inst_data, config_value) -> UlmSqliteStorage:
        return cls.from_local(inst_data=inst_data, **config_value)


def open_instance(home: Path) -> dg.DagsterInstance:
    """The Dagster instance of DAGSTER_HOME `home` (its dagster.yaml applies), with the pooled
    event log when its storage is Dagster's default SQLite one."""
    ref = InstanceRef.from_dir(str(home))
    data = ref.storage_data
    if data is not None and (data.module_name, data.class_name) == DEFAULT_STORAGE:
        ref = ref._replace(storage_data=ConfigurableClassData(
            __name__, UlmSqliteStorage.__name__, data.config_yaml))
    return dg.DagsterInstance.from_ref(ref)
