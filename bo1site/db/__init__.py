"""Server-side prepared statements for the store's hot queries (prepared.py).

The database backend that remembers them per connection is bo1site/serving/db.
"""
