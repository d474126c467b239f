"""One module per webhook provider: signature rules and parsing into a provider-neutral Event."""
