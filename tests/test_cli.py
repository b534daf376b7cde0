import pytest

from orchestration.cli import UserError, backfill_dates, main


def test_bad_config_is_exit_2_with_one_paragraph(tmp_path, capsys):
    (tmp_path / "raw").mkdir()
    cfg = tmp_path / "ulm.yaml"
    cfg.write_text("timezone: Nowhere/Land\n")
    code = main(["run", "--raw-dir", str(tmp_path / "raw"), "--warehouse", str(tmp_path / "w"),
                 "--config", str(cfg)])
    err = capsys.readouterr().err
    assert code == 2
    assert "Nowhere/Land" in err and str(cfg) in err
    assert "Traceback" not in err


def test_missing_raw_dir(tmp_path, capsys):
    code = main(["run", "--raw-dir", str(tmp_path / "nope"), "--warehouse", str(tmp_path)])
    assert code == 2
    assert "does not exist" in capsys.readouterr().err


def test_bad_as_of(tmp_path, capsys):
    (tmp_path / "raw").mkdir()
    code = main(["run", "--raw-dir", str(tmp_path / "raw"), "--warehouse", str(tmp_path),
                 "--as-of", "yesterday"])
    assert code == 2
    assert "YYYY-MM-DD" in capsys.readouterr().err


def test_missing_pii_key_outside_demo(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("ULM_PII_KEY")
    (tmp_path / "raw").mkdir()
    code = main(["run", "--raw-dir", str(tmp_path / "raw"), "--warehouse", str(tmp_path)])
    assert code == 2
    assert "ULM_PII_KEY" in capsys.readouterr().err


def test_generate_rejects_non_positive_sizes(tmp_path):
    with pytest.raises(SystemExit) as exc:
        main(["generate", "--users", "0", "--out", str(tmp_path)])
    assert exc.value.code == 2


def test_config_check(tmp_path, capsys):
    cfg = tmp_path / "ulm.yaml"
    cfg.write_text("currency: EUR\n")
    assert main(["config", "--check", str(cfg)]) == 0
    assert main(["config"]) == 0
    assert "identity.max_accounts_per_identifier" in capsys.readouterr().out


def test_ui_needs_the_key_outside_a_demo_warehouse(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("ULM_PII_KEY")
    assert main(["ui", "--warehouse", str(tmp_path / "wh"), "--raw-dir", str(tmp_path)]) == 2
    assert "ULM_PII_KEY" in capsys.readouterr().err


def test_backfill_dates_are_inclusive_and_oldest_first():
    assert backfill_dates("2026-02-27", "2026-03-01") == ["2026-02-27", "2026-02-28",
                                                          "2026-03-01"]
    assert backfill_dates("2026-03-01", "2026-03-01") == ["2026-03-01"]
    with pytest.raises(UserError, match="before"):
        backfill_dates("2026-03-02", "2026-03-01")


def test_backfill_rejects_bad_dates(tmp_path, capsys):
    code = main(["backfill", "--raw-dir", str(tmp_path), "--start", "2026-13-01",
                 "--end", "2026-03-01"])
    assert code == 2
    assert "YYYY-MM-DD" in capsys.readouterr().err


def test_dagster_yaml_is_written_upgraded_and_then_left_to_the_user(tmp_path):
    from orchestration.cli import DAGSTER_YAML, _dagster_home

    home = _dagster_home(tmp_path)
    yaml_path = home / "dagster.yaml"
    assert yaml_path.read_text() == DAGSTER_YAML
    yaml_path.write_text("telemetry:\n  enabled: false\n")  # what earlier versions wrote
    _dagster_home(tmp_path)
    assert "max_concurrent_runs: 1" in yaml_path.read_text()
    yaml_path.write_text("telemetry:\n  enabled: false\nrun_monitoring:\n  enabled: true\n")
    _dagster_home(tmp_path)
    assert "run_monitoring" in yaml_path.read_text()
