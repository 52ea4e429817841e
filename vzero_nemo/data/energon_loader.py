"""Loading a pair set through megatron-energon (an alternative to `PairReader`).

`python -m data_prep finalize` writes `.nv-meta/dataset.yaml` naming `EnergonPairSample` with a
field map from the schema's members, so energon yields typed pair samples directly:

    from vzero_nemo.data.energon_loader import energon_pair_loader
    loader = energon_pair_loader("runs/data/clevr", split="train", rank=0, world_size=8)
    for sample in loader:  # EnergonPairSample: original, modified (PIL RGB), truth (dict)
        ...

energon shards by DP rank, shuffles and saves/restores loader state itself
(`get_savable_loader`); see its documentation for workers and mixing several sets.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from megatron.energon import (
    DefaultTaskEncoder,
    Sample,
    SampleDecoder,
    WorkerConfig,
    edataclass,
    get_loader,
    get_train_dataset,
    get_val_dataset,
)

from vzero_nemo.data.schema import Truth


@edataclass
class EnergonPairSample(Sample):
    """One pair as energon decodes it (image type set by `image_decode`, default PIL RGB)."""

    #: The image civilians see.
    original: Any
    #: The spy's image.
    modified: Any
    #: The ground-truth JSON as a dict; `Truth.from_json` gives the typed form.
    truth: dict

    def typed_truth(self) -> Truth:
        import json

        return Truth.from_json(json.dumps(self.truth))


def energon_pair_loader(
    path: str | Path,
    *,
    split: str = "train",
    rank: int = 0,
    world_size: int = 1,
    num_workers: int = 0,
    seed: int = 0,
    batch_size: int | None = None,
    shuffle_buffer_size: int = 100,
    image_decode: str = "pilrgb",
):
    """An energon loader over the set's `split` ("train": shuffled, loops forever; "val": one
    ordered pass). Samples are `EnergonPairSample`s (or batches of them if `batch_size`)."""
    if split not in ("train", "val"):
        raise ValueError(f"split must be 'train' or 'val', got {split!r}")
    worker_config = WorkerConfig(
        rank=rank, world_size=world_size, num_workers=num_workers, seed_offset=seed
    )
    task_encoder = DefaultTaskEncoder()
    task_encoder.decoder = SampleDecoder(image_decode=image_decode)  # type: ignore[arg-type]
    if split == "train":
        dataset = get_train_dataset(
            str(path),
            worker_config=worker_config,
            batch_size=batch_size,
            shuffle_buffer_size=shuffle_buffer_size,
            max_samples_per_sequence=None,
            task_encoder=task_encoder,
        )
    else:
        dataset = get_val_dataset(
            str(path),
            worker_config=worker_config,
            batch_size=batch_size,  # type: ignore[arg-type]
            task_encoder=task_encoder,
        )
    return get_loader(dataset)
