"""Comment stores, picked by URL.

    store = open_store("sqlite:///livecomments.db")
    store = open_store("mongodb://127.0.0.1:27017/livecomments")

`sqlite:///relative/path.db` or `sqlite:////absolute/path.db` is the embedded
default. `mongodb://hosts/database?options` (or `mongodb+srv://`) is MongoDB,
database `livecomments` if the path names none. Implementations are imported
only when chosen, so an optional driver is needed only by the deployments that
use it.
"""

from urllib.parse import urlsplit

from store.base import CommentStore, StoreUnavailable

__all__ = ["CommentStore", "StoreUnavailable", "open_store"]


def open_store(url: str) -> CommentStore:
    """The store for `url`; raises ValueError for a URL no store understands."""
    scheme = urlsplit(url).scheme
    if scheme == "sqlite":
        from store.sqlite import SQLiteStore

        return SQLiteStore.from_url(url)
    if scheme in ("mongodb", "mongodb+srv"):
        from store.mongo import MongoStore

        return MongoStore.from_url(url)
    raise ValueError(f"unsupported store URL {url!r}: expected sqlite:///path or mongodb://host/db")
