from pathlib import Path

import pytest

from orchestration.config import (
    DEFAULT_ACTIVITY_TYPES,
    ConfigError,
    dbt_vars,
    load_config,
    parse_config,
    reference_table,
)


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "ulm.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_no_file_means_documented_defaults():
    config = load_config(None)
    assert config.timezone == "UTC"
    assert config.business_timezone == "UTC"
    assert config.currency == "USD"
    assert config.activity_event_types == DEFAULT_ACTIVITY_TYPES
    assert "support_ticket" not in config.activity_event_types
    assert config.identity.max_accounts_per_identifier == 1


def test_empty_file_is_all_defaults(tmp_path):
    assert load_config(write(tmp_path, "")) == load_config(None)


def test_values_are_read_and_normalised(tmp_path):
    config = load_config(write(tmp_path, (
        "business_timezone: Asia/Shanghai\ncurrency: cny\n"
        "activity_event_types: [Login, purchase]\nidentity:\n  max_accounts_per_identifier: 3\n"
    )))
    assert config.business_timezone == "Asia/Shanghai"
    assert config.currency == "CNY"
    assert config.activity_event_types == ["login", "purchase"]
    assert config.identity.max_accounts_per_identifier == 3


def test_unknown_key_names_the_key_and_file(tmp_path):
    path = write(tmp_path, "timezone: UTC\nchurn_dayz: 30\n")
    with pytest.raises(ConfigError, match=r"unknown key `churn_dayz`") as err:
        load_config(path)
    assert str(path) in str(err.value)


def test_unknown_nested_key(tmp_path):
    with pytest.raises(ConfigError, match=r"unknown key `identity.max_people`"):
        load_config(write(tmp_path, "identity:\n  max_people: 2\n"))


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("timezone: Mars/Olympus\n", "unknown time zone 'Mars/Olympus'"),
        ("currency: dollars\n", "not an ISO 4217 code"),
        ("identity:\n  max_accounts_per_identifier: 0\n", "identity.max_accounts_per_identifier"),
        ("default_phone_country_code: '+86'\n", "default_phone_country_code"),
        ("activity_event_types: []\n", "activity_event_types"),
    ],
)
def test_bad_values_are_clear_errors(tmp_path, text, fragment):
    with pytest.raises(ConfigError, match="README") as err:
        load_config(write(tmp_path, text))
    assert fragment in str(err.value)


def test_not_yaml_and_not_a_mapping(tmp_path):
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(write(tmp_path, "timezone: [UTC\n"))
    with pytest.raises(ConfigError, match="must be a mapping"):
        load_config(write(tmp_path, "- a\n- b\n"))
    with pytest.raises(ConfigError, match="cannot be read"):
        load_config(tmp_path / "missing.yaml")


def test_dbt_vars_carry_every_rule(tmp_path):
    config = parse_config({"business_timezone": "Europe/Berlin"})
    v = dbt_vars(config, "2026-01-31", tmp_path)
    assert v["as_of_date"] == "2026-01-31"
    assert v["business_timezone"] == "Europe/Berlin"
    assert v["warehouse_dir"] == str(tmp_path.resolve())
    assert v["identity_max_accounts_per_identifier"] == 1


def test_reference_table_lists_every_key_and_readme_documents_it():
    keys = [k for k, _, _ in reference_table()]
    assert "identity.max_accounts_per_identifier" in keys
    readme = (Path(__file__).parent.parent / "README.md").read_text(encoding="utf-8")
    missing = [k for k in keys if f"`{k}`" not in readme]
    assert not missing, f"README does not document config keys: {missing}"


def test_lifecycle_thresholds_must_be_ordered(tmp_path):
    with pytest.raises(ConfigError, match="must be greater than dormant_after_days"):
        load_config(write(tmp_path, "lifecycle:\n  dormant_after_days: 30\n"
                                    "  churned_after_days: 30\n"))
    config = load_config(write(tmp_path, "lifecycle:\n  churned_after_days: 90\n"))
    assert config.lifecycle.churned_after_days == 90
    v = dbt_vars(config, "2026-01-01", tmp_path)
    assert v["lifecycle_churned_after_days"] == 90
    assert v["lifecycle_dormant_after_days"] == 14
    assert v["rfm_window_days"] == 365


def test_dbt_project_declares_every_var_the_config_sends(tmp_path):
    import yaml

    project = yaml.safe_load((Path(__file__).parent.parent / "dbt_project" / "dbt_project.yml")
                             .read_text(encoding="utf-8"))
    sent = set(dbt_vars(load_config(None), "2026-01-01", tmp_path)) - {"warehouse_dir"}
    declared = set(project["vars"])
    assert sent == declared
    defaults = dbt_vars(load_config(None), project["vars"]["as_of_date"], tmp_path)
    for key in declared:
        assert project["vars"][key] == defaults[key], key
