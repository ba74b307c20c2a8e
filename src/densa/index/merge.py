"""When to merge segments: a tiered policy, after Lucene's ``TieredMergePolicy``.

Every update adds a small segment; searching many segments costs a little per segment,
so small ones are merged into bigger ones. Segments are grouped in *tiers* by their live
size (a tier spans a factor of ``segments_per_tier``; everything under ``floor_rows``
counts as ``floor_rows``). When a tier holds ``segments_per_tier`` segments, its
smallest ``segments_per_tier`` are merged into one, which lands a tier higher; so each
document is rewritten about log(n) times over the life of an index, and an add costs
O(added documents) amortised. A segment whose deleted share passes ``max_deleted`` is
rewritten on its own, to reclaim the space (Lucene's ``deletesPctAllowed``).

Examples
--------
>>> from densa.index.manifest import SegmentRecord
>>> small = [SegmentRecord(f"seg-{i:06d}", 0, 0, 100, 100, {}) for i in range(1, 11)]
>>> len(MergePolicy().find_merge(small))
10
>>> MergePolicy().find_merge(small[:9]) is None
True
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from densa.errors import ConfigError
from densa.index.manifest import SegmentRecord

__all__ = ["MergePolicy"]


@dataclass(frozen=True)
class MergePolicy:
    """Which segments to merge next (see the module docstring).

    Parameters
    ----------
    segments_per_tier
        Segments a tier may hold before some are merged (Lucene's default: 10).
    floor_rows
        Segments smaller than this count as this size.
    max_deleted
        Share of deleted rows above which a segment is rewritten.
    """

    segments_per_tier: int = 10
    floor_rows: int = 1_000
    max_deleted: float = 0.33

    def __post_init__(self) -> None:
        if self.segments_per_tier < 2 or self.floor_rows < 1 or not 0 < self.max_deleted <= 1:
            raise ConfigError(
                "merge policy needs segments_per_tier >= 2, floor_rows >= 1, 0 < max_deleted <= 1"
            )

    def tier(self, segment: SegmentRecord) -> int:
        size = max(segment.live, self.floor_rows)
        return int(math.log(size / self.floor_rows, self.segments_per_tier) + 1e-9)

    def find_merge(self, segments: Sequence[SegmentRecord]) -> list[str] | None:
        """The names of the segments to merge next, or ``None`` when nothing needs merging."""
        for segment in segments:
            if segment.rows and segment.deleted / segment.rows > self.max_deleted:
                return [segment.name]
        tiers: dict[int, list[SegmentRecord]] = {}
        for segment in segments:
            tiers.setdefault(self.tier(segment), []).append(segment)
        for _, members in sorted(tiers.items()):
            if len(members) >= self.segments_per_tier:
                smallest = sorted(members, key=lambda s: (s.live, s.name))[: self.segments_per_tier]
                return sorted(s.name for s in smallest)
        return None
