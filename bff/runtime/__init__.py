"""Process plumbing every layer may use: Prometheus metrics, background tasks that stop
cleanly, the answer-first scheduler, a small LRU."""
