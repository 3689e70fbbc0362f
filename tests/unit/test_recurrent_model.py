"""RecurrentNet reads the right steps, carries state, and its dropout behaves as documented."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from torch import nn

from rnnlab.config import ModelConfig
from rnnlab.data.base import TaskSpec
from rnnlab.models import ModelOutput, RecurrentNet, SequenceDropout, build_model

CELLS = ["rnn", "lstm", "gru"]


def real_spec(head: str = "many_to_one", input_size: int = 2, output_size: int = 1) -> TaskSpec:
    return TaskSpec(
        head=head, loss="mse", input_kind="real", input_size=input_size, output_size=output_size
    )


def make(spec: TaskSpec, cell: str = "lstm", **fields: Any) -> RecurrentNet:
    torch.manual_seed(0)
    fields.setdefault("hidden_size", 8)
    cfg = ModelConfig(name=cell, cell=cell, **fields)
    return build_model(cfg, spec).eval()


# --- dropout ---------------------------------------------------------------------------------


def test_variational_dropout_uses_one_mask_for_every_time_step() -> None:
    torch.manual_seed(0)
    drop = SequenceDropout(0.5, variational=True).train()
    out = drop(torch.ones(4, 10, 16))
    assert torch.equal(out, out[:, :1].expand_as(out))
    assert set(out.unique().tolist()) == {0.0, 2.0}  # kept units rescaled by 1 / (1 - p)
    assert not torch.equal(out[0], out[1])  # one mask per sequence, not per batch


def test_standard_dropout_draws_a_new_mask_at_each_step() -> None:
    torch.manual_seed(0)
    out = SequenceDropout(0.5, variational=False).train()(torch.ones(4, 10, 16))
    assert not torch.equal(out, out[:, :1].expand_as(out))


@pytest.mark.parametrize("variational", [True, False])
def test_dropout_is_the_identity_in_eval_mode_and_at_p_zero(variational: bool) -> None:
    x = torch.randn(3, 5, 7)
    assert torch.equal(SequenceDropout(0.5, variational).eval()(x), x)
    assert torch.equal(SequenceDropout(0.0, variational).train()(x), x)


def test_model_dropout_is_active_in_training_and_off_in_eval() -> None:
    net = make(
        real_spec("many_to_many"),
        dropout=0.5,
        dropout_input=0.3,
        dropout_variational=True,
        num_layers=2,
    )
    x = torch.randn(2, 6, 2)
    torch.testing.assert_close(net(x).predictions, net(x).predictions)
    net.train()
    torch.manual_seed(1)
    first = net(x).predictions
    assert not torch.equal(first, net(x).predictions)


# --- many-to-one reads the last valid step ---------------------------------------------------


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("packed", [False, True])
def test_many_to_one_prediction_ignores_padding_after_the_true_length(
    cell: str, bidirectional: bool, packed: bool
) -> None:
    net = make(
        real_spec(),
        cell,
        num_layers=2,
        bidirectional=bidirectional,
        pack_sequences=packed,
        init={"recurrent": "orthogonal"},
    )
    lengths = torch.tensor([5, 2, 7, 3])
    torch.manual_seed(1)
    x = torch.randn(4, 9, 2)  # T=9 > every length: all padding is random junk
    junk = x.clone()
    for i, n in enumerate(lengths.tolist()):
        junk[i, n:] = 100.0 * torch.randn(9 - n, 2)
    batched = net(x, lengths).predictions
    torch.testing.assert_close(net(junk, lengths).predictions, batched)
    for i, n in enumerate(lengths.tolist()):  # each sequence alone, without any padding
        alone = net(x[i : i + 1, :n], torch.tensor([n])).predictions
        torch.testing.assert_close(batched[i : i + 1], alone, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("bidirectional", [False, True])
def test_many_to_one_head_sees_each_direction_where_it_ends(cell: str, bidirectional: bool) -> None:
    # Forward direction ends at the last valid step, backward at step 0: both are the
    # layer's final state h_n, which packing makes exact for every sequence.
    net = make(real_spec(), cell, num_layers=2, bidirectional=bidirectional, pack_sequences=True)
    seen: list[torch.Tensor] = []
    net.head.register_forward_pre_hook(lambda _mod, args: seen.append(args[0]))
    out = net(torch.randn(4, 9, 2), torch.tensor([5, 2, 9, 3]))
    last = out.hidden[-1]
    h_n = last[0] if isinstance(last, tuple) else last  # (directions, B, H)
    expected = torch.cat(list(h_n), dim=-1)
    torch.testing.assert_close(seen[0].reshape(expected.shape), expected)


def test_many_to_one_without_lengths_reads_the_last_step() -> None:
    net = make(real_spec())
    x = torch.randn(3, 6, 2)
    full = torch.full((3,), 6)
    torch.testing.assert_close(net(x).predictions, net(x, full).predictions)
    assert net(x).predictions.shape == (3, 1)


# --- shapes and inputs -----------------------------------------------------------------------


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("packed", [False, True])
def test_many_to_many_predicts_every_step(cell: str, bidirectional: bool, packed: bool) -> None:
    net = make(
        real_spec("many_to_many", input_size=3, output_size=5),
        cell,
        num_layers=2,
        bidirectional=bidirectional,
        pack_sequences=packed,
    )
    out = net(torch.randn(4, 7, 3), torch.tensor([7, 3, 5, 1]))
    assert isinstance(out, ModelOutput)
    assert out.predictions.shape == (4, 7, 5)
    assert len(out.hidden) == 2


def test_token_inputs_are_embedded_and_padding_embeds_to_zero() -> None:
    spec = TaskSpec(
        head="many_to_one",
        loss="cross_entropy",
        input_kind="tokens",
        input_size=20,
        output_size=3,
        padding_idx=0,
    )
    net = make(spec, "gru", embedding_dim=6, pack_sequences=True)
    assert isinstance(net.encoder, nn.Embedding)
    assert net.encoder.weight.shape == (20, 6)
    assert torch.equal(net.encoder.weight[0].detach(), torch.zeros(6))
    tokens = torch.tensor([[3, 4, 5, 0], [7, 8, 0, 0]])
    out = net(tokens, torch.tensor([3, 2]))
    assert out.predictions.shape == (2, 3)


def test_token_embedding_defaults_to_hidden_size() -> None:
    spec = TaskSpec(
        head="many_to_many",
        loss="cross_entropy",
        input_kind="tokens",
        input_size=11,
        output_size=11,
    )
    net = make(spec, "lstm", hidden_size=12)
    assert net.encoder.weight.shape == (11, 12)
    assert net(torch.randint(0, 11, (2, 5))).predictions.shape == (2, 5, 11)


def test_real_inputs_go_in_raw_or_through_a_linear_projection() -> None:
    raw = make(real_spec(input_size=4), "rnn")
    assert isinstance(raw.encoder, nn.Identity)
    assert raw.layers[0].input_size == 4
    projected = make(real_spec(input_size=4), "rnn", embedding_dim=10, nonlinearity="relu")
    assert isinstance(projected.encoder, nn.Linear)
    assert projected.layers[0].input_size == 10
    assert projected.layers[0].nonlinearity == "relu"
    assert projected(torch.randn(2, 3, 4)).predictions.shape == (2, 1)


# --- hidden state carry (truncated BPTT) -----------------------------------------------------


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("packed", [False, True])
def test_running_in_two_halves_with_carried_hidden_equals_running_whole(
    cell: str, packed: bool
) -> None:
    net = make(
        real_spec("many_to_many", input_size=3, output_size=2),
        cell,
        num_layers=2,
        pack_sequences=packed,
    )
    x = torch.randn(3, 10, 3)
    full = torch.full((3,), 10)
    whole = net(x, full)
    first = net(x[:, :4], torch.full((3,), 4))
    carried = RecurrentNet.detach_hidden(first.hidden)
    second = net(x[:, 4:], torch.full((3,), 6), carried)
    joined = torch.cat([first.predictions, second.predictions], dim=1)
    torch.testing.assert_close(joined, whole.predictions)
    for a, b in zip(second.hidden, whole.hidden, strict=True):
        torch.testing.assert_close(a, b)


def test_detach_hidden_keeps_values_and_cuts_the_graph() -> None:
    net = make(real_spec("many_to_many"), "lstm", num_layers=2).train()
    hidden = net(torch.randn(2, 4, 2)).hidden
    assert hidden[0][0].requires_grad
    detached = RecurrentNet.detach_hidden(hidden)
    assert detached is not None
    for state, cut in zip(hidden, detached, strict=True):
        assert isinstance(cut, tuple)
        for a, b in zip(state, cut, strict=True):
            assert not b.requires_grad
            assert torch.equal(a, b)
    assert RecurrentNet.detach_hidden(None) is None


def test_hidden_with_the_wrong_number_of_layers_is_refused() -> None:
    net = make(real_spec(), "gru", num_layers=2)
    with pytest.raises(ValueError, match="2 layers"):
        net(torch.randn(1, 3, 2), hidden=[torch.zeros(1, 1, 8)])


# --- diagnostics hooks -----------------------------------------------------------------------


@pytest.mark.parametrize("packed", [False, True])
def test_pre_hook_on_each_layer_sees_its_padded_input_sequence(packed: bool) -> None:
    net = make(real_spec(input_size=3), "lstm", num_layers=2, bidirectional=True)
    net.pack_sequences = packed
    seen: list[tuple[int, ...]] = []
    for layer in net.layers:
        assert isinstance(layer, nn.LSTM)
        layer.register_forward_pre_hook(lambda _mod, args: seen.append(tuple(args[0].shape)))
    net(torch.randn(4, 6, 3), torch.tensor([6, 2, 4, 3]))
    assert seen == [(4, 6, 3), (4, 6, 16)]


# --- cuDNN -----------------------------------------------------------------------------------


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("cell", CELLS)
def test_cudnn_packed_bidirectional_matches_cpu(cell: str) -> None:
    net = make(real_spec("many_to_one"), cell, num_layers=2, bidirectional=True)
    x, lengths = torch.randn(4, 9, 2), torch.tensor([5, 2, 9, 3])
    expected = net(x, lengths).predictions
    # cudnn.flags() turns TF32 on by default (10-bit mantissa): off, so that only the packed,
    # bidirectional cuDNN path is compared, not TF32 rounding (1e-4 apart on an H200).
    with torch.backends.cudnn.flags(enabled=True, allow_tf32=False):
        got = net.cuda()(x.cuda(), lengths).predictions
    torch.testing.assert_close(got.cpu(), expected, atol=1e-4, rtol=1e-4)
