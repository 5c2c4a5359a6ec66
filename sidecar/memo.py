"""Bounded memories of what bots send: one piece for every per-path cache of the hot path.

Policy decisions, canonical paths, endpoint groups, rate routes and the audit line's parts are
each remembered per value a bot sends (a path, mostly), so a bot asking for the same few paths
again and again pays for each once. What bots send is unbounded, so each memory is bounded
twice: at ``size`` entries (emptied when full, which costs one recomputation per entry, not an
eviction order per hit), and to keys whose path is at most :data:`PATH_MAX` characters (a head
may be 32 KiB long: 4,096 such paths would hold over 100 MB). A lookup is ``dict.get``.
"""

from __future__ import annotations

from typing import TypeVar

K = TypeVar("K")
V = TypeVar("V")

SIZE = 4096  # entries
PATH_MAX = 256  # characters: Gate's endpoints, ids included, are far shorter


class Memo(dict[K, V]):
    """A dict that :meth:`keep` fills within its bounds."""

    __slots__ = ("size",)

    def __init__(self, size: int = SIZE) -> None:
        super().__init__()
        self.size = size

    def keep(self, key: K, value: V, path: str = "") -> V:
        """Remember ``value`` for ``key`` (unless ``path``, the bot's path the key holds, is
        longer than :data:`PATH_MAX`: then it is only returned); ``value`` either way."""
        if len(path) <= PATH_MAX:
            if len(self) >= self.size:
                self.clear()
            self[key] = value
        return value
