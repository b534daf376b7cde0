"""The in-process dbt runner parses the project with a fixed as-of date, warehouse dir and
engine settings (so dbt's partial parsing holds from one day to the next and from one
warehouse to another). That is only right while nothing in the project reads them at parse
time: configs, refs, sources, tests, hooks and relation names must come out the same
whatever their values."""

from __future__ import annotations

import json
from pathlib import Path

from orchestration import dbt_in_process
from orchestration.config import dbt_vars, load_config
from orchestration.dbt_in_process import (
    PARSE_AS_OF,
    PARSE_FIXED_VARS,
    PARTIAL_PARSE_FILE,
    keep_partial_parse,
    parse_vars,
    seed_partial_parse,
    vars_argument,
)
from orchestration.project import ulm_dbt_project


def _parse(as_of: str, warehouse: Path, target: Path, **engine) -> dict:
    from dbt.cli.main import dbtRunner

    cfg = load_config(None)
    if engine:
        cfg = cfg.model_copy(update={"engine": cfg.engine.model_copy(update=engine)})
    result = dbtRunner().invoke([
        "parse", "--quiet", "--project-dir", str(ulm_dbt_project.project_dir),
        "--profiles-dir", str(ulm_dbt_project.profiles_dir), "--target-path", str(target),
        "--log-path", str(target), "--no-partial-parse",
        "--vars", json.dumps(dbt_vars(cfg, as_of, warehouse))])
    assert result.success, result.exception
    return json.loads((target / "manifest.json").read_text())


def _shape(manifest: dict) -> dict:
    """What parsing decides about every node (everything but the SQL text and paths)."""
    return {
        uid: (node["config"], node["depends_on"], node.get("tags"), node.get("refs"),
              node.get("sources"), node["database"], node["schema"], node.get("alias"),
              node.get("relation_name"))
        for uid, node in manifest["nodes"].items()
    }


def test_the_date_the_warehouse_and_the_engine_are_not_read_while_parsing(tmp_path):
    first = _parse("2024-02-29", tmp_path / "one", tmp_path / "a")
    second = _parse("2026-11-21", tmp_path / "other" / "warehouse", tmp_path / "b",
                    memory_limit="7GB", dbt_threads=2)
    assert first["nodes"].keys() == second["nodes"].keys()
    assert _shape(first) == _shape(second)
    # the relation names really are in the shape compared
    assert any(node.get("relation_name") == '"work"."intermediate"."int_events"'
               for node in first["nodes"].values())


def test_parse_vars_fix_the_date_warehouse_and_engine_only():
    build = {"as_of_date": "2026-11-21", "currency": "EUR", "warehouse_dir": "/data/wh",
             "engine_memory_limit": "5.5GB", "engine_dbt_threads": 2,
             "engine_checkpoint_threshold": "4GB"}
    assert json.loads(parse_vars(json.dumps(build))) == {**PARSE_FIXED_VARS, "currency": "EUR"}
    assert PARSE_FIXED_VARS["as_of_date"] == PARSE_AS_OF
    # vars the build does not set stay unset
    assert json.loads(parse_vars(json.dumps({"currency": "EUR"}))) == {"currency": "EUR"}
    assert vars_argument(["build", "--vars", json.dumps(build), "--full-refresh"]) == \
        json.dumps(build)
    assert vars_argument(["build"]) == "{}"


def test_a_new_target_starts_from_the_machines_last_parse(tmp_path):
    cache, first, second = tmp_path / "cache", tmp_path / "first", tmp_path / "second"
    first.mkdir()
    second.mkdir()
    assert not seed_partial_parse(first, cache)  # nothing cached yet
    (first / PARTIAL_PARSE_FILE).write_bytes(b"parse one")
    keep_partial_parse(first, cache)
    assert (cache / PARTIAL_PARSE_FILE).read_bytes() == b"parse one"
    assert [p.name for p in cache.iterdir()] == [PARTIAL_PARSE_FILE]  # no temporary left
    assert seed_partial_parse(second, cache)
    assert (second / PARTIAL_PARSE_FILE).read_bytes() == b"parse one"
    # a target's own parse is never replaced by the cache
    (second / PARTIAL_PARSE_FILE).write_bytes(b"its own")
    (first / PARTIAL_PARSE_FILE).write_bytes(b"parse two")
    keep_partial_parse(first, cache)
    assert not seed_partial_parse(second, cache)
    assert (second / PARTIAL_PARSE_FILE).read_bytes() == b"its own"
    assert (cache / PARTIAL_PARSE_FILE).read_bytes() == b"parse two"


def test_a_cache_that_cannot_be_written_costs_nothing_but_the_parse(tmp_path):
    target = tmp_path / "target"
    target.mkdir()
    (target / PARTIAL_PARSE_FILE).write_bytes(b"parse")
    blocked = tmp_path / "blocked"
    blocked.write_text("a file where the cache folder should be")
    keep_partial_parse(target, blocked / "dbt-parse")  # no error
    assert not seed_partial_parse(tmp_path / "elsewhere", blocked / "dbt-parse")


def test_a_new_warehouse_parses_only_what_changed(tmp_path, monkeypatch):
    """Two warehouses, other dates and engine settings: the second's parse is partial."""
    monkeypatch.setenv("ULM_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(dbt_in_process, "_manifest", None)
    project = Path(ulm_dbt_project.project_dir)
    profiles = Path(ulm_dbt_project.profiles_dir)
    cfg = load_config(None)
    for run, (warehouse, as_of) in enumerate([(tmp_path / "a", "2026-03-01"),
                                              (tmp_path / "b", "2026-03-02")]):
        target = warehouse / "dbt_target"
        target.mkdir(parents=True)
        dbt_in_process.parsed_manifest(f"run-{run}", project, profiles, target,
                                       json.dumps(dbt_vars(cfg, as_of, warehouse)))
    log = (tmp_path / "b" / "dbt_target" / "dbt.log").read_text()
    assert "Unable to do partial parsing" not in log
    assert "Unable to do partial parsing" in (tmp_path / "a" / "dbt_target" / "dbt.log"
                                              ).read_text()


def test_a_failing_build_names_the_model_and_releases_the_database(tmp_path):
    import dagster as dg
    import duckdb

    from orchestration.assets import ulm_dbt_after_ml
    from orchestration.resources import UlmSettings

    warehouse = tmp_path / "warehouse"
    warehouse.mkdir()
    ulm = UlmSettings(raw_dir=str(tmp_path / "raw"), warehouse_dir=str(warehouse),
                      pii_key="test-key")
    # dim_users alone, in a warehouse where nothing it reads was built
    result = dg.materialize(
        [ulm_dbt_after_ml], resources={"ulm": ulm}, raise_on_error=False,
        run_config={"ops": {"ulm_dbt_after_ml": {"config": {"as_of": "2026-03-10"}}}})
    assert not result.success
    (failure,) = [e for e in result.all_events if e.is_step_failure]
    message = failure.step_failure_data.error.message
    assert "dbt build failed" in message and "model dim_users" in message
    # dbt no longer holds the file: it opens with other settings in this process
    with duckdb.connect(str(warehouse / "work.duckdb"), config={"threads": 1}) as con:
        assert con.execute("select 1").fetchall() == [(1,)]


def test_gx_is_imported_once_dbt_executes_not_while_it_parses_or_starts(tmp_path,
                                                                         monkeypatch):
    """dbt's parse and start-up hold the interpreter, its queries do not: the GX import that
    a build starts on another thread begins with the first node's execution (during the
    parse it took as long as the parse, 0.9 -> 2.1 s at medium; right after the parse it
    slowed dbt's start-up by 1.1 s)."""
    import dagster as dg

    from orchestration import assets
    from orchestration.assets import ulm_dbt_after_ml
    from orchestration.resources import UlmSettings

    warehouse = tmp_path / "warehouse"
    warehouse.mkdir()
    log = warehouse / "dbt_target" / "dbt.log"
    nodes_executing_when_started = []
    monkeypatch.setattr(assets.runner, "prepare_in_background",
                        lambda docs_dir: nodes_executing_when_started.append(
                            log.read_text().count("Began executing node")
                            if log.exists() else 0))
    ulm = UlmSettings(raw_dir=str(tmp_path / "raw"), warehouse_dir=str(warehouse),
                      pii_key="test-key")
    dg.materialize([ulm_dbt_after_ml], resources={"ulm": ulm}, raise_on_error=False,
                   run_config={"ops": {"ulm_dbt_after_ml": {"config": {"as_of": "2026-03-10"}}}})
    assert nodes_executing_when_started == [1]
