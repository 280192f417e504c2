"""Configuration errors name the field or variable, before any work is done. No Spark needed."""

import pydantic
import pytest

from mlops_assets.defs.evaluation import PromotionPolicyConfig
from mlops_assets.defs.monitoring import MonitoringConfig
from mlops_assets.resources import QualityThresholds, SyntheticSourceResource, TrainingConfig
from mlops_assets.settings import SettingsError, load_settings


@pytest.mark.parametrize(
    ("build", "fragment"),
    [
        (lambda: PromotionPolicyConfig(non_inferiority_margin=5), "non_inferiority_margin"),
        (lambda: PromotionPolicyConfig(max_ece=-1), "max_ece"),
        (lambda: PromotionPolicyConfig(min_demographic_parity_ratio=1.5), "min_demographic_parity_ratio"),
        (lambda: PromotionPolicyConfig(max_equal_opportunity_difference=-0.1), "max_equal_opportunity"),
        (lambda: MonitoringConfig(psi_warn=-0.5), "psi_warn"),
        (
            lambda: MonitoringConfig(psi_warn=0.3, psi_critical=0.2),
            "psi_warn (0.3) must not exceed psi_critical",
        ),
        (
            lambda: MonitoringConfig(null_rate_change_warn=0.5, null_rate_change_critical=0.1),
            "null_rate_change_warn (0.5) must not exceed null_rate_change_critical",
        ),
        (
            lambda: QualityThresholds(quarantine_warn_rate=0.5, quarantine_error_rate=0.1),
            "quarantine_warn_rate (0.5) must not exceed quarantine_error_rate",
        ),
        (lambda: TrainingConfig(n_trials=0), "n_trials"),
        (lambda: SyntheticSourceResource(scenario="tsunami"), "scenario 'tsunami' is not one of"),
    ],
)
def test_resource_and_run_config_errors_name_the_field(build, fragment):
    with pytest.raises(pydantic.ValidationError) as error:
        build()
    assert fragment in str(error.value)


def test_a_run_with_n_trials_0_fails_at_start_naming_the_field():
    run_config = {"ops": {"ml__churn_model": {"config": {"n_trials": 0}}}}
    with pytest.raises(ValueError, match=r"(?s)ops\.ml__churn_model\.config is invalid.*n_trials"):
        TrainingConfig.check_run_config(run_config)
    TrainingConfig.check_run_config({"ops": {"ml__churn_model": {"config": {"n_trials": 3}}}})
    TrainingConfig.check_run_config({})


@pytest.mark.parametrize(
    ("variable", "value", "fragment"),
    [
        ("MLOPS_RETRAIN_COOLDOWN_HOURS", "inf", "must be a finite number"),
        ("MLOPS_RETRAIN_COOLDOWN_HOURS", "nan", "must be a finite number"),
        ("MLOPS_RETRAIN_COOLDOWN_HOURS", "abc", "is not a number"),
        ("MLOPS_RETRAIN_COOLDOWN_HOURS", "1e9", "must be between"),
        ("MLOPS_MAX_RETRAINS", "0", "must be between"),
        ("MLOPS_MAX_RETRAINS", "two", "is not an integer"),
        ("LAKEHOUSE_ROOT", "relative/path", "must be an absolute path"),
        ("LAKEHOUSE_ROOT", "/proc/mlops_lakehouse", "is not writable"),
        ("MLOPS_ENV", "staging", "is not one of"),
    ],
)
def test_settings_errors_name_the_variable(variable, value, fragment, tmp_path):
    environ = {"LAKEHOUSE_ROOT": str(tmp_path / "lakehouse"), variable: value}
    with pytest.raises(SettingsError) as error:
        load_settings(environ)
    assert str(error.value).startswith(f"{variable}=") and fragment in str(error.value)


def test_a_lakehouse_root_under_a_regular_file_is_refused(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(SettingsError, match=r"LAKEHOUSE_ROOT=.*is not a directory"):
        load_settings({"LAKEHOUSE_ROOT": str(blocker / "lakehouse")})
    assert load_settings({"LAKEHOUSE_ROOT": str(tmp_path / "new" / "lakehouse")}).lakehouse_root
