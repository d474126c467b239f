"""BullMQ queues and job schemas. ``gaffer.queue.jobs`` is pure pydantic (the worker imports it)."""
