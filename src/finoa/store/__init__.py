"""Storage: tables, migrations, the unit of work. SQLite (embedded) or PostgreSQL."""
