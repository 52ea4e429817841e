"""A decoded image pair ready to play: the record every consumer of pairs shares (rollouts,
evaluation, pre-training), next to the schema it is read from (`data.schema`)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

from vzero_nemo.data.schema import Truth


@dataclass(frozen=True, slots=True)
class GamePair:
    """One image pair ready to play: decoded RGB images + ground truth."""

    key: str
    original: Image.Image
    modified: Image.Image
    truth: Truth

    def image(self, name: str) -> Image.Image:
        if name == "original":
            return self.original
        if name == "modified":
            return self.modified
        if name == "blank":
            return Image.fromarray(
                np.zeros((self.original.height, self.original.width, 3), dtype=np.uint8)
            )
        raise ValueError(f"unknown image name {name!r}; expected original, modified or blank")
