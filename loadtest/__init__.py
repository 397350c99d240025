"""loadtest: Locust load runs of a scenario against the real platform (`streamscale load`).

Run only as a subprocess where Locust is involved: importing `loadtest.users`,
`loadtest.shapes` or a locustfile imports Locust, which patches the process with gevent
and would break trio. The rest imports neither and is shared with the trio side:

- `hls`: an hls.js player's decisions as pure functions (join, next part, blocking reload,
  ABR, steering, playback clock); tested on recorded playlists.
- `arrivals`: the scenario's open arrival schedule, scaled and time-compressed.
- `settings`: what `streamscale load` passes the Locust process (one env var).
- `run`: the `streamscale load` command (platform, stream, ffmpeg, Locust, summary).
- `summary`: summary.json from Locust's CSV, beside the scenario's SLOs.
- `publishing`: the caster, stream start and the ffmpeg publisher.
- `hybrid` (`load --hybrid`, the 1M-viewer run): `hybrid_pattern`, the full-scale edge
  fleet's origin requests from sim.delivery; `hybrid_driver`, emulated edge fetch loops
  against the real origin, run as their own process, over `hybrid_http`'s lean client;
  `hybrid_summary`, the measured/modelled summary.
- `users/` (Locust): HlsPlayer, ChatUser, ApiUser, StreamerUser; `shapes`: the load
  shape; `locustfile.py`, `bench_locustfile.py` (bench/players.py): entry points.
"""
