"""Garbage-collector settings for a process that runs the pipeline.

CPython's cyclic collector walks every object it tracks on each full collection, and once
more when the interpreter exits. A run keeps ~0.7M such objects alive from start to end
(Dagster's definitions, dagster-dbt's manifest, dbt's parse, GX), so at the default
thresholds a medium next-day run (51 s) spent 2.4 s in 11 full collections (and 0.8 s in
younger ones), walking objects that were never garbage.

Frozen objects are left out of every collection (gc.freeze: they live as long as the
process anyway). Higher thresholds make full collections of what the run itself allocates
rarer. Garbage made during the run is still collected, and objects freed by their reference
count go at once as always. They are unfrozen at exit, so that the interpreter's last
collections break their cycles: DuckDB's bindings (nanobind) print a page of "leaked
instance" warnings at exit for any of their objects still alive then. The `ulm` command
skips those last collections altogether (exit_without_final_collections)."""

from __future__ import annotations

import atexit
import gc
import os
import sys
import threading
from typing import NoReturn

# objects allocated between two collections of the youngest generation (CPython: 700), and
# collections of a generation between two of the next one (10 and 10)
THRESHOLDS = (50_000, 20, 20)


def settle_long_lived_objects() -> None:
    """Freeze what the process holds now (imports, definitions) and raise the collection
    thresholds until the process exits. Idempotent."""
    gc.freeze()
    gc.set_threshold(*THRESHOLDS)
    atexit.unregister(gc.unfreeze)  # one exit hook however often this is called
    atexit.register(gc.unfreeze)


def exit_without_final_collections(code: int) -> NoReturn:
    """End the process as the interpreter would, less its teardown: other threads are
    waited for, the `atexit` handlers run (logging's flush, temporary folders' clean-up,
    file locks), and the process exits with `code`. The teardown's collections walk the
    ~0.7M objects a run leaves alive, for memory the system takes back anyway: 2.2 s
    after a large next-day run, measured."""
    for thread in threading.enumerate():
        if thread is not threading.main_thread() and not thread.daemon:
            thread.join()
    atexit._run_exitfuncs()  # what the interpreter runs first at exit (CPython)
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    os._exit(code)
