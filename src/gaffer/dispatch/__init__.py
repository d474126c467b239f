"""Dispatch: take jobs when a slot is free, start workers through a backend, supervise them."""
