"""The JSON API (bearer token): reads and cancels of runs, wherever they are."""
