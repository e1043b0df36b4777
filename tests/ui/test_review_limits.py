"""The reviews page reads a bounded part of the queue: ``ReviewQueue.list`` with a limit, an
offset and newest-first order; the page lists the oldest pending reviews and says when there
are more, and the newest decided ones."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.ui.conftest import Site
from tlm.ui.pages.reviews import DECIDED_SHOWN, PENDING_SHOWN
from tlm.verify.review_queue import ReviewQueue


def _fill(data_dir: Path, ids: list[str], pending: int, decided: int) -> list[str]:
    queue = ReviewQueue.in_data_dir(data_dir)
    made = []
    for i in range(pending + decided):
        made.append(
            queue.enqueue(ids[i % len(ids)], "title_extraction", "1.0.0", {"n": i}, {"title": "t"})
        )
    for review_id in made[pending:]:
        queue.approve(review_id, note="ok", reviewer="tester")
    return made


def test_list_takes_a_limit_an_offset_and_an_order(tmp_path: Path) -> None:
    queue = ReviewQueue.in_data_dir(tmp_path)
    made = [queue.enqueue(f"e{i:04d}", "t", "1.0.0", {"n": i}, {}, queue="q") for i in range(12)]
    queue.approve(made[3], note="ok")
    everything = [r.id for r in queue.list(status=None)]
    assert everything == made
    assert [r.id for r in queue.list(status=None, limit=5)] == made[:5]
    assert [r.id for r in queue.list(status=None, limit=5, offset=10)] == made[10:]
    assert [r.id for r in queue.list(status=None, limit=4, newest_first=True)] == made[::-1][:4]
    assert [r.id for r in queue.list(limit=3, offset=2)] == [made[i] for i in (2, 4, 5)]
    assert [r.id for r in queue.list(status="approved", limit=0)] == []
    assert [r.id for r in queue.list(status="approved", newest_first=True)] == [made[3]]
    with pytest.raises(ValueError, match="limit and offset must be >= 0, got -1 and 0"):
        queue.list(limit=-1)
    with pytest.raises(ValueError, match="limit and offset must be >= 0, got None and -2"):
        queue.list(offset=-2)


async def test_the_page_lists_a_bounded_part_of_a_long_queue(site: Site) -> None:
    # the seed has 1 pending and 1 decided review
    made = _fill(site.data_dir, site.ids, PENDING_SHOWN + 4, DECIDED_SHOWN + 5)
    items = await (await site.client.get("/reviews/items")).text()
    shown = re.findall(r'data-review="([0-9a-f]+)"', items)
    oldest = [r.id for r in ReviewQueue.in_data_dir(site.data_dir).list()][:PENDING_SHOWN]
    assert shown == oldest
    assert made[PENDING_SHOWN + 3] not in shown  # the newest pending ones wait their turn
    assert f'id="pending-count">{PENDING_SHOWN}+</span>' in items
    assert 'id="pending-more"' in items
    page = await (await site.client.get("/reviews")).text()
    decided = page.split("Recently decided", 1)[1]
    listed = re.findall(r'href="/reviews\?id=([0-9a-f]+)"', decided)
    assert listed == made[::-1][:DECIDED_SHOWN]  # the newest decided, newest first
    # once decided below the limit, the list says nothing more
    queue = ReviewQueue.in_data_dir(site.data_dir)
    for review in queue.list(limit=10):
        queue.approve(review.id, note="ok")
    items = await (await site.client.get("/reviews/items")).text()
    assert 'id="pending-more"' not in items
    assert len(re.findall(r'data-review="', items)) == PENDING_SHOWN - 5
