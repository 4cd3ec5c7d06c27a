"""Redis: the connection (and the embedded one), whether it persists, the cache of provider
answers and directory records, the audit streams, the rate limit."""
