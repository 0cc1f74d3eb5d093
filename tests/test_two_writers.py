"""Two server processes writing one video into one SQLite file: seq stays dense and unique."""

import asyncio

import httpx

from tests.server_process import ServerProcess


async def test_two_processes_share_one_dense_sequence(tmp_path):
    store = f"sqlite:///{tmp_path}/shared.db"
    with ServerProcess(store) as first, ServerProcess(store) as second:
        async with (
            httpx.AsyncClient(base_url=first.url, timeout=30) as a,
            httpx.AsyncClient(base_url=second.url, timeout=30) as b,
        ):
            posts = [
                (a if i % 2 else b).post("/comments/shared", json={"message": f"m{i}"})
                for i in range(200)
            ]
            responses = await asyncio.gather(*posts)
            assert {r.status_code for r in responses} == {201}
            acknowledged = sorted(r.json()["seq"] for r in responses)
            assert acknowledged == list(range(1, 201))
            for http in (a, b):
                page = (
                    await http.get("/comments/shared", params={"after": 0, "limit": 200})
                ).json()
                assert [c["seq"] for c in page["comments"]] == acknowledged
                assert {c["message"] for c in page["comments"]} == {f"m{i}" for i in range(200)}
