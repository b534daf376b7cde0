"""Resources: where the raw files are, where the warehouse is, which config file to use."""


from pathlib import Path

import dagster as dg
from pydantic import Field

from orchestration.config import UlmConfig, load_config
from orchestration.tables import connect_work


class UlmSettings(dg.ConfigurableResource):
    """Paths and secrets of one ULM deployment."""

    raw_dir: str = Field(description="The raw landing zone (one subfolder per source).")
    warehouse_dir: str = Field(description="Where ULM writes work.duckdb, serving.duckdb, "
                                           "models and reports.")
    config_path: str = Field("", description="The YAML config file; empty = all defaults.")
    pii_key: str = Field(description="Secret for keyed hashes of personal data (ULM_PII_KEY).")

    @property
    def warehouse(self) -> Path:
        return Path(self.warehouse_dir).resolve()

    @property
    def work_db(self) -> Path:
        return self.warehouse / "work.duckdb"

    def connect_work(self, read_only: bool = False):
        """A connection to work.duckdb (see orchestration.tables.connect_work)."""
        return connect_work(self.work_db, read_only=read_only)

    @property
    def serving_db(self) -> Path:
        return self.warehouse / "serving.duckdb"

    @property
    def dbt_target(self) -> Path:
        """dbt's artifacts for this warehouse: one folder, so dbt's partial parse carries from
        one build of a run to the next (same vars) instead of a full parse each time."""
        return self.warehouse / "dbt_target"

    def data_docs_dir(self, cfg: UlmConfig) -> Path | None:
        """Where the GX suites write their data docs (none when `quality.data_docs` is off)."""
        return self.warehouse / "data_docs" if cfg.quality.data_docs else None

    def load_config(self) -> UlmConfig:
        return load_config(self.config_path or None)
