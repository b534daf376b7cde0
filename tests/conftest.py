"""Shared fixtures: a small generated world run once through the whole pipeline."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
from corpus import defect_corpus, land_defects

from orchestration.generator import GeneratorSettings, generate
from orchestration.project import DBT_EXECUTABLE, DBT_PROJECT_DIR, prepare_manifest

TEST_PII_KEY = "test-key-not-secret"

# which dbt invocation staged (or re-ranked) a row: differs between two builds by design
RUN_LINEAGE = {"_staging_run"}

# run bookkeeping of the incremental builds (person-level chain, churn features, identity map:
# what changed since the last run, and the state it is compared with): differs between two
# builds of the same data by design, and Spark (not incremental) has none of it
RUN_BOOKKEEPING = {"intermediate.int_changed_people", "intermediate.int_person_chain_state",
                   "intermediate.int_person_chain_tuples", "intermediate.int_person_chain_orders",
                   "intermediate.int_person_chain_runs", "intermediate.int_stage_changed_people",
                   "intermediate.int_person_chain_milestones",
                   "intermediate.int_churn_changed_people", "intermediate.int_churn_features_state",
                   "intermediate.int_person_cohort_masks_state",
                   "intermediate.int_person_activity_summary_state",
                   "intermediate.int_quarantine_rows_runs",
                   "intermediate.int_quarantine_rows_state",
                   "intermediate.int_orders_state", "intermediate.int_orders_runs",
                   "intermediate.int_orders_erased",
                   "intermediate.int_identity_map_state", "intermediate.int_identity_map_edges",
                   "intermediate.int_identity_tuples_state",
                   "intermediate.int_event_sightings_state",
                   "intermediate.int_event_sightings_runs",
                   "intermediate.int_event_sightings_files",
                   # staging builds whose redeliveries are not ranked yet (empty after a build)
                   "staging.stg_events__all__unranked_runs",
                   # the log of staging builds (when each ran)
                   "staging.stg_events__all__builds", "staging.stg_orders__all__builds",
                   "staging.stg_campaign_touches__all__builds",
                   "staging.stg_customers__all__builds"}


# The longest test files, in the order the two pytest workers of scripts/test should start
# them (--dist loadfile --no-loadscope-reorder: a worker takes whole files, and keeps one
# more file queued behind the one it runs): the end-to-end file on one worker, the first
# incremental file on the other; the defect corpus queued behind the first, the second
# incremental file behind the other; every other file after them, in file order. Measured
# by file on one day: 305, 270, 54 and 197 s, the rest ~60 s. xdist's default order (files
# with the most tests first) left both incremental files to one worker (565 s against 321 s).
LONGEST_FILES = ("test_pipeline_e2e.py", "test_incremental.py", "test_defects.py",
                 "test_incremental_people.py")


def pytest_collection_modifyitems(items) -> None:
    rank = {name: i for i, name in enumerate(LONGEST_FILES)}
    items.sort(key=lambda item: rank.get(item.path.name, len(LONGEST_FILES)))


def pytest_configure(config) -> None:
    # test modules may import the Dagster definitions, which need the dbt manifest: prepare it
    # before collection, as `ulm` does before it imports them
    prepare_manifest()
    # pytensor compiles the CLV models' C code into ULM_CACHE_DIR (default ~/.cache/ulm),
    # which scripts/bootstrap.sh warms before the tests


def run_dbt(args: list[str], target_path: Path, target: str | None = None,
            check: bool = True) -> str:
    """The project's dbt command (artifacts under target_path); unless `check` is off, the
    test fails with dbt's output when dbt does not succeed. Returns what dbt printed."""
    proc = subprocess.run(
        [DBT_EXECUTABLE, *args, "--project-dir", str(DBT_PROJECT_DIR), "--profiles-dir",
         str(DBT_PROJECT_DIR), "--target-path", str(target_path),
         *(["--target", target] if target else [])],
        capture_output=True, text=True, check=False)
    assert proc.returncode == 0 or not check, proc.stdout[-6000:] + proc.stderr[-2000:]
    return proc.stdout


@pytest.fixture(autouse=True)
def pii_key(monkeypatch) -> str:
    monkeypatch.setenv("ULM_PII_KEY", TEST_PII_KEY)
    return TEST_PII_KEY


@dataclass(frozen=True)
class World:
    root: Path
    raw: Path
    truth: Path
    warehouse: Path
    as_of: str
    exit_code: int


@pytest.fixture(scope="session")
def small_world(tmp_path_factory) -> World:
    """1,500 generated users over 150 days, plus the defect corpus's files that must be
    quarantined or accepted (under RAW/<source>/defects/), run once through `ulm run`."""
    from orchestration.cli import main

    root = tmp_path_factory.mktemp("world")
    settings = GeneratorSettings(users=1_500, days=150, seed=7, chunk_users=600)
    generate(root, settings)
    land_defects(root / "raw", [d for d in defect_corpus()
                                if d["outcome"] in ("quarantine", "accept")])
    warehouse = root / "warehouse"
    mp = pytest.MonkeyPatch()
    mp.setenv("ULM_PII_KEY", TEST_PII_KEY)
    try:
        code = main(["run", "--raw-dir", str(root / "raw"), "--warehouse", str(warehouse),
                     "--as-of", settings.end_date])
    finally:
        mp.undo()
    return World(root, root / "raw", root / "truth", warehouse, settings.end_date, code)
