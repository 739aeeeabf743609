"""A queue that is fair between sessions: round-robin over sessions, FIFO within one.

With a plain FIFO, one visitor who starts a grid of 24 runs makes everybody behind them wait
for all 24. Here each session with work waiting gets one run per round, so a newcomer waits for
at most one run of every other waiting session. Not thread-safe: the JobManager holds its lock.
"""
from __future__ import annotations

from collections import OrderedDict, deque
from typing import Callable, Generic, Iterator, TypeVar

T = TypeVar("T")


class FairQueue(Generic[T]):
    def __init__(self, key: Callable[[T], str]):
        self._key = key
        self._lanes: OrderedDict[str, deque[T]] = OrderedDict()  # order = whose turn is next

    def __len__(self) -> int:
        return sum(len(lane) for lane in self._lanes.values())

    def __contains__(self, item: T) -> bool:
        lane = self._lanes.get(self._key(item))
        return lane is not None and item in lane

    def count(self, key: str) -> int:
        return len(self._lanes.get(key, ()))

    def push(self, item: T) -> None:
        """A session new to the queue joins at the back of the rotation."""
        self._lanes.setdefault(self._key(item), deque()).append(item)

    def pop(self) -> T:
        key, lane = next(iter(self._lanes.items()))
        item = lane.popleft()
        del self._lanes[key]
        if lane:  # the session goes to the back of the rotation
            self._lanes[key] = lane
        return item

    def remove(self, item: T) -> None:
        key = self._key(item)
        lane = self._lanes[key]
        lane.remove(item)
        if not lane:
            del self._lanes[key]

    def __iter__(self) -> Iterator[T]:
        """Items in the order `pop` would return them (round by round)."""
        lanes = [list(lane) for lane in self._lanes.values()]
        for i in range(max((len(lane) for lane in lanes), default=0)):
            for lane in lanes:
                if i < len(lane):
                    yield lane[i]
