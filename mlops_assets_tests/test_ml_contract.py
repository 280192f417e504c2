"""Feature-set contract: parsing, fingerprints, and error messages that name the column and the mismatch."""

from __future__ import annotations

import copy
import datetime as dt

import numpy as np
import pandas as pd
import pytest

from mlops_assets.ml.contract import (
    ContractError,
    FeatureSetContract,
    FeatureSpec,
    column_types,
    type_family,
)

DOC = {
    "name": "churn_features",
    "version": "1",
    "entity_key": "customer_id",
    "as_of": "as_of_date",
    "label": "churned_30d",
    "features": [
        {"name": "tenure_days", "kind": "numerical", "description": "days since signup"},
        {"name": "minutes_7d", "kind": "numerical"},
        {"name": "plan", "kind": "categorical"},
        {"name": "device", "kind": "categorical"},
    ],
    "slices": ["region"],
    "protected_attributes": ["age_band"],
    "source": {"format": "delta", "path": "features/churn_features"},
}
GOOD_SPARK_TYPES = {
    "customer_id": "bigint",
    "as_of_date": "date",
    "churned_30d": "int",
    "tenure_days": "int",
    "minutes_7d": "double",
    "plan": "string",
    "device": "string",
    "region": "string",
    "age_band": "string",
}


def doc(**changes: object) -> dict:
    d = copy.deepcopy(DOC)
    d.update(changes)
    return d


@pytest.fixture
def contract() -> FeatureSetContract:
    return FeatureSetContract.from_dict(DOC)


def test_from_dict_views_and_round_trip(contract: FeatureSetContract) -> None:
    assert contract.feature_names == ["tenure_days", "minutes_7d", "plan", "device"]
    assert contract.numerical == ["tenure_days", "minutes_7d"]
    assert contract.categorical == ["plan", "device"]
    assert contract.features[0] == FeatureSpec("tenure_days", "numerical", "days since signup")
    assert contract.source is not None and contract.source.format == "delta"
    assert FeatureSetContract.from_dict(contract.to_dict()) == contract
    assert contract.columns[:3] == ["customer_id", "as_of_date", "churned_30d"]
    assert contract.columns[-2:] == ["region", "age_band"]


def test_from_yaml_reads_numeric_version(tmp_path) -> None:
    import yaml

    d = doc(version=2)
    path = tmp_path / "churn.yaml"
    path.write_text(yaml.safe_dump(d))
    c = FeatureSetContract.from_yaml(path)
    assert c.version == "2"
    assert c.feature_names == [f["name"] for f in DOC["features"]]


def test_fingerprint_is_stable_and_sensitive(contract: FeatureSetContract) -> None:
    fp = contract.fingerprint()
    assert len(fp) == 12 and all(ch in "0123456789abcdef" for ch in fp)
    assert FeatureSetContract.from_dict(copy.deepcopy(DOC)).fingerprint() == fp
    reordered = doc(features=list(reversed(DOC["features"])))
    assert FeatureSetContract.from_dict(reordered).fingerprint() != fp
    assert FeatureSetContract.from_dict(doc(version="2")).fingerprint() != fp


def test_valid_tables_pass(contract: FeatureSetContract) -> None:
    contract.validate_columns(GOOD_SPARK_TYPES)
    pandas_types = {
        **GOOD_SPARK_TYPES,
        "customer_id": "int64",
        "as_of_date": "datetime64[ns]",
        "churned_30d": "bool",
        "tenure_days": "Int64",
        "minutes_7d": "float32",
        "plan": "category",
        "device": "object",
        "region": "string[python]",
    }
    contract.validate_columns(pandas_types)


def test_missing_feature_names_column_and_kind(contract: FeatureSetContract) -> None:
    cols = {k: v for k, v in GOOD_SPARK_TYPES.items() if k != "tenure_days"}
    with pytest.raises(ContractError) as err:
        contract.validate_columns(cols)
    assert "feature 'tenure_days' (numerical) is missing from the table" in str(err.value)
    assert len(err.value.problems) == 1


def test_kind_mismatches_name_column_and_types(contract: FeatureSetContract) -> None:
    cols = {**GOOD_SPARK_TYPES, "plan": "double", "minutes_7d": "string"}
    with pytest.raises(ContractError) as err:
        contract.validate_columns(cols)
    msg = str(err.value)
    assert "feature 'plan' is declared categorical but the column has type double" in msg
    assert "feature 'minutes_7d' is declared numerical but the column has type string" in msg
    assert len(err.value.problems) == 2


@pytest.mark.parametrize(
    ("column", "bad_type", "fragment"),
    [
        ("as_of_date", "string", "as_of 'as_of_date' must be a date or timestamp"),
        ("churned_30d", "string", "label 'churned_30d' must be a binary 0/1"),
        ("region", "double", "slice 'region' must be categorical"),
        ("age_band", "float64", "protected attribute 'age_band' must be categorical"),
        ("customer_id", "date", "entity_key 'customer_id' must be an integer or string"),
    ],
)
def test_role_type_rules(contract: FeatureSetContract, column: str, bad_type: str, fragment: str) -> None:
    with pytest.raises(ContractError) as err:
        contract.validate_columns({**GOOD_SPARK_TYPES, column: bad_type})
    assert fragment in str(err.value)
    assert f"type {bad_type}" in str(err.value)


def test_missing_declared_non_feature_columns(contract: FeatureSetContract) -> None:
    cols = {k: v for k, v in GOOD_SPARK_TYPES.items() if k not in {"region", "churned_30d"}}
    with pytest.raises(ContractError) as err:
        contract.validate_columns(cols)
    assert "slice 'region' is missing from the table" in str(err.value)
    assert "label 'churned_30d' is missing from the table" in str(err.value)


def test_labels_round_trip_and_leave_older_fingerprints_alone(contract: FeatureSetContract) -> None:
    own = FeatureSetContract.from_dict(doc(labels={"available": "label_known"}))
    table = FeatureSetContract.from_dict(
        doc(labels={"available": "known_on", "source": {"format": "parquet", "path": "/data/labels"}})
    )
    for c in (own, table):
        assert FeatureSetContract.from_dict(c.to_dict()) == c
        assert c.fingerprint() != contract.fingerprint()
    assert "labels" not in contract.to_dict()  # a contract without labels keeps its fingerprint
    assert table.labels is not None and table.labels.source is not None
    assert table.labels.source.path == "/data/labels"


def test_label_columns_are_checked_where_the_labels_live() -> None:
    own = FeatureSetContract.from_dict(doc(labels={"available": "label_known"}))
    with pytest.raises(ContractError) as err:
        own.validate_columns({**GOOD_SPARK_TYPES, "label_known": "string"})
    assert "labels.available 'label_known' must be a date or timestamp" in str(err.value)
    own.validate_columns({**GOOD_SPARK_TYPES, "label_known": "date"})

    table = FeatureSetContract.from_dict(
        doc(labels={"available": "known_on", "source": {"format": "delta", "path": "/data/labels"}})
    )
    # The label lives in the label table, so the feature table need not carry it.
    table.validate_columns({k: v for k, v in GOOD_SPARK_TYPES.items() if k != "churned_30d"})
    # A labelled frame (the training set) carries the label wherever it came from, and needs no date.
    frame = {**GOOD_SPARK_TYPES, "churned_30d": "int64"}
    own.validate_columns(frame, labelled=True)
    table.validate_columns(frame, labelled=True)
    with pytest.raises(ContractError, match="label 'churned_30d' is missing"):
        table.validate_columns({k: v for k, v in frame.items() if k != "churned_30d"}, labelled=True)
    with pytest.raises(ContractError) as err:
        table.validate_label_columns({"customer_id": "bigint", "as_of_date": "date", "churned_30d": "int"})
    assert str(err.value).startswith("label table /data/labels does not match")
    assert err.value.problems == ("labels.available 'known_on' is missing from the table",)


def test_label_values(contract: FeatureSetContract) -> None:
    contract.validate_label_values(np.array([0, 1, 1, 0]))
    contract.validate_label_values(np.array([True, False]))
    contract.validate_label_values(np.array([0.0, 1.0]))
    with pytest.raises(ContractError, match=r"label 'churned_30d' must be binary 0/1, found other values: 2"):
        contract.validate_label_values(np.array([0, 1, 2]))
    with pytest.raises(ContractError, match=r"label 'churned_30d' must be binary 0/1 but has 1 null"):
        contract.validate_label_values(np.array([0.0, np.nan, 1.0]))
    with pytest.raises(ContractError, match=r"'yes'"):
        contract.validate_label_values(np.array(["yes", "no"], dtype=object))


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        (
            {"features": [*DOC["features"][:2], {"name": "plan", "kind": "numeric"}]},
            "features[2].kind: 'numeric'",
        ),
        ({"label": None}, "label: required field is missing"),
        ({"features": []}, "features: must be a non-empty list"),
        ({"protected_attribute": ["age_band"]}, "unknown field(s): protected_attribute"),
        ({"source": {"format": "orc", "path": "x"}}, "source.format: 'orc' is not one of"),
        ({"slices": ["region", 3]}, "slices[1]: must be a non-empty string"),
        (
            {"features": [*DOC["features"], {"name": "plan", "kind": "categorical"}]},
            "duplicate feature 'plan'",
        ),
        ({"features": [{"name": "churned_30d", "kind": "numerical"}]}, "'churned_30d' is the label"),
        ({"labels": {"available": "as_of_date"}}, "labels.available: 'as_of_date' is the as_of"),
        ({"labels": {"availble": "d"}}, "labels: unknown field(s): availble"),
        ({"labels": {"available": "d", "source": {"format": "orc"}}}, "labels.source.format: 'orc'"),
        ({"labels": {"available": "d"}, "source": None}, "labels: only an external table"),
    ],
)
def test_from_dict_errors_name_the_field(change: dict, fragment: str) -> None:
    with pytest.raises(ContractError) as err:
        FeatureSetContract.from_dict(doc(**change))
    assert fragment in str(err.value)


def test_type_family_and_pandas_column_types() -> None:
    assert type_family("decimal(10,2)") == "float"
    assert type_family("timestamp_ntz") == "timestamp"
    assert type_family("UInt8") == "integer"
    assert type_family("map<string,int>") == "unknown"
    df = pd.DataFrame(
        {
            "d": [dt.date(2026, 1, 1), None],
            "ts": [dt.datetime(2026, 1, 1, 3), dt.datetime(2026, 1, 2)],
            "s": ["a", "b"],
            "x": [1.0, 2.0],
        }
    )
    assert column_types(df) == {"d": "date", "ts": "datetime64[ns]", "s": "object", "x": "float64"}


def test_validate_frame_checks_types_and_labels(contract: FeatureSetContract) -> None:
    df = pd.DataFrame(
        {
            "customer_id": [1, 2],
            "as_of_date": [dt.date(2026, 1, 1), dt.date(2026, 1, 2)],
            "churned_30d": [0, 1],
            "tenure_days": [10, 20],
            "minutes_7d": [1.5, 2.5],
            "plan": ["basic", "premium"],
            "device": ["tv", "mobile"],
            "region": ["EU", "NA"],
            "age_band": ["18-29", "50+"],
        }
    )
    contract.validate_frame(df)
    with pytest.raises(ContractError, match="found other values: 3"):
        contract.validate_frame(df.assign(churned_30d=[0, 3]))
    with pytest.raises(ContractError, match="as_of 'as_of_date' must be a date or timestamp"):
        contract.validate_frame(df.assign(as_of_date=["2026-01-01", "2026-01-02"]))
