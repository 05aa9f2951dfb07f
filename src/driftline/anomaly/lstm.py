"""An LSTM autoencoder over sliding windows: anomalies are what it cannot reconstruct.

Needs PyTorch, the optional ``lstm`` extra (``pip install 'driftline[lstm]'``). torch is imported
only when a detector is fitted or scores rows, so this module imports without it; calling it
without torch raises a :class:`~driftline.errors.ConfigurationError` naming the extra. Training
runs on the CPU.

The fitted network is kept as plain NumPy arrays when pickled, so a saved detector loads without
touching torch (it is needed again to score).
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, Self

import numpy as np
import pandas as pd

from driftline.anomaly.models import CLASSES, binary_labels, proba_from_score
from driftline.errors import ConfigurationError, DataError

__all__ = ["EXTRA_HINT", "LSTMAutoencoderDetector", "torch_available"]

EXTRA_HINT = "pip install 'driftline[lstm]'"


def torch_available() -> bool:
    """Whether PyTorch (the ``lstm`` extra) is installed."""
    return importlib.util.find_spec("torch") is not None


def _torch() -> Any:
    """The torch module, or a clear error naming the extra.

    Imported by name so that this module, and type checking, work without torch installed.
    """
    try:
        return importlib.import_module("torch")
    except ImportError as exc:
        raise ConfigurationError(
            f"the LSTM autoencoder needs PyTorch, the 'lstm' extra: {EXTRA_HINT}"
        ) from exc


@contextmanager
def _threads(torch: Any, count: int | None) -> Iterator[None]:
    """Run with ``count`` intra-op threads, then restore the previous setting."""
    if count is None:
        yield
        return
    previous = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def _network(torch: Any, n_features: int, hidden_size: int) -> Any:
    """Encoder LSTM, decoder LSTM and a linear read-out, as one module dictionary."""
    nn = torch.nn
    return nn.ModuleDict(
        {
            "encoder": nn.LSTM(n_features, hidden_size, batch_first=True),
            "decoder": nn.LSTM(hidden_size, hidden_size, batch_first=True),
            "head": nn.Linear(hidden_size, n_features),
        }
    )


def _reconstruct(net: Any, batch: Any) -> Any:
    """Encode each window into the encoder's last hidden state, then decode it step by step."""
    _, (hidden, _) = net["encoder"](batch)
    code = hidden[-1].unsqueeze(1).expand(-1, batch.shape[1], -1)
    decoded, _ = net["decoder"](code)
    return net["head"](decoded)


def _windows(x: np.ndarray, window: int) -> np.ndarray:
    """All stride-1 windows of ``x`` (rows padded at the front when fewer than ``window``)."""
    if len(x) < window:
        x = np.concatenate([np.repeat(x[:1], window - len(x), axis=0), x])
    view = np.lib.stride_tricks.sliding_window_view(x, window, axis=0)
    return np.ascontiguousarray(view.transpose(0, 2, 1), dtype=np.float32)


class LSTMAutoencoderDetector:
    """An LSTM encoder–decoder trained to reconstruct windows of normal metrics.

    Metrics are standardized with the training mean and deviation and cut into overlapping
    windows of ``window`` consecutive rows. The encoder reads a window into its last hidden
    state; the decoder unrolls that code back into the window. Trained on normal behaviour, the
    network reconstructs normal windows well and anomalous ones badly. The anomaly score of a
    row is its squared reconstruction error, averaged over features and over every window that
    contains the row; rows scoring above the ``1 - contamination`` quantile of the training
    rows' scores are flagged, and ``predict_proba`` follows
    :func:`~driftline.anomaly.models.proba_from_score` (unbounded form).

    Rows of a frame are taken to be consecutive observations in time order; a frame shorter
    than ``window`` (a single served record) is padded by repeating its first row, so a detector
    scoring rows one by one sees no context and behaves like a point detector. When labels are
    given to :meth:`fit`, windows containing an anomaly are left out of training, as in the
    paper; the threshold still comes from all training rows.

    This is a compact variant of the paper's model: the decoder is fed the code at every step
    rather than its own previous output, and the threshold is a quantile rather than a fitted
    error distribution.

    Parameters
    ----------
    window
        Rows per window (at least 2).
    hidden_size
        Units of the encoder and decoder LSTMs.
    epochs
        Passes over the training windows.
    batch_size
        Windows per gradient step.
    learning_rate
        Adam step size.
    contamination
        Share of training rows flagged, in ``(0, 0.5]``: it sets the threshold.
    max_windows
        Most training windows per epoch (a seeded sample when there are more), which bounds
        training time on long histories.
    num_threads
        torch's intra-op threads while fitting and scoring, restored afterwards; networks this
        small run fastest on one. ``None`` leaves torch's setting alone.
    seed
        Seed of the weights, the window sample and the batch order.

    Example
    -------
    >>> import pytest; _ = pytest.importorskip("torch")
    >>> t = np.arange(600)
    >>> wave = pd.DataFrame({"a": np.sin(t / 5), "b": np.cos(t / 5)})
    >>> detector = LSTMAutoencoderDetector(window=10, epochs=15, contamination=0.02, seed=0)
    >>> detector = detector.fit(wave)
    >>> probe = wave.iloc[:60].copy()
    >>> probe.loc[40, "a"] = 4.0
    >>> flagged = np.flatnonzero(detector.flag(probe))
    >>> bool(40 in flagged), bool(detector.score(probe)[40] > 10 * np.median(detector.score(probe)))
    (True, True)

    References
    ----------
    Malhotra, P., Ramakrishnan, A., Anand, G., Vig, L., Agarwal, P. and Shroff, G. (2016).
    LSTM-based Encoder-Decoder for Multi-sensor Anomaly Detection. *ICML 2016 Anomaly Detection
    Workshop*. arXiv:1607.00148.
    """

    def __init__(
        self,
        *,
        window: int = 20,
        hidden_size: int = 16,
        epochs: int = 10,
        batch_size: int = 128,
        learning_rate: float = 1e-2,
        contamination: float = 0.03,
        max_windows: int = 2_000,
        num_threads: int | None = 1,
        seed: int = 0,
    ) -> None:
        if window < 2:
            raise ConfigurationError(f"window must be at least 2, got {window}")
        if hidden_size < 1:
            raise ConfigurationError(f"hidden_size must be at least 1, got {hidden_size}")
        if epochs < 1:
            raise ConfigurationError(f"epochs must be at least 1, got {epochs}")
        if batch_size < 1:
            raise ConfigurationError(f"batch_size must be at least 1, got {batch_size}")
        if not learning_rate > 0:
            raise ConfigurationError(f"learning_rate must be positive, got {learning_rate}")
        if not 0.0 < contamination <= 0.5:
            raise ConfigurationError(f"contamination must be in (0, 0.5], got {contamination}")
        if max_windows < 1:
            raise ConfigurationError(f"max_windows must be at least 1, got {max_windows}")
        if num_threads is not None and num_threads < 1:
            raise ConfigurationError(f"num_threads must be at least 1 or None, got {num_threads}")
        self.window = window
        self.hidden_size = hidden_size
        self.epochs = epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.contamination = contamination
        self.max_windows = max_windows
        self.num_threads = num_threads
        self.seed = seed
        self.features_: tuple[str, ...] | None = None
        self.mean_ = np.zeros(0)
        self.scale_ = np.ones(0)
        self.threshold_ = 1.0
        self.losses_: list[float] = []
        self._weights: dict[str, np.ndarray] | None = None
        self._net: Any = None

    def __repr__(self) -> str:
        return (
            f"LSTMAutoencoderDetector(window={self.window}, hidden_size={self.hidden_size}, "
            f"epochs={self.epochs}, batch_size={self.batch_size}, "
            f"learning_rate={self.learning_rate}, contamination={self.contamination}, "
            f"max_windows={self.max_windows}, num_threads={self.num_threads}, seed={self.seed})"
        )

    # --- pickling: weights as NumPy arrays, the torch module rebuilt on demand ---------------

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_net"] = None
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)

    @property
    def classes(self) -> tuple[str, str]:
        return CLASSES

    def _matrix(self, frame: pd.DataFrame) -> np.ndarray:
        if self.features_ is None:
            raise ConfigurationError("LSTMAutoencoderDetector is not fitted; call fit(frame) first")
        missing = [name for name in self.features_ if name not in frame.columns]
        if missing:
            raise DataError(
                f"data lacks feature column(s) {missing}; the detector expects "
                f"{list(self.features_)}"
            )
        try:
            x = frame[list(self.features_)].to_numpy(dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise DataError(f"the LSTM autoencoder needs numeric features: {exc}") from exc
        # Missing values become the training mean (zero once standardized).
        z = (x - self.mean_) / self.scale_
        return np.nan_to_num(z, nan=0.0)

    def _module(self, torch: Any) -> Any:
        if self._net is None:
            if self._weights is None or self.features_ is None:
                raise ConfigurationError(
                    "LSTMAutoencoderDetector is not fitted; call fit(frame) first"
                )
            net = _network(torch, len(self.features_), self.hidden_size)
            net.load_state_dict({k: torch.from_numpy(v) for k, v in self._weights.items()})
            net.eval()
            self._net = net
        return self._net

    def fit(self, frame: pd.DataFrame, y: Sequence[Any] | np.ndarray | None = None) -> Self:
        """Train on ``frame``'s rows in order; with labels ``y``, only on normal windows."""
        torch = _torch()
        if frame.shape[1] == 0 or len(frame) == 0:
            raise DataError("data has no feature columns or no rows")
        self.features_ = tuple(str(c) for c in frame.columns)
        try:
            x = frame.to_numpy(dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise DataError(f"the LSTM autoencoder needs numeric features: {exc}") from exc
        self.mean_ = np.nan_to_num(np.nanmean(x, axis=0), nan=0.0)
        scale = np.nan_to_num(np.nanstd(x, axis=0), nan=1.0)
        self.scale_ = np.where(scale > 0, scale, 1.0)
        z = self._matrix(frame)
        windows = _windows(z, self.window)
        if y is not None:
            labels = binary_labels(y)
            if len(labels) != len(frame):
                raise DataError(f"got {len(labels)} labels for {len(frame)} rows")
            dirty = _windows(labels[:, None].astype(np.float64), self.window).max(axis=(1, 2))
            if (dirty == 0).any():
                windows = windows[dirty == 0]
        rng = np.random.default_rng(self.seed)
        with _threads(torch, self.num_threads), torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            net = _network(torch, z.shape[1], self.hidden_size)
            optimizer = torch.optim.Adam(net.parameters(), lr=self.learning_rate)
            net.train()
            self.losses_ = []
            for _ in range(self.epochs):
                chosen = rng.permutation(len(windows))[: self.max_windows]
                total = 0.0
                for start in range(0, len(chosen), self.batch_size):
                    batch = torch.from_numpy(windows[chosen[start : start + self.batch_size]])
                    optimizer.zero_grad()
                    loss = torch.mean((_reconstruct(net, batch) - batch) ** 2)
                    loss.backward()
                    optimizer.step()
                    total += float(loss.item()) * len(batch)
                self.losses_.append(total / len(chosen))
            net.eval()
            self._weights = {
                k: v.detach().cpu().numpy().copy() for k, v in net.state_dict().items()
            }
            self._net = net
            train_scores = self._score_standardized(torch, z)
        self.threshold_ = max(
            float(np.quantile(train_scores, 1.0 - self.contamination)), 1e-12
        )
        return self

    def _score_standardized(self, torch: Any, z: np.ndarray) -> np.ndarray:
        net = self._module(torch)
        n = len(z)
        windows = _windows(z, self.window)
        errors = np.empty(windows.shape[:2])
        with torch.inference_mode():
            for start in range(0, len(windows), 1_024):
                batch = torch.from_numpy(windows[start : start + 1_024])
                squared = (_reconstruct(net, batch) - batch) ** 2
                errors[start : start + len(batch)] = squared.mean(dim=2).numpy()
        # Row i of the (padded) series sits at offset k of the window starting at i - k.
        padded = len(windows) + self.window - 1
        total = np.zeros(padded)
        count = np.zeros(padded)
        for k in range(self.window):
            total[k : k + len(windows)] += errors[:, k]
            count[k : k + len(windows)] += 1.0
        return np.asarray((total / count)[padded - n :])

    def score(self, frame: pd.DataFrame) -> np.ndarray:
        """Mean squared reconstruction error of each row (standardized units)."""
        z = self._matrix(frame)
        if len(z) == 0:
            return np.zeros(0)
        torch = _torch()
        with _threads(torch, self.num_threads):
            return self._score_standardized(torch, z)

    def flag(self, frame: pd.DataFrame) -> np.ndarray:
        """Rows whose score is above :attr:`threshold_`."""
        return np.asarray(self.score(frame) > self.threshold_)

    def predict_proba(self, frame: pd.DataFrame) -> np.ndarray:
        """``(normal, anomaly)`` by :func:`~driftline.anomaly.models.proba_from_score`."""
        return proba_from_score(self.score(frame), self.threshold_)
