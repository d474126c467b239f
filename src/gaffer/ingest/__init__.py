"""The webhook HTTP app: verification, size limits, delivery dedup, hand-off to the run engine."""
