"""The CDN tier: edge caches grouped into named CDNs, content steering between them, and
the viewer records the edges send for viewer counts.

    sessions.py   who a request belongs to (CMCD session id, else address + user agent)
    records.py    access records batched off the hot path, their wire format
"""
