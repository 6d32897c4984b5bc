"""ShardedStore: each worker writes its own shard and reads every other shard and run.db;
merge_shards folds the shards into run.db once, keeping rows already there."""

from __future__ import annotations

from pathlib import Path

from synthloom.core.sharded_store import ShardedStore, merge_shards
from synthloom.core.store import RunStore


def test_workers_read_each_others_shards_and_the_run_db(tmp_path: Path) -> None:
    main = RunStore(tmp_path / "run.db")
    main.put_item("from-main", "s", {"v": 0})
    main.put_llm("call-main", {"text": "m"})
    a, b = ShardedStore(tmp_path), ShardedStore(tmp_path)
    a.put_item("from-a", "s", {"v": 1})
    a.put_llm("call-a", {"text": "a"})
    b.put_item("from-b", "s", {"v": 2})
    assert a.path != b.path and a.path.parent == tmp_path / "cache"
    found = a.get_items(["from-main", "from-a", "from-b", "nowhere"])
    assert found == {"from-main": {"v": 0}, "from-a": {"v": 1}, "from-b": {"v": 2}}
    assert b.get_llm("call-a") == {"text": "a"} and b.get_llm("call-main") == {"text": "m"}
    assert b.get_llm("missing") is None
    # A worker started later (a restarted actor) sees every earlier shard.
    c = ShardedStore(tmp_path)
    assert set(c.get_items(["from-a", "from-b"])) == {"from-a", "from-b"}
    for store in (a, b, c):
        store.close()
    main.put_item("from-a", "s", {"v": "main wins"})
    assert merge_shards(main, tmp_path) == 3
    assert not list((tmp_path / "cache").glob("shard-*"))
    assert main.get_items(["from-a", "from-b"]) == {"from-a": {"v": "main wins"},
                                                    "from-b": {"v": 2}}
    assert main.get_llm("call-a") == {"text": "a"}
    assert main.counts() == {"item_cache": 3, "llm_cache": 2}
    main.close()
