"""A store that cannot commit gives 503 JSON, never a false 201, and service resumes by itself."""

import sqlite3

import httpx

from tests.server_process import ServerProcess


async def test_locked_store_answers_503_and_loses_nothing(tmp_path):
    path = tmp_path / "c.db"
    with ServerProcess(f"sqlite:///{path}") as running:
        async with httpx.AsyncClient(base_url=running.url, timeout=30) as client:
            first = await client.post("/comments/v", json={"message": "before"})
            assert first.status_code == 201
            blocker = sqlite3.connect(path, isolation_level=None)
            blocker.execute("BEGIN EXCLUSIVE")  # another process holds the write lock
            try:
                refused = await client.post("/comments/v", json={"message": "while locked"})
            finally:
                blocker.execute("ROLLBACK")
                blocker.close()
            assert refused.status_code == 503
            assert refused.headers["content-type"].startswith("application/json")
            assert refused.json()["error"]["code"] == "store_unavailable"
            after = await client.post("/comments/v", json={"message": "after"})
            assert after.status_code == 201
            assert after.json()["seq"] == 2
            history = (await client.get("/comments/v", params={"after": 0})).json()
            assert [c["message"] for c in history["comments"]] == ["before", "after"]
