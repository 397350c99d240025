"""Sans-I/O protocol code (RTMP, FLV, HLS): no trio, sockets or av; callers feed bytes in."""
