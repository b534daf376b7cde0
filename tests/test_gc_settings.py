"""A process that loads the definitions leaves its long-lived objects out of the collector's
walks, still collects what it makes garbage afterwards, and exits without DuckDB's bindings
reporting leaked objects."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

from orchestration.project import DBT_PROJECT_DIR


def test_loading_the_definitions_freezes_them_and_garbage_is_still_collected():
    script = textwrap.dedent("""
        import atexit, gc
        # registered first, so it runs after the definitions' exit hook
        atexit.register(lambda: print("frozen at exit", gc.get_freeze_count()))
        import orchestration.definitions
        from orchestration.gc_settings import THRESHOLDS, settle_long_lived_objects
        print("thresholds", gc.get_threshold() == THRESHOLDS)
        print("frozen", gc.get_freeze_count() > 100_000)
        settle_long_lived_objects()  # a second call is harmless

        class Cycle:
            def __init__(self):
                self.me = self
            def __del__(self):
                print("cycle collected")

        Cycle()
        gc.collect()
        print("collected before exit")
    """)
    done = subprocess.run([sys.executable, "-c", script], cwd=DBT_PROJECT_DIR.parent,
                          check=True, capture_output=True, text=True)
    assert done.stdout.splitlines() == ["thresholds True", "frozen True", "cycle collected",
                                        "collected before exit", "frozen at exit 0"]
    # nanobind names any of its objects still alive at exit (frozen ones would be)
    assert "leaked" not in done.stderr


def test_the_ulm_exit_runs_the_exit_handlers_and_keeps_the_exit_code():
    script = textwrap.dedent("""
        import atexit, tempfile
        import orchestration.definitions
        from orchestration.gc_settings import exit_without_final_collections
        folder = tempfile.TemporaryDirectory()  # its finalizer removes it at exit
        print(folder.name)
        atexit.register(lambda: print("handler ran"))
        exit_without_final_collections(3)
    """)
    done = subprocess.run([sys.executable, "-c", script], cwd=DBT_PROJECT_DIR.parent,
                          capture_output=True, text=True)
    assert done.returncode == 3
    folder, handler = done.stdout.splitlines()
    assert handler == "handler ran"
    assert not Path(folder).exists()
    assert "leaked" not in done.stderr


def test_the_ulm_command_exits_with_its_code():
    done = subprocess.run([sys.executable, "-m", "orchestration.cli", "config", "--check",
                           "/nonexistent/ulm.yaml"], cwd=DBT_PROJECT_DIR.parent,
                          capture_output=True, text=True)
    assert done.returncode == 2
    assert "/nonexistent/ulm.yaml" in done.stderr
