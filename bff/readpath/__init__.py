"""The read path: which sources apply, asking them through the cache within the time
budget (single-flight, breakers, retries), the person directory, and reusing whole answers."""
