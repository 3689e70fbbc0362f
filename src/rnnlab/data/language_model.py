"""Language modelling on the Penn Treebank (Mikolov's split), by word or by character.

The text comes from the `treebank` package (`treebank.penn['train'|'valid'|'test']`), the
preprocessed corpus of Mikolov et al. 2010: 10k-word vocabulary, rare words already `<unk>`,
numbers `N`. Each split is one token stream (every line ends in `<eos>`), cut into
`train.batch_size` parallel rows and served as consecutive windows of `task.bptt` steps, as
in Zaremba et al. 2014: batch k+1 continues batch k row by row, so the module carries the
hidden state across batches and cuts the gradient there (truncated BPTT; `TaskSpec.stateful`).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch.utils.data import DataLoader, Dataset

from rnnlab.config import TaskConfigBase
from rnnlab.data.base import SequenceBatch, SequenceDataModule, TaskSpec
from rnnlab.data.cache import load_or_build
from rnnlab.data.fetch import PTB
from rnnlab.data.task_configs import LanguageModelConfig, PtbCharConfig, PtbWordConfig
from rnnlab.data.variable_length import SPLITS, data_fields
from rnnlab.data.vocab import UNK, Vocabulary

EOS = "<eos>"
EOL = "\n"  # the character-level end of line
_PTB_SPLIT = {"train": "train", "val": "valid", "test": "test"}


def ptb_text(split: str) -> str:
    """One split of Mikolov's PTB text, as the `treebank` package ships it."""
    PTB.path()  # a one-line ConfigError if the package is missing
    import treebank  # a 6 MB module of string literals: imported only when needed

    return treebank.penn[_PTB_SPLIT[split]]


def word_stream(text: str) -> list[str]:
    """Words of every non-empty line, each line closed by `<eos>` (929k tokens for train)."""
    out: list[str] = []
    for line in text.split("\n"):
        words = line.split()
        if words:
            out.extend(words)
            out.append(EOS)
    return out


def char_stream(text: str) -> list[str]:
    """Characters of every non-empty line (words joined by one space), each closed by `\\n`."""
    out: list[str] = []
    for line in text.split("\n"):
        words = line.split()
        if words:
            out.extend(" ".join(words))
            out.append(EOL)
    return out


class ContiguousBatches(Dataset):
    """A token stream as `rows` parallel streams, served as consecutive windows of `bptt` steps.

    Item k is a whole batch: inputs (rows, T) and next-token targets (rows, T), T = bptt
    except for a shorter last window. Row r of item k+1 continues row r of item k.
    """

    def __init__(self, stream: torch.Tensor, rows: int, bptt: int) -> None:
        steps = (len(stream) - 1) // rows
        if steps < 1:
            raise ValueError(f"{len(stream)} tokens cannot fill {rows} rows of at least 1 step")
        self.inputs = stream[: rows * steps].view(rows, steps)
        self.targets = stream[1 : rows * steps + 1].view(rows, steps)
        self.rows = rows
        self.steps = steps
        self.bptt = bptt

    def __len__(self) -> int:
        return math.ceil(self.steps / self.bptt)

    def __getitem__(self, k: int) -> SequenceBatch:
        if not 0 <= k < len(self):
            raise IndexError(k)
        start = k * self.bptt
        end = min(start + self.bptt, self.steps)
        lengths = torch.full((self.rows,), end - start, dtype=torch.long)
        return SequenceBatch(self.inputs[:, start:end], self.targets[:, start:end], lengths)


def whole_batch(batch: SequenceBatch) -> SequenceBatch:
    """collate_fn for datasets whose items are already batches (module-level: it pickles)."""
    return batch


def unigram_cross_entropy(train: torch.Tensor, test: torch.Tensor, vocab_size: int) -> float:
    """Nats per token of the add-one unigram model of `train` on `test`: the memoryless baseline."""
    counts = torch.bincount(train, minlength=vocab_size).double() + 1.0
    log_p = counts.log() - counts.sum().log()
    return float(-log_p[test].mean())


class LanguageModelDataModule(SequenceDataModule):
    """Next-token prediction over contiguous windows of one PTB split's token stream."""

    Config: ClassVar[type[TaskConfigBase]] = LanguageModelConfig
    cfg: LanguageModelConfig

    def __init__(self, cfg: LanguageModelConfig, batch_size: int, seed: int) -> None:
        super().__init__(cfg, batch_size, seed)
        self._streams: dict[str, torch.Tensor] = {}
        self._vocab: Vocabulary | None = None
        self._spec: TaskSpec | None = None

    def _build(self) -> dict[str, Any]:
        tokenize = word_stream if self.cfg.unit == "word" else char_stream
        tokens = {split: tokenize(ptb_text(split)) for split in SPLITS}
        vocab = Vocabulary.build(
            [tokens["train"]],
            min_freq=self.cfg.min_freq,
            max_size=self.cfg.max_vocab,
            pad=None,
            unk=UNK,
        )
        payload: dict[str, Any] = {"vocab": vocab.to_dict()}
        for split in SPLITS:
            payload[split] = vocab.encode_tensor(tokens[split])
        return payload

    def setup(self, stage: str | None = None) -> None:
        if self._vocab is not None:
            return
        key = {**data_fields(self.cfg), "source": PTB.fingerprint()}
        key.pop("tied_embeddings", None)  # a model choice, not a data one
        key.pop("bptt", None)
        payload = load_or_build(f"ptb_{self.cfg.unit}", key, self._build)
        self._vocab = Vocabulary.from_dict(payload["vocab"])
        self._streams = {split: payload[split] for split in SPLITS}

    @property
    def vocab(self) -> Vocabulary:
        self.setup()
        assert self._vocab is not None
        return self._vocab

    def stream(self, split: str) -> torch.Tensor:
        """A split as one long tensor of token ids."""
        self.setup()
        return self._streams[split]

    @property
    def spec(self) -> TaskSpec:
        if self._spec is None:
            self._spec = self._make_spec()
        return self._spec

    def _make_spec(self) -> TaskSpec:
        size = len(self.vocab)
        nats = unigram_cross_entropy(self.stream("train"), self.stream("test"), size)
        scoring = self.cfg.scoring  # perplexity for words, bits per character for characters
        metric = scoring.metrics[0]
        baseline = math.exp(nats) if metric == "perplexity" else nats / math.log(2.0)
        return TaskSpec(
            head="many_to_many",
            loss="cross_entropy",
            input_kind="tokens",
            input_size=size,
            output_size=size,
            metrics=scoring.metrics,
            monitor=scoring.monitor,
            monitor_mode=scoring.monitor_mode,
            # A unigram model (no memory at all) scores this on the test split.
            baselines={metric: round(baseline, 4), "cross_entropy": round(nats, 4)},
            padding_idx=None,  # every window is full: nothing is padded
            stateful=True,
        )

    def dataset(self, split: str) -> ContiguousBatches:
        return ContiguousBatches(self.stream(split), self.batch_size, self.cfg.bptt)

    def _loader(self, split: str) -> DataLoader:
        # Order matters: window k+1 continues window k, so no shuffling, ever.
        return DataLoader(
            self.dataset(split),
            batch_size=None,
            shuffle=False,
            num_workers=0,
            collate_fn=whole_batch,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader("train")

    def val_dataloader(self) -> DataLoader:
        return self._loader("val")

    def test_dataloader(self) -> DataLoader:
        return self._loader("test")

    def describe(self) -> dict[str, Any]:
        facts: dict[str, Any] = {"vocab_size": len(self.vocab), "bptt": self.cfg.bptt}
        for split in SPLITS:
            facts[f"{split}_tokens"] = len(self.stream(split))
        facts["train_unk_fraction"] = round(
            float((self.stream("train") == self.vocab.unk_id).float().mean()), 4
        )
        return facts

    def artifacts(self, folder: Path) -> list[Path]:
        return [self.vocab.save(folder / f"vocab_{self.cfg.unit}.json")]


class PtbWordDataModule(LanguageModelDataModule):
    """Word-level PTB language modelling, scored in perplexity."""

    Config: ClassVar[type[TaskConfigBase]] = PtbWordConfig


class PtbCharDataModule(LanguageModelDataModule):
    """Character-level PTB language modelling, scored in bits per character."""

    Config: ClassVar[type[TaskConfigBase]] = PtbCharConfig
