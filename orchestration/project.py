"""The one place the dbt project's location is known."""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path

from dagster_dbt import DbtProject

log = logging.getLogger(__name__)

DBT_PROJECT_DIR = Path(__file__).resolve().parent.parent / "dbt_project"

# dbt installed beside this Python (the project's virtual environment), found without PATH
DBT_EXECUTABLE = str(Path(sys.executable).with_name("dbt"))

ulm_dbt_project = DbtProject(project_dir=DBT_PROJECT_DIR, profiles_dir=DBT_PROJECT_DIR)


def _newest_source_mtime(project_dir: Path) -> float:
    patterns = ("models/**/*", "macros/**/*", "tests/**/*", "dbt_project.yml", "profiles.yml")
    return max(
        (p.stat().st_mtime for pattern in patterns for p in project_dir.glob(pattern)
         if p.is_file()),
        default=0.0,
    )


def manifest_is_current(project: DbtProject = ulm_dbt_project) -> bool:
    manifest = project.manifest_path
    return manifest.exists() and manifest.stat().st_mtime >= _newest_source_mtime(
        Path(project.project_dir))


def prepare_manifest(project: DbtProject = ulm_dbt_project) -> Path:
    """Parse the dbt project into target/manifest.json when it is missing or older than the
    project's files. Called before the Dagster definitions are imported, never at import."""
    if manifest_is_current(project):
        return project.manifest_path
    log.info("parsing the dbt project (manifest missing or out of date)")
    proc = subprocess.run(
        [DBT_EXECUTABLE, "parse", "--quiet", "--project-dir", str(project.project_dir),
         "--profiles-dir", str(project.profiles_dir), "--target-path",
         str(project.manifest_path.parent)],
        capture_output=True, text=True, check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"dbt parse failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-2000:]}")
    return project.manifest_path
