"""Where trials live: RDB storage URLs (SQLite, PostgreSQL) and the artifact store of weights."""

from hpsearch.storages._rdb import DEFAULT_STORAGE, masked, open_storage

__all__ = ["DEFAULT_STORAGE", "masked", "open_storage"]
