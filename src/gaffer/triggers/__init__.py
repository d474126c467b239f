"""Rules from provider events to agent requests, evaluated per project."""
