"""Durable dispatch: the job queue on the database, workers, retries and rate limits."""
