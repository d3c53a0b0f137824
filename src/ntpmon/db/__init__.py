"""The one place that knows SQL: table metadata, engine set-up and one function per query.

Query functions take a ``Connection`` and never commit: the caller owns the transaction.
"""
