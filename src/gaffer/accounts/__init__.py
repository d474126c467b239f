"""Who may do what: users, organization memberships and roles, API tokens, browser sessions,
login rate limiting and the audit log (issue 12)."""
