"""Redis primitives shared by every process: keys, claims, cancel signal, embedded server."""
