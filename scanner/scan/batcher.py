"""Grouping objects into audit batches: `chunk` (pure) and the `make_batches` stage."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import TypeVar

import anyio
from anyio.abc import ObjectSendStream
from anyio.streams.memory import MemoryObjectReceiveStream

from scanner.models import ObjectRef

T = TypeVar("T")


def chunk(items: Iterable[T], size: int) -> Iterator[list[T]]:
    """Consecutive lists of at most `size` items, in order."""
    if size < 1:
        raise ValueError("size must be >= 1")
    batch: list[T] = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


async def make_batches(
    refs_rx: MemoryObjectReceiveStream[ObjectRef],
    batches_tx: ObjectSendStream[list[ObjectRef]],
    size: int,
    wait: float,
) -> None:
    """Batches of up to `size` refs; a partial batch goes out `wait` seconds after its first
    ref arrived (cancelling a memory-stream receive loses nothing). Refs already buffered
    are taken without awaiting."""
    async with refs_rx, batches_tx:
        while True:
            try:
                batch = [await refs_rx.receive()]
            except anyio.EndOfStream:
                return
            ended = False
            with anyio.move_on_after(wait):  # one timer per batch, from its first ref
                while len(batch) < size:
                    try:
                        batch.append(refs_rx.receive_nowait())
                        continue
                    except anyio.WouldBlock:
                        pass
                    except anyio.EndOfStream:
                        ended = True
                        break
                    try:
                        batch.append(await refs_rx.receive())
                    except anyio.EndOfStream:
                        ended = True
                        break
            await batches_tx.send(batch)
            if ended:
                return
