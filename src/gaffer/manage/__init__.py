"""What the CLI's local mode and ``/api/v1`` share for a project's agents, credentials, GitHub
credentials and usage: the views they print or answer, and the audited writes. Both roads call
these functions, so remote mode prints what local mode prints."""
