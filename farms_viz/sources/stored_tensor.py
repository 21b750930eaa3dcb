"""A tensor stored at a known position in a file, read on demand.

Both checkpoint readers (safetensors and torch's zip archive) end in a :class:`StoredTensor`:
where its bytes start, its dtype, shape and strides. Reading one copies exactly the bytes
the tensor spans into fresh memory with a positioned read: no mapping of the file, so the
file's size is irrelevant (a checkpoint larger than RAM reads like a small one) and memory
follows the tensors the caller keeps alive.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import torch


def contiguous_strides(shape: tuple[int, ...]) -> tuple[int, ...]:
    """Row-major strides (in elements) of ``shape``.

    Examples
    --------
    >>> contiguous_strides((4, 3, 2))
    (6, 2, 1)
    """
    strides, step = [], 1
    for size in reversed(shape):
        strides.append(step)
        step *= max(size, 1)
    return tuple(reversed(strides))


def element_span(shape: tuple[int, ...], strides: tuple[int, ...]) -> int:
    """Elements from the first to the last one a strided tensor touches (0 when it is empty).

    Examples
    --------
    >>> element_span((4, 3), (3, 1)), element_span((4, 3), (1, 4)), element_span((0, 3), (3, 1))
    (12, 12, 0)
    """
    if math.prod(shape) == 0:
        return 0
    return 1 + sum((size - 1) * stride for size, stride in zip(shape, strides))


@dataclass(frozen=True)
class StoredTensor:
    """A tensor's place in a file: ``read()`` returns it, ``meta()`` describes it without reading.

    Attributes
    ----------
    file : the file holding it.
    offset : byte offset of its first element in the file.
    dtype, shape, strides : as torch has them (strides in elements).
    """

    file: Path
    offset: int
    dtype: torch.dtype
    shape: tuple[int, ...]
    strides: tuple[int, ...]

    @property
    def nbytes(self) -> int:
        """Bytes read from the file: the span of elements the tensor touches."""
        return element_span(self.shape, self.strides) * self.dtype.itemsize

    def meta(self) -> torch.Tensor:
        """A tensor on the meta device with this shape and dtype (no data, nothing read)."""
        return torch.empty_strided(self.shape, self.strides, dtype=self.dtype, device="meta")

    def read(self) -> torch.Tensor:
        """The tensor, in fresh CPU memory of exactly :attr:`nbytes`.

        Raises
        ------
        EOFError
            The file ends before the tensor does (it was truncated after it was opened).
        """
        raw = torch.empty(self.nbytes, dtype=torch.uint8)
        if self.nbytes:
            view = raw.numpy().data
            with open(self.file, "rb", buffering=0) as f:
                f.seek(self.offset)
                done = 0
                while done < self.nbytes:  # a read may return less than asked for
                    got = f.readinto(view[done:])
                    if not got:
                        raise EOFError(f"{self.file} ends {self.nbytes - done} bytes before this tensor does")
                    done += got
        return raw.view(self.dtype).as_strided(self.shape, self.strides)
