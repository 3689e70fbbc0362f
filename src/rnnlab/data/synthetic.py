"""The two generated long-memory benchmarks: the adding problem and the copy task.

Both are the standard probes of whether a recurrent net can carry information across
`seq_len` steps (Hochreiter & Schmidhuber 1997; Le et al. 2015; Arjovsky et al. 2016), and
both have a known "memoryless" baseline, so a run that only matches it has learnt nothing.
Data is generated in one vectorised call per split from a seed derived from (task, run seed,
split, length): the same seed gives the same data on any machine, and the splits never share
a random stream.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import torch
from torch.utils.data import DataLoader, TensorDataset

from rnnlab.data.base import SequenceDataModule, TaskSpec
from rnnlab.data.collate import PadCollate
from rnnlab.data.sampler import BucketBatchSampler, derive_seed
from rnnlab.data.stacked import StackedTensorDataset
from rnnlab.data.task_configs import AddingConfig, CopyConfig, GeneratedTaskConfig

COPY_SYMBOLS = 10  # symbols to remember (Arjovsky et al. 2016)
COPY_ALPHABET = 8  # drawn from {1..8}
COPY_BLANK = 0
COPY_DELIMITER = 9
COPY_VOCAB = 10  # blank, 8 symbols, delimiter


def adding_problem(
    num: int, seq_len: int, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """`num` adding-problem sequences of length `seq_len`, as set up by Le et al. 2015.

    Each step has two features: a value ~U(0, 1) and a marker (0 or 1). Exactly two steps are
    marked, one in the first half and one in the second, so the two values to add are always
    far apart. Target: the sum of the two marked values. Predicting its mean (1) gives MSE
    Var(U1 + U2) = 1/6, the baseline to beat.

    Returns inputs `(num, seq_len, 2)` float32 and targets `(num, 1)` float32.
    """
    if seq_len < 2:
        raise ValueError(f"seq_len={seq_len}: the adding problem needs >= 2 steps (one per half)")
    half = seq_len // 2
    values = torch.rand(num, seq_len, generator=generator)
    first = torch.randint(0, half, (num, 1), generator=generator)
    second = torch.randint(half, seq_len, (num, 1), generator=generator)
    markers = torch.zeros(num, seq_len)
    markers.scatter_(1, first, 1.0)
    markers.scatter_(1, second, 1.0)
    targets = values.gather(1, first) + values.gather(1, second)
    return torch.stack([values, markers], dim=-1), targets


def copy_task(
    num: int, seq_len: int, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """`num` copy-task sequences with a delay of `seq_len`, as in Arjovsky et al. 2016.

    Input (length seq_len + 20): 10 symbols from {1..8}, seq_len - 1 blanks (0), the
    delimiter 9, then 10 blanks. Target: blanks for the first seq_len + 10 steps, then the 10
    symbols. A net that remembers nothing can at best output blanks and then guess uniformly,
    for a cross-entropy of 10 log 8 / (seq_len + 20).

    Returns inputs and targets, both `(num, seq_len + 20)` int64.
    """
    if seq_len < 1:
        raise ValueError(f"seq_len={seq_len}: the copy task needs a delay of >= 1 step")
    total = seq_len + 2 * COPY_SYMBOLS
    symbols = torch.randint(1, COPY_ALPHABET + 1, (num, COPY_SYMBOLS), generator=generator)
    inputs = torch.full((num, total), COPY_BLANK, dtype=torch.long)
    inputs[:, :COPY_SYMBOLS] = symbols
    inputs[:, COPY_SYMBOLS + seq_len - 1] = COPY_DELIMITER
    targets = torch.full((num, total), COPY_BLANK, dtype=torch.long)
    targets[:, -COPY_SYMBOLS:] = symbols
    return inputs, targets


class GeneratedTaskDataModule(SequenceDataModule):
    """Shared plumbing of the generated tasks: lazy memoised splits and fixed-length loaders."""

    Config: ClassVar[type[GeneratedTaskConfig]] = GeneratedTaskConfig
    task_name: ClassVar[str] = "generated"
    cfg: GeneratedTaskConfig

    def __init__(self, cfg: GeneratedTaskConfig, batch_size: int, seed: int) -> None:
        super().__init__(cfg, batch_size, seed)
        self._splits: dict[tuple[str, int], TensorDataset] = {}

    def generate(
        self, num: int, seq_len: int, generator: torch.Generator
    ) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError

    def sequence_steps(self, seq_len: int) -> int:
        """Input steps of one sequence at delay/length `seq_len`."""
        return seq_len

    def dataset(self, split: str, seq_len: int | None = None) -> TensorDataset:
        """One split ("train", "val", "test") at `seq_len` (default: cfg.seq_len), made once."""
        seq_len = self.cfg.seq_len if seq_len is None else seq_len
        key = (split, seq_len)
        if key not in self._splits:
            size = getattr(self.cfg, f"{split}_size")
            gen = torch.Generator().manual_seed(derive_seed(self.task_name, self.seed, *key))
            self._splits[key] = StackedTensorDataset(*self.generate(size, seq_len, gen))
        return self._splits[key]

    def setup(self, stage: str | None = None) -> None:
        splits = {"fit": ("train", "val"), "validate": ("val",), "test": ("test",)}
        for split in splits.get(stage or "", ("train", "val", "test")):
            self.dataset(split)

    def _loader(self, dataset: TensorDataset) -> DataLoader:
        return DataLoader(
            dataset,
            batch_size=self.batch_size,
            shuffle=False,
            num_workers=0,
            collate_fn=PadCollate.from_spec(self.spec),
        )

    def train_dataloader(self) -> DataLoader:
        dataset = self.dataset("train")
        sampler = BucketBatchSampler.fixed_length(len(dataset), self.batch_size, seed=self.seed)
        return DataLoader(
            dataset,
            batch_sampler=sampler,
            num_workers=0,
            collate_fn=PadCollate.from_spec(self.spec),
        )

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.dataset("val"))

    def test_dataloader(self) -> DataLoader:
        return self._loader(self.dataset("test"))

    @property
    def native_length(self) -> int:
        """The length the model trains at, in the unit of `task.eval_lengths` (task.seq_len)."""
        return self.cfg.seq_len

    def eval_dataloader(self, seq_len: int) -> DataLoader:
        """A test loader at another length (test_size sequences), for length generalisation.

        Deterministic for (seed, seq_len); at `seq_len == cfg.seq_len` it is the test set.
        """
        try:
            self.Config.check_length(seq_len)
        except ValueError as exc:
            raise ValueError(f"eval seq_len={seq_len}: {exc}") from None
        return self._loader(self.dataset("test", seq_len))

    def describe(self) -> dict[str, Any]:
        return {
            "train_size": self.cfg.train_size,
            "val_size": self.cfg.val_size,
            "test_size": self.cfg.test_size,
            "steps_per_sequence": self.sequence_steps(self.cfg.seq_len),
        }


class AddingDataModule(GeneratedTaskDataModule):
    """The adding problem (Hochreiter & Schmidhuber 1997, in the form of Le et al. 2015)."""

    Config: ClassVar[type[GeneratedTaskConfig]] = AddingConfig
    task_name: ClassVar[str] = "adding"

    @property
    def spec(self) -> TaskSpec:
        return TaskSpec(
            head="many_to_one",
            loss="mse",
            input_kind="real",
            input_size=2,
            output_size=1,
            metrics=AddingConfig.scoring.metrics,
            monitor=AddingConfig.scoring.monitor,
            monitor_mode=AddingConfig.scoring.monitor_mode,
            # Always predicting 1 (the target's mean) gives Var(U1 + U2) = 1/6.
            baselines={"mse": 0.167},
        )

    def generate(
        self, num: int, seq_len: int, generator: torch.Generator
    ) -> tuple[torch.Tensor, torch.Tensor]:
        return adding_problem(num, seq_len, generator)


class CopyDataModule(GeneratedTaskDataModule):
    """The copy task with delay seq_len (Arjovsky et al. 2016, after Hochreiter & Schmidhuber)."""

    Config: ClassVar[type[GeneratedTaskConfig]] = CopyConfig
    task_name: ClassVar[str] = "copy"

    @property
    def spec(self) -> TaskSpec:
        return TaskSpec(
            head="many_to_many",
            loss="cross_entropy",
            input_kind="tokens",
            input_size=COPY_VOCAB,
            # Targets are blank or one of the 8 symbols; the delimiter is never a target.
            output_size=COPY_ALPHABET + 1,
            metrics=CopyConfig.scoring.metrics,
            monitor=CopyConfig.scoring.monitor,
            monitor_mode=CopyConfig.scoring.monitor_mode,
            baselines={"cross_entropy": copy_baseline_cross_entropy(self.cfg.seq_len)},
            # No padding: every sequence has seq_len + 20 steps, and token 0 is the blank,
            # a real input that must keep its own embedding.
            padding_idx=None,
        )

    def generate(
        self, num: int, seq_len: int, generator: torch.Generator
    ) -> tuple[torch.Tensor, torch.Tensor]:
        return copy_task(num, seq_len, generator)

    def sequence_steps(self, seq_len: int) -> int:
        return seq_len + 2 * COPY_SYMBOLS


def copy_baseline_cross_entropy(seq_len: int) -> float:
    """Per-step cross-entropy of the best memoryless strategy (Arjovsky et al. 2016)."""
    return COPY_SYMBOLS * math.log(COPY_ALPHABET) / (seq_len + 2 * COPY_SYMBOLS)
