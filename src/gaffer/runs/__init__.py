"""The run engine: create runs (row + queue job), cancel them, repair them after a crash."""
