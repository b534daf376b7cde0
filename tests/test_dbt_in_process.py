"""The in-process dbt runner parses the project with a fixed as-of date (so dbt's partial
parsing holds from one day to the next). That is only right while nothing in the project
reads the date at parse time: configs, refs, sources, tests and hooks must come out the same
whatever the date."""

from __future__ import annotations

import json
from pathlib import Path

from orchestration.config import dbt_vars, load_config
from orchestration.dbt_in_process import PARSE_AS_OF, parse_vars, vars_argument
from orchestration.project import ulm_dbt_project


def _parse(as_of: str, warehouse: Path, target: Path) -> dict:
    from dbt.cli.main import dbtRunner

    result = dbtRunner().invoke([
        "parse", "--quiet", "--project-dir", str(ulm_dbt_project.project_dir),
        "--profiles-dir", str(ulm_dbt_project.profiles_dir), "--target-path", str(target),
        "--log-path", str(target), "--no-partial-parse",
        "--vars", json.dumps(dbt_vars(load_config(None), as_of, warehouse))])
    assert result.success, result.exception
    return json.loads((target / "manifest.json").read_text())


def _shape(manifest: dict) -> dict:
    """What parsing decides about every node (everything but the SQL text and paths)."""
    return {
        uid: (node["config"], node["depends_on"], node.get("tags"), node.get("refs"),
              node.get("sources"))
        for uid, node in manifest["nodes"].items()
    }


def test_the_as_of_date_is_not_read_while_parsing(tmp_path):
    first = _parse("2024-02-29", tmp_path, tmp_path / "a")
    second = _parse("2026-11-21", tmp_path, tmp_path / "b")
    assert first["nodes"].keys() == second["nodes"].keys()
    assert _shape(first) == _shape(second)


def test_parse_vars_fix_only_the_date():
    build = json.dumps({"as_of_date": "2026-11-21", "currency": "EUR"})
    assert json.loads(parse_vars(build)) == {"as_of_date": PARSE_AS_OF, "currency": "EUR"}
    assert vars_argument(["build", "--vars", build, "--full-refresh"]) == build
    assert vars_argument(["build"]) == "{}"


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
