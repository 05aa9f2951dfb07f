"""The synthetic host: shape, seeding, normal patterns and the signature of each anomaly kind."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from driftline.anomaly.dataset import (
    ANOMALY_KINDS,
    KIND_COLUMN,
    LABEL_COLUMN,
    METRIC_COLUMNS,
    TIMESTAMP_COLUMN,
    generate_host_metrics,
)
from driftline.errors import ConfigurationError


@pytest.fixture(scope="module")
def week() -> pd.DataFrame:
    return generate_host_metrics(seed=0)


def _episodes(frame: pd.DataFrame, kind: str) -> list[pd.DataFrame]:
    rows = frame[KIND_COLUMN].to_numpy() == kind
    starts = np.flatnonzero(rows & ~np.r_[False, rows[:-1]])
    stops = np.flatnonzero(rows & ~np.r_[rows[1:], False]) + 1
    return [frame.iloc[a:b] for a, b in zip(starts, stops, strict=True)]


def test_columns_types_and_ranges(week: pd.DataFrame) -> None:
    assert list(week.columns) == [TIMESTAMP_COLUMN, *METRIC_COLUMNS, LABEL_COLUMN, KIND_COLUMN]
    assert len(week) == 7 * 24 * 60
    assert week[TIMESTAMP_COLUMN].is_monotonic_increasing
    assert (week[TIMESTAMP_COLUMN].diff().dropna() == pd.Timedelta(minutes=1)).all()
    for column in ("cpu_percent", "memory_percent", "disk_percent"):
        assert week[column].between(0.0, 100.0).all()
    for column in ("net_rx_bytes_per_s", "net_tx_bytes_per_s"):
        assert (week[column] > 0).all()
    assert not week[list(METRIC_COLUMNS)].isna().any().any()
    assert set(week[LABEL_COLUMN].unique()) == {0, 1}
    assert ((week[KIND_COLUMN] == "none") == (week[LABEL_COLUMN] == 0)).all()


def test_every_kind_appears_and_the_rate_is_close(week: pd.DataFrame) -> None:
    assert set(week[KIND_COLUMN]) == {"none", *ANOMALY_KINDS}
    assert week[LABEL_COLUMN].mean() == pytest.approx(0.03, abs=0.005)
    rates = [
        generate_host_metrics(5_000, seed=s, anomaly_rate=0.06)[LABEL_COLUMN].mean()
        for s in range(3)
    ]
    assert np.allclose(rates, 0.06, atol=0.01)


def test_same_seed_same_rows_other_seed_other_rows() -> None:
    a = generate_host_metrics(1_000, seed=3)
    pd.testing.assert_frame_equal(a, generate_host_metrics(1_000, seed=3))
    assert not a["cpu_percent"].equals(generate_host_metrics(1_000, seed=4)["cpu_percent"])


def test_no_anomalies_when_rate_is_zero() -> None:
    frame = generate_host_metrics(2_000, seed=1, anomaly_rate=0.0)
    assert frame[LABEL_COLUMN].sum() == 0
    assert set(frame[KIND_COLUMN]) == {"none"}


def test_daily_pattern_on_normal_rows(week: pd.DataFrame) -> None:
    normal = week[week[LABEL_COLUMN] == 0]
    hour = normal[TIMESTAMP_COLUMN].dt.hour
    weekday = normal[TIMESTAMP_COLUMN].dt.day_of_week < 5  # 2024-01-01 is a Monday
    afternoon = normal[(hour == 15) & weekday]
    night = normal[(hour == 3) & weekday]
    assert afternoon["cpu_percent"].mean() > night["cpu_percent"].mean() + 20
    assert afternoon["net_rx_bytes_per_s"].mean() > 2 * night["net_rx_bytes_per_s"].mean()
    # Autocorrelated noise: consecutive minutes are close.
    assert normal["memory_percent"].diff().abs().median() < 1.0


def test_each_kind_has_its_signature(week: pd.DataFrame) -> None:
    normal = week[week[LABEL_COLUMN] == 0]
    for episode in _episodes(week, "cpu_spike"):
        assert (episode["cpu_percent"] >= 88).all()
    for episode in _episodes(week, "combined"):
        assert (episode["cpu_percent"] >= 80).all()
        assert episode["net_rx_bytes_per_s"].median() > 3 * normal["net_rx_bytes_per_s"].median()
    for episode in _episodes(week, "memory_leak"):
        memory = episode["memory_percent"].to_numpy()
        assert memory[-1] >= 92 and np.all(np.diff(memory) >= 0)
    for episode in _episodes(week, "disk_fill"):
        disk = episode["disk_percent"].to_numpy()
        assert disk[-1] - disk[0] >= 14 and disk[-1] > normal["disk_percent"].max()
    for episode in _episodes(week, "network_exfiltration"):
        tx = episode["net_tx_bytes_per_s"].median()
        assert tx > 4 * normal["net_tx_bytes_per_s"].median()
        assert episode["net_rx_bytes_per_s"].median() < 2 * normal["net_rx_bytes_per_s"].max()


def test_bad_arguments_name_the_parameter() -> None:
    with pytest.raises(ConfigurationError, match="n must be at least 1, got 0"):
        generate_host_metrics(0)
    with pytest.raises(ConfigurationError, match=r"anomaly_rate must be in \[0, 0.5\], got 0.7"):
        generate_host_metrics(100, anomaly_rate=0.7)
    with pytest.raises(ConfigurationError, match="anomaly_rate"):
        generate_host_metrics(100, anomaly_rate=-0.1)
    with pytest.raises(ConfigurationError, match="interval_seconds must be positive"):
        generate_host_metrics(100, interval_seconds=0)
