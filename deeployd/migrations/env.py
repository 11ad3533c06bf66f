from alembic import context
from sqlalchemy import create_engine, pool
from sqlmodel import SQLModel

import deeployd.models  # noqa: F401  (registers the tables)

config = context.config


def run_migrations() -> None:
    url = config.get_main_option("sqlalchemy.url")
    assert url, "deeployd.migrations sets sqlalchemy.url"
    engine = create_engine(url, poolclass=pool.NullPool)
    with engine.connect() as connection:
        context.configure(connection=connection, target_metadata=SQLModel.metadata)
        with context.begin_transaction():
            # One migrator at a time, even when several processes start together.
            connection.exec_driver_sql("SELECT pg_advisory_xact_lock(7265001)")
            context.run_migrations()
    engine.dispose()


run_migrations()
