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
    """Batches of up to `size` refs; a partial batch goes out after `wait` seconds idle."""
    async with refs_rx, batches_tx:
        batch: list[ObjectRef] = []
        while True:
            try:
                if not batch:
                    ref = await refs_rx.receive()
                else:
                    try:  # the common case: more is already waiting, no timer needed
                        ref = refs_rx.receive_nowait()
                    except anyio.WouldBlock:
                        with anyio.fail_after(wait):
                            ref = await refs_rx.receive()
            except TimeoutError:
                await batches_tx.send(batch)
                batch = []
                continue
            except anyio.EndOfStream:
                if batch:
                    await batches_tx.send(batch)
                return
            batch.append(ref)
            if len(batch) >= size:
                await batches_tx.send(batch)
                batch = []
