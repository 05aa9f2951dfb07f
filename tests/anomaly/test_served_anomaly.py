"""An anomaly detector is registered and served by /predict like any other model."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient
from typer.testing import CliRunner

from driftline.anomaly.dataset import generate_host_metrics
from driftline.cli import app
from driftline.config import Settings
from driftline.service import create_app


def test_registered_detector_serves_scores(settings: Settings, tmp_path: Path) -> None:
    data = tmp_path / "host.csv"
    generate_host_metrics(3_000, seed=2).to_csv(data, index=False)
    result = CliRunner().invoke(
        app,
        ["--home", str(settings.home), "anomaly", "train", str(data), "-o", str(tmp_path / "b")],
    )
    assert result.exit_code == 0, result.output
    assert "registered host-anomaly version 1" in " ".join(result.output.split())
    served = settings.model_copy(update={"model_name": "host-anomaly"})
    normal = {  # about the median of the generated host's normal rows
        "cpu_percent": 26.0,
        "memory_percent": 46.0,
        "disk_percent": 53.5,
        "net_rx_bytes_per_s": 3.5e6,
        "net_tx_bytes_per_s": 2.2e6,
    }
    spike = {**normal, "cpu_percent": 99.0, "net_tx_bytes_per_s": 5e7}
    with TestClient(create_app(served)) as client:
        calm = client.post("/predict", json={"features": normal})
        hot = client.post("/predict", json={"features": spike})
        assert calm.status_code == hot.status_code == 200, calm.text
        assert calm.json()["prediction"] == "normal"
        assert hot.json()["prediction"] == "anomaly"
        assert hot.json()["probabilities"]["anomaly"] > calm.json()["probabilities"]["anomaly"]
