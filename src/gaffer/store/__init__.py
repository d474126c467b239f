"""Records: SQLAlchemy models, the queries over them, and the Alembic migrations."""
