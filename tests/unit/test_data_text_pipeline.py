"""Vocabularies are built on the training split only, and the processed-data cache is safe."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from rnnlab.data import cache
from rnnlab.data.vocab import PAD, UNK, Vocabulary, char_tokens, word_tokens


@pytest.fixture
def cache_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "cache"
    monkeypatch.setenv(cache.CACHE_DIR_ENV, str(folder))
    return folder


# --- vocabulary ---------------------------------------------------------------------------


def test_vocabulary_puts_padding_at_zero_then_unknown_then_tokens_by_frequency() -> None:
    vocab = Vocabulary.build([["b", "a", "a"], ["c", "a", "b"]])
    assert vocab.tokens == [PAD, UNK, "a", "b", "c"]
    assert vocab.pad_id == 0 and vocab.unk_id == 1


def test_min_freq_sends_rare_training_words_to_the_unknown_token() -> None:
    vocab = Vocabulary.build([["the", "cat"], ["the", "dog"]], min_freq=2)
    assert "cat" not in vocab
    assert vocab.encode(["the", "cat", "never-seen"]) == [vocab.index["the"], 1, 1]


def test_max_size_counts_the_special_tokens() -> None:
    vocab = Vocabulary.build([list("aaabbc")], max_size=4)
    assert vocab.tokens == [PAD, UNK, "a", "b"]


def test_a_vocabulary_without_padding_keeps_the_corpus_own_unknown_token_first() -> None:
    vocab = Vocabulary.build([["<unk>", "x", "x"]], pad=None, unk="<unk>")
    assert vocab.tokens == ["<unk>", "x"]
    assert vocab.pad_id is None and vocab.unk_id == 0


def test_vocabulary_survives_a_json_round_trip(tmp_path: Path) -> None:
    vocab = Vocabulary.build([["héllo", "wörld", "héllo"]])
    again = Vocabulary.load(vocab.save(tmp_path / "v.json"))
    assert again.tokens == vocab.tokens and again.unk == UNK and again.pad == PAD


def test_word_tokens_keep_hashtags_mentions_and_contractions_whole() -> None:
    assert word_tokens("I can't wait @Bob #SelfDriving cars!!") == [
        "i",
        "can't",
        "wait",
        "@bob",
        "#selfdriving",
        "cars",
        "!",
        "!",
    ]
    assert char_tokens("ab c") == ["a", "b", " ", "c"]


# --- processed-data cache ------------------------------------------------------------------


def test_cache_builds_once_then_reads_the_stored_payload(cache_dir: Path) -> None:
    calls = []

    def build() -> dict:
        calls.append(1)
        return {"ids": torch.arange(5), "tokens": ["a", "b"]}

    first = cache.load_or_build("t", {"k": 1}, build)
    second = cache.load_or_build("t", {"k": 1}, build)
    assert len(calls) == 1
    assert torch.equal(first["ids"], second["ids"]) and second["tokens"] == ["a", "b"]
    assert [p.suffix for p in cache_dir.iterdir() if not p.name.endswith(".lock")] == [".pt"]


def test_cache_key_changes_with_the_config_and_not_with_key_order(cache_dir: Path) -> None:
    assert cache.cache_key("t", {"a": 1, "b": 2}) == cache.cache_key("t", {"b": 2, "a": 1})
    assert cache.cache_key("t", {"a": 1}) != cache.cache_key("t", {"a": 2})
    assert cache.cache_key("t", {"a": 1}) != cache.cache_key("u", {"a": 1})


def test_a_corrupt_cache_entry_is_rebuilt_not_fatal(cache_dir: Path) -> None:
    path = cache.entry_path("t", {"k": 1})
    path.parent.mkdir(parents=True)
    path.write_bytes(b"not a torch file")
    payload = cache.load_or_build("t", {"k": 1}, lambda: {"x": torch.ones(2)})
    assert torch.equal(payload["x"], torch.ones(2))
    assert torch.equal(cache.load_or_build("t", {"k": 1}, lambda: {})["x"], torch.ones(2))


# A child loads cache.py by path: importing `rnnlab.data` would pull in Lightning (seconds),
# and forking a parent whose OpenMP threads are running can deadlock the child.
_RACER = """
import importlib.util, os, sys, time
from pathlib import Path
spec = importlib.util.spec_from_file_location("cache", sys.argv[1])
cache = importlib.util.module_from_spec(spec)
spec.loader.exec_module(cache)
import torch

def build():
    Path(sys.argv[2], f"built-{os.getpid()}").touch()
    time.sleep(1.0)  # hold the lock long enough for the rival to wait on it
    return {"data": torch.arange(100_000)}

payload = cache.load_or_build("race", {"k": 1}, build)
print(int(payload["data"].sum()))
"""


def test_two_processes_building_one_entry_build_it_once_and_read_the_same(
    tmp_path: Path,
) -> None:
    markers = tmp_path / "markers"
    markers.mkdir()
    env = {**os.environ, cache.CACHE_DIR_ENV: str(tmp_path / "c")}
    cmd = [sys.executable, "-c", _RACER, cache.__file__, str(markers)]
    procs = [
        subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    outputs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs
    assert [out.strip() for out, _ in outputs] == [str(sum(range(100_000)))] * 2
    assert len(list(markers.iterdir())) == 1
    leftovers = [p.name for p in (tmp_path / "c").iterdir() if p.name.endswith(".tmp")]
    assert leftovers == []
