"""LSTM teacher/student classifiers: shapes, features, parameter counts, config round-trip."""

from __future__ import annotations

import pytest
import torch

import tdml.models.lstm  # noqa: F401  (registers lstm_teacher / lstm_student)
from tdml.errors import ConfigError
from tdml.models.base import Classifier, Dims, build_model, model_from_config


@pytest.fixture(autouse=True)
def _cpu_threads():
    torch.set_num_threads(1)  # the suite runs next to other jobs on a small machine


def lstm_params(n_in: int, hidden: int, layers: int) -> int:
    """PyTorch LSTM: 4 gates x (W_ih, W_hh, b_ih, b_hh) per layer."""
    first = 4 * hidden * (n_in + hidden + 2)
    return first + (layers - 1) * 4 * hidden * (2 * hidden + 2)


@pytest.mark.parametrize("name, hidden, layers", [("lstm_teacher", 100, 3), ("lstm_student", 8, 1)])
def test_shapes_and_features(name, hidden, layers):
    dims = Dims(seq_len=12, n_channels=2, n_classes=3)
    model = build_model(name, dims)
    assert isinstance(model, Classifier) and model.task == "classify"
    assert (model.params.hidden, model.params.layers) == (hidden, layers)
    x = torch.randn(5, 12, 2)
    logits, feats = model.forward_features(x)
    assert logits.shape == (5, 3)
    assert feats["sequence"].shape == (5, 12, hidden)
    torch.testing.assert_close(feats["last"], feats["sequence"][:, -1])
    assert model.feature_shapes() == {"sequence": (12, hidden), "last": (hidden,), "cell_sequence": (12, hidden)}
    assert model.distill_feature in feats
    torch.testing.assert_close(model(x), logits)


def test_head_reads_last_hidden_state():
    model = build_model("lstm_student", Dims(seq_len=6, n_channels=1, n_classes=2))
    x = torch.randn(4, 6, 1)
    logits, feats = model.forward_features(x)
    torch.testing.assert_close(logits, model.head(feats["last"]))


def test_parameter_counts_and_ratio():
    dims = Dims(seq_len=100, n_channels=1, n_classes=2)
    teacher, student = build_model("lstm_teacher", dims), build_model("lstm_student", dims)
    assert teacher.n_parameters() == lstm_params(1, 100, 3) + 100 * 2 + 2 == 203_002
    assert student.n_parameters() == lstm_params(1, 8, 1) + 8 * 2 + 2 == 370
    ratio = teacher.n_parameters() / student.n_parameters()
    assert 500 < ratio < 600  # the paper's "~500x"


def test_params_override_and_round_trip():
    dims = Dims(seq_len=10, n_channels=3, n_classes=4)
    model = build_model("lstm_student", dims, {"hidden": 16, "layers": 2, "dropout": 0.1})
    rebuilt = model_from_config(model.config())
    assert type(rebuilt) is type(model) and rebuilt.params == model.params
    rebuilt.load_state_dict(model.state_dict())
    model.eval(), rebuilt.eval()
    x = torch.randn(2, 10, 3)
    torch.testing.assert_close(model(x), rebuilt(x))


@pytest.mark.parametrize("params, message", [
    ({"hidden": 0}, "hidden"), ({"layers": 0}, "layers"), ({"dropout": 1.0}, "dropout"), ({"size": 3}, "unknown key"),
])
def test_invalid_params(params, message):
    with pytest.raises(ConfigError, match=message):
        build_model("lstm_teacher", Dims(seq_len=10, n_channels=1, n_classes=2), params)


def test_needs_classes():
    with pytest.raises(ConfigError, match="n_classes"):
        build_model("lstm_student", Dims(seq_len=10, n_channels=1))


def test_gradients_reach_every_parameter():
    model = build_model("lstm_teacher", Dims(seq_len=8, n_channels=1, n_classes=3))
    loss = torch.nn.functional.cross_entropy(model(torch.randn(4, 8, 1)), torch.tensor([0, 1, 2, 0]))
    loss.backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())


def _stepwise_cells(lstm: torch.nn.LSTM, x: torch.Tensor) -> torch.Tensor:
    """The top layer's cell states, one LSTMCell step at a time (the slow, obvious reference)."""
    inp = x
    for k in range(lstm.num_layers):
        cell = torch.nn.LSTMCell(inp.shape[-1], lstm.hidden_size)
        for w in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
            setattr(cell, w, getattr(lstm, f"{w}_l{k}"))
        h = c = torch.zeros(x.shape[0], lstm.hidden_size)
        hs, cs = [], []
        for t in range(x.shape[1]):
            h, c = cell(inp[:, t], (h, c))
            hs.append(h)
            cs.append(c)
        inp = torch.stack(hs, 1)
    return torch.stack(cs, 1)


@pytest.mark.parametrize("name", ["lstm_teacher", "lstm_student"])
def test_cell_sequence_is_the_top_layers_cell_states_with_their_gradient(name):
    """MemKD's ``state: cell`` reads these: computed from h in one batched product plus an
    elementwise loop, they must equal a step-by-step LSTMCell run, and carry its gradient."""
    torch.manual_seed(0)
    model = build_model(name, Dims(seq_len=9, n_channels=2, n_classes=3))
    x = torch.randn(3, 9, 2)
    cells = model.features(x)["cell_sequence"]
    torch.testing.assert_close(cells, _stepwise_cells(model.lstm, x), atol=1e-5, rtol=1e-5)
    _, (_, c_n) = model.lstm(x)
    torch.testing.assert_close(cells[:, -1], c_n[-1], atol=1e-5, rtol=1e-5)
    cells.square().sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for n, p in model.lstm.named_parameters())
    assert "_lower" not in dict(model.named_modules()) and not any("_lower" in k for k in model.state_dict())


def test_cell_sequence_costs_nothing_unless_read():
    model = build_model("lstm_student", Dims(seq_len=6, n_channels=1, n_classes=2))
    calls = []
    model._cell_sequence = lambda *a: calls.append(a) or torch.zeros(1)
    _, feats = model.forward_features(torch.randn(2, 6, 1))
    assert "cell_sequence" in feats and not calls
    feats["cell_sequence"], feats["cell_sequence"]
    assert len(calls) == 1  # computed once, then kept
    with torch.no_grad():  # and under the grad mode of the forward that made it
        _, feats = build_model("lstm_student", Dims(seq_len=6, n_channels=1, n_classes=2)).forward_features(
            torch.randn(2, 6, 1))
    assert not feats["cell_sequence"].requires_grad


def test_stacked_cells_with_dropout_in_training_are_refused():
    model = build_model("lstm_teacher", Dims(seq_len=6, n_channels=1, n_classes=2), {"dropout": 0.2})
    _, feats = model.forward_features(torch.randn(2, 6, 1))
    with pytest.raises(ConfigError, match="dropout=0"):
        feats["cell_sequence"]
    model.eval()
    assert model.features(torch.randn(2, 6, 1))["cell_sequence"].shape == (2, 6, 100)
