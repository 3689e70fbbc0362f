"""Word and character vocabularies built on the training split only, with an unknown token.

Building on the training split alone is what makes a test perplexity or accuracy honest:
a word first seen in the test set maps to the unknown token, as it would for a new input.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import torch

PAD = "<pad>"
UNK = "<unk>"

# Words, hashtags and @mentions as one token, contractions kept whole, punctuation alone.
_WORD_RE = re.compile(r"[#@]?\w+(?:['’]\w+)?|[^\w\s]")


def word_tokens(text: str, lowercase: bool = True) -> list[str]:
    """Split free text into words and punctuation marks."""
    return _WORD_RE.findall(text.lower() if lowercase else text)


def char_tokens(text: str) -> list[str]:
    return list(text)


class Vocabulary:
    """Tokens ↔ ids. Specials come first: padding (if any) is id 0, then the unknown token."""

    def __init__(self, tokens: Sequence[str], pad: str | None = PAD, unk: str | None = UNK) -> None:
        self.tokens = list(tokens)
        self.index = {tok: i for i, tok in enumerate(self.tokens)}
        if len(self.index) != len(self.tokens):
            raise ValueError("a vocabulary's tokens must be unique")
        for special in (pad, unk):
            if special is not None and special not in self.index:
                raise ValueError(f"special token {special!r} is not in the vocabulary")
        self.pad = pad
        self.unk = unk

    @classmethod
    def build(
        cls,
        sequences: Iterable[Iterable[str]],
        min_freq: int = 1,
        max_size: int | None = None,
        pad: str | None = PAD,
        unk: str | None = UNK,
    ) -> Vocabulary:
        """Count tokens in `sequences` (the training split) and keep those seen `min_freq` times.

        Order: specials, then by falling count, ties alphabetical (stable across runs).
        `max_size` counts the specials.
        """
        if min_freq < 1:
            raise ValueError(f"min_freq={min_freq}: must be >= 1")
        counts: Counter[str] = Counter()
        for seq in sequences:
            counts.update(seq)
        specials = [s for s in (pad, unk) if s is not None]
        kept = sorted(
            (tok for tok, n in counts.items() if n >= min_freq and tok not in specials),
            key=lambda tok: (-counts[tok], tok),
        )
        if max_size is not None:
            kept = kept[: max(0, max_size - len(specials))]
        return cls([*specials, *kept], pad=pad, unk=unk)

    def __len__(self) -> int:
        return len(self.tokens)

    def __contains__(self, token: str) -> bool:
        return token in self.index

    @property
    def pad_id(self) -> int | None:
        return None if self.pad is None else self.index[self.pad]

    @property
    def unk_id(self) -> int | None:
        return None if self.unk is None else self.index[self.unk]

    def encode(self, tokens: Iterable[str]) -> list[int]:
        """Ids of `tokens`; unknown ones map to the unknown token (KeyError if there is none)."""
        unk = self.unk_id
        if unk is None:
            return [self.index[t] for t in tokens]
        get = self.index.get
        return [get(t, unk) for t in tokens]

    def encode_tensor(self, tokens: Iterable[str]) -> torch.Tensor:
        return torch.tensor(self.encode(tokens), dtype=torch.long)

    def decode(self, ids: Iterable[int]) -> list[str]:
        return [self.tokens[i] for i in ids]

    def to_dict(self) -> dict[str, Any]:
        return {"tokens": list(self.tokens), "pad": self.pad, "unk": self.unk}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Vocabulary:
        return cls(data["tokens"], pad=data.get("pad"), unk=data.get("unk"))

    def save(self, path: Path) -> Path:
        """Write the vocabulary as JSON (one token per id, specials named)."""
        path.write_text(json.dumps(self.to_dict(), ensure_ascii=False, indent=0) + "\n")
        return path

    @classmethod
    def load(cls, path: Path) -> Vocabulary:
        return cls.from_dict(json.loads(path.read_text()))
