"""AsyncClient: the twin of Client; every method against a real lrserve process."""

from __future__ import annotations

import asyncio
import math

import lrclient
import pytest

from support import HALVING_PLATEAU, PIECEWISE, AsyncCountingTransport, Server


def test_every_method_of_the_async_client_works_against_a_real_server(server: Server, run_id: str) -> None:
    async def scenario() -> None:
        counting = AsyncCountingTransport()
        async with lrclient.AsyncClient(server.url, transport=counting) as client:
            assert await client.health() is True
            assert await client.ready() is True

            created = await client.create_run(run_id, HALVING_PLATEAU)
            assert created.created and created.spec["plateau"]["factor"] == 0.5
            assert (await client.create_run(run_id, HALVING_PLATEAU)).created is False
            seen = await client.get_run(run_id)
            assert seen.version == 0 and seen.etag is not None
            assert await client.get_run_if_changed(run_id, seen.etag) is None

            assert await client.lr(run_id, 7) == 0.1
            assert (await client.lr_range(run_id, 0, 3)).lr == (0.1, 0.1, 0.1)

            assert (await client.report(run_id, 0, {"val_loss": 1.0})).next_lr == 0.1
            worse = await client.report(run_id, 1, {"val_loss": math.nan})
            assert (worse.next_lr, worse.reduced, worse.version) == (0.05, True, 2)
            entries = await client.reports(run_id)
            assert [e.step for e in entries] == [0, 1] and math.isnan(entries[1].metrics["val_loss"])
            changed = await client.get_run_if_changed(run_id, seen.etag)
            assert changed is not None and changed.latest_step == 1

            revision = await client.revise(run_id, 10, {"type": "constant", "learning_rate": 0.01}, "tail")
            assert (revision.from_step, revision.reason, revision.created) == (10, "tail", True)
            assert created.warnings == () and revision.warnings == ()
            plateau = await client.revise(run_id, 10, plateau={"patience": 2})
            assert (plateau.schedule, plateau.plateau, plateau.created) == (None, {"patience": 2}, True)
            assert (await client.revise(run_id, 10, plateau={"patience": 2})).created is False
            assert (await client.lr_range(run_id, 9, 11)).lr == (0.05, 0.005), "the plateau factor carries on"
            rewound = await client.rewind(run_id, 0)
            assert (rewound.latest_step, rewound.reports, len(rewound.revisions)) == (0, 1, 2)
            assert await client.lr(run_id, 5) == 0.1

            others = [f"{run_id}-{i}" for i in range(3)]
            for each in others:
                await client.create_run(each, PIECEWISE)
            page = await client.list_runs(limit=1)
            assert len(page.runs) == 1 and page.next_cursor is not None
            listed = [r.run_id async for r in client.iter_runs(page_size=2) if r.run_id.startswith(run_id)]
            assert listed == [run_id, *others]

            await client.delete_run(run_id)
            with pytest.raises(lrclient.NotFound):
                await client.get_run(run_id)
            with pytest.raises(lrclient.Conflict):
                await client.create_run(others[0], HALVING_PLATEAU)
            with pytest.raises(lrclient.InvalidSpec):
                await client.lr(others[0], -1)
        with pytest.raises(RuntimeError):
            await client.lr(others[0], 0)

    asyncio.run(scenario())


def test_prefixes_and_pages_behave_as_in_the_sync_client(server: Server, run_id: str) -> None:
    mine = [f"{run_id}_{i}" for i in range(3)]
    with lrclient.Client(server.url) as sync:
        for i, each in enumerate(mine):
            sync.create_run(each, PIECEWISE)
            sync.create_run(f"{run_id}-{i}", PIECEWISE)  # "_" is no wildcard: never listed
        sync.create_run(run_id, HALVING_PLATEAU)
        for step in range(7):
            sync.report(run_id, step, {"val_loss": float(step)})
        expected_page = sync.report_page(run_id, after_step=1, limit=3)
        expected_reports = sync.reports(run_id)

    async def scenario() -> None:
        counting = AsyncCountingTransport()
        async with lrclient.AsyncClient(server.url, transport=counting) as client:
            first = await client.list_runs(limit=2, prefix=f"{run_id}_")
            assert [r.run_id for r in first.runs] == mine[:2] and first.next_cursor is not None
            rest = await client.list_runs(cursor=first.next_cursor, prefix=f"{run_id}_")
            assert [r.run_id for r in rest.runs] == mine[2:] and rest.next_cursor is None
            assert [r.run_id async for r in client.iter_runs(page_size=2, prefix=f"{run_id}_")] == mine
            with pytest.raises(lrclient.InvalidSpec, match="cursor"):
                await client.list_runs(cursor="\u00b2")

            assert await client.report_page(run_id, after_step=1, limit=3) == expected_page
            assert await client.reports(run_id) == expected_reports
            assert [e.step for e in await client.reports(run_id, after_step=2, limit=2)] == [3, 4]
            before = len(counting.requests)
            walked = [e async for e in client.iter_reports(run_id, page_size=3)]
            assert walked == expected_reports
            assert len(counting.requests) - before == 3, "pages of 3, 3 and 1"
            with pytest.raises(ValueError, match="page_size"):
                client.iter_reports(run_id, page_size=0)
            with pytest.raises(ValueError, match="limit"):
                await client.reports(run_id, limit=0)

    asyncio.run(scenario())
