import json
from datetime import UTC, datetime

import pytest

from orchestration.dbt_args import dbt_build_args, resolve_as_of, summarize_failures


def test_as_of_given_is_normalised():
    assert resolve_as_of("2026-02-03", "UTC") == "2026-02-03"


def test_as_of_bad_date_is_a_clear_error():
    with pytest.raises(ValueError, match="YYYY-MM-DD"):
        resolve_as_of("03/02/2026", "UTC")


def test_default_as_of_is_yesterday_in_the_business_time_zone():
    # 20:00 UTC on 1 March is already 2 March in Shanghai: yesterday there is 1 March
    now = datetime(2026, 3, 1, 20, 0, tzinfo=UTC)
    assert resolve_as_of("", "Asia/Shanghai", now) == "2026-03-01"
    assert resolve_as_of(None, "UTC", now) == "2026-02-28"
    assert resolve_as_of("", "America/Los_Angeles", now) == "2026-02-28"


def test_build_args_pass_vars_as_json_and_skip_unit_tests():
    args = dbt_build_args({"as_of_date": "2026-01-01", "currency": "USD"})
    assert args[0] == "build"
    assert json.loads(args[args.index("--vars") + 1]) == {"as_of_date": "2026-01-01",
                                                          "currency": "USD"}
    assert args[args.index("--exclude-resource-type") + 1] == "unit_test"


def test_summarize_failures_names_models_and_tests():
    results = {"results": [
        {"unique_id": "model.ulm.stg_events", "status": "success"},
        {"unique_id": "model.ulm.int_events", "status": "error",
         "message": "Binder Error: column x not found\nmore"},
        {"unique_id": "test.ulm.accepted_values_source_reconciliation_is_reconciled.abc",
         "status": "fail", "failures": 2, "message": "Got 2 results, configured to fail if != 0"},
    ]}
    text = summarize_failures(results)
    assert "model int_events: Binder Error: column x not found" in text
    assert "accepted_values_source_reconciliation_is_reconciled" in text
    assert "2 failing rows" in text
    assert "stg_events" not in text
