"""The instance `ulm run` uses keeps one engine per event-log database, and what it writes is
Dagster's own format: a stock instance on the same folder reads the run back."""

import dagster as dg

from orchestration import dagster_storage
from orchestration.cli import _dagster_home


@dg.asset
def upstream(context: dg.AssetExecutionContext) -> int:
    for i in range(5):
        context.log.info(f"step {i}")
    return 1


@dg.asset
def downstream(upstream: int) -> int:
    return upstream + 1


def test_the_run_keeps_its_engines_and_a_stock_instance_reads_it(tmp_path, monkeypatch):
    engines = []

    def counting_create_engine(*args, **kwargs):
        engines.append(args[0])
        return create_engine(*args, **kwargs)

    create_engine = dagster_storage.create_engine
    monkeypatch.setattr(dagster_storage, "create_engine", counting_create_engine)
    home = _dagster_home(tmp_path)
    with dagster_storage.open_instance(home) as instance:
        assert isinstance(instance.event_log_storage,
                          dagster_storage.PooledSqliteEventLogStorage)
        result = dg.materialize([upstream, downstream], instance=instance)
        assert result.success
        stored = instance.all_logs(result.run_id)
    # ~30 events, each stored in the run's database, the asset events also in the index:
    # two engines in all (Dagster's own storage creates one per event)
    assert len(stored) > 20
    assert sorted(e.rsplit("/", 1)[-1] for e in engines) == sorted(
        [f"{result.run_id}.db", "index.db"])
    assert not list((home / "history" / "runs").glob("*.db-wal"))  # closed with the instance

    stock = dg.DagsterInstance.from_config(str(home))
    assert type(stock.event_log_storage).__name__ == "SqliteEventLogStorage"
    assert len(stock.all_logs(result.run_id)) == len(stored)
    assert stock.get_latest_materialization_event(dg.AssetKey("downstream")).run_id \
        == result.run_id
    assert stock.get_run_by_id(result.run_id).is_success
