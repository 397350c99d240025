"""Locust users of the platform; importing this package imports Locust (gevent patches).

Only a Locust subprocess imports it (`loadtest/locustfile.py`), never a trio process.
"""
