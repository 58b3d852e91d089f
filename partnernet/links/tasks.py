"""Periodic jobs of the links feature: the click flush and the click partitions."""

from __future__ import annotations

from typing import Any

from partnernet import jobs


def flush_clicks() -> dict[str, Any]:
    """Move the Redis click buffer into the database (no-op without Redis)."""
    from partnernet.links.buffer import flush_clicks as flush

    return flush()


def maintain_click_partitions() -> dict[str, Any]:
    """Make click partitions ahead and apply click retention."""
    from partnernet.links.partitions import maintain

    return maintain()


jobs.periodic("flush-clicks", "partnernet.links.tasks:flush_clicks", 5,
              "move buffered clicks from Redis into the database")
jobs.periodic("click-partitions", "partnernet.links.tasks:maintain_click_partitions", 3600,
              "create click partitions ahead, drop those past retention")
