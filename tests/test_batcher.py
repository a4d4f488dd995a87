"""chunk (property-tested) and the make_batches stage."""

from __future__ import annotations

from datetime import UTC, datetime

import anyio
import pytest
from hypothesis import given
from hypothesis import strategies as st

from scanner.models import ObjectRef
from scanner.scan.batcher import chunk, make_batches


@given(st.lists(st.integers()), st.integers(1, 10))
def test_chunk_partitions_in_order(items: list[int], size: int) -> None:
    chunks = list(chunk(items, size))
    assert [x for c in chunks for x in c] == items
    assert all(1 <= len(c) <= size for c in chunks)
    assert all(len(c) == size for c in chunks[:-1])


def test_chunk_refuses_zero() -> None:
    with pytest.raises(ValueError, match="size"):
        list(chunk([1], 0))


def _ref(i: int) -> ObjectRef:
    return ObjectRef(f"k{i}", "e", 1, datetime(2024, 1, 1, tzinfo=UTC))


async def test_make_batches_full_partial_and_end() -> None:
    refs_tx, refs_rx = anyio.create_memory_object_stream[ObjectRef](10)
    batches_tx, batches_rx = anyio.create_memory_object_stream[list[ObjectRef]](10)
    got: list[list[str]] = []
    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(make_batches, refs_rx, batches_tx, 3, 0.05)
            async with refs_tx:
                for i in range(4):
                    await refs_tx.send(_ref(i))
                first = await batches_rx.receive()
                got.append([r.key for r in first])
                partial = await batches_rx.receive()  # flushed after the idle wait
                got.append([r.key for r in partial])
                await refs_tx.send(_ref(9))
            async with batches_rx:
                got.extend([[r.key for r in b] async for b in batches_rx])
    assert got == [["k0", "k1", "k2"], ["k3"], ["k9"]]
