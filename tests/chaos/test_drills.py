"""The CI-short drills on a real platform (gateway, media, origin, edge; ffmpeg
publishing; HTTP players through the CDN fault proxies): each passes on its hypothesis,
and its journal says what happened."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import trio

from chaos import cli as chaos_cli
from chaos.runner import configuration, load_experiment
from streamscale.cli import main as streamscale_main

pytestmark = pytest.mark.slow


def test_cdn_outage_players_fail_over_to_cdn_b(tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    # through the real command: starts the platform, writes reports/<name>/chaos/
    code = streamscale_main(["chaos", "cdn_outage", "--short", "--reports", str(tmp_path)])
    journal = json.loads((tmp_path / "cdn_outage" / "chaos" / "journal.json").read_text())
    assert code == 0, journal
    assert journal["status"] == "completed" and not journal["deviated"]
    players = journal["configuration"]["players"]
    run = {r["activity"]["name"]: r for r in journal["run"]}
    assert run["blackhole-cdn-a"]["status"] == "succeeded"
    assert run["players-failed-over-to-cdn-b"]["output"] == players
    fetches = run["player-fetches-over-the-whole-drill"]["output"]
    # each player hit the outage (a timed-out fetch) and failed over, once at least
    assert fetches["failovers"] >= players and fetches["failed"] >= players
    assert fetches["ok"] > fetches["failed"]
    after = {p["activity"]["name"]: p["output"]
             for p in journal["steady_states"]["after"]["probes"]}
    assert after["every-player-got-parts-recently"] == players  # during the outage
    assert [r["status"] for r in journal["rollbacks"]] == ["succeeded", "succeeded"]
    assert "completed" in (tmp_path / "cdn_outage" / "chaos" / "summary.txt").read_text()
    timeline = journal["x-streamscale"]["players"]  # and its plot beside the journal
    assert {"a ok", "a failed", "b ok"} <= timeline["series"].keys()
    assert (tmp_path / "cdn_outage" / "chaos" / "players.png").stat().st_size > 0
    assert "steady state after: met" in capsys.readouterr().out

    # hls.js in Chromium beside them: on CDN a before, every one moved to b after the
    # fault (its first fragment from b's proxy, by the page's clock), within the bound
    browsers = journal["configuration"]["browser_players"]
    bound_s = journal["configuration"]["failover_bound_s"]
    assert browsers >= 1
    before = {p["activity"]["name"]: p["output"]
              for p in journal["steady_states"]["before"]["probes"]}
    assert before["every-hls.js-player-playing"] == browsers
    assert before["every-hls.js-player-on-the-steered-cdn"] == browsers  # CDN a then
    moved = run["hls.js-players-failed-over-to-cdn-b"]["output"]
    assert moved["on"] == moved["players"] == browsers
    assert all(s is not None and 0 < s <= bound_s for s in moved["failover_s"]), moved
    assert after["every-hls.js-player-playing"] == browsers
    assert after["every-hls.js-player-on-the-steered-cdn"] == browsers  # CDN b now
    assert after["every-hls.js-player-moved-within-the-bound"] == browsers
    browser = timeline["browser"]
    assert [f["failover_s"] for f in browser["failovers"]] == moved["failover_s"]
    assert {"hls.js on a", "hls.js on b"} <= browser["series"].keys()
    on_a = dict(browser["series"]["hls.js on a"])
    assert on_a[max(on_a)] == 0 and max(on_a.values()) == browsers  # all left a


def test_cdn_outage_without_a_browser_is_the_http_drill(tmp_path: Path) -> None:
    """--no-browser: the same experiment with HTTP players only."""
    code = streamscale_main(["chaos", "cdn_outage", "--short", "--no-browser",
                             "--reports", str(tmp_path)])
    journal = json.loads((tmp_path / "cdn_outage" / "chaos" / "journal.json").read_text())
    assert code == 0, journal
    assert journal["configuration"]["browser_players"] == 0
    assert "browser" not in journal["x-streamscale"]["players"]
    run = {r["activity"]["name"]: r["output"] for r in journal["run"]}
    assert run["hls.js-players-failed-over-to-cdn-b"]["players"] == 0
    assert run["players-failed-over-to-cdn-b"] == journal["configuration"]["players"]


def test_cdn_outage_names_the_chromium_install_when_it_is_missing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr("streamscale.testing.browser.CHROMIUM", str(tmp_path / "chromium"))
    code = streamscale_main(["chaos", "cdn_outage", "--short", "--reports", str(tmp_path)])
    assert code == 2
    err = capsys.readouterr().err
    assert f"no Chromium at {tmp_path / 'chromium'}" in err
    assert "./dev test installs it" in err and "--no-browser" in err
    assert not (tmp_path / "cdn_outage").exists()  # refused before any platform started


async def test_security_breach_leaked_key_refused_after_rotation() -> None:
    experiment = load_experiment(chaos_cli.resolve("security_breach"))
    journal = await chaos_cli.drill(experiment, configuration(experiment, short=True))
    assert journal["status"] == "completed", journal
    run = {r["activity"]["name"]: r["output"] for r in journal["run"]}
    assert run["session-on-the-old-key-is-cut"] is True
    assert run["attacker-publishes-with-the-leaked-key"] == (
        "refused: unknown or revoked stream key")
    assert run["caster-reconnects-with-the-new-key"] == "live"
    after = {p["activity"]["name"]: p["output"]
             for p in journal["steady_states"]["after"]["probes"]}
    assert after["stream-is-live"] == "live" and after["one-encoder-broadcasting"] == 1


async def test_chaos_toolkit_runs_the_same_experiment(tmp_path: Path) -> None:
    """Chaos Toolkit's own `chaos run` (the chaos.ctk control hosts the drill)."""
    chaos_bin = Path(sys.executable).parent / "chaos"
    experiment_path = chaos_cli.resolve("security_breach")
    short = configuration(load_experiment(experiment_path), short=True)
    var_file = tmp_path / "short.json"
    var_file.write_text(json.dumps({"configuration": short}))
    result = await trio.run_process(
        [str(chaos_bin), "--no-log-file", "run", "--rollback-strategy", "always",
         "--journal-path", str(tmp_path / "journal.json"), "--var-file", str(var_file),
         str(experiment_path)],
        cwd=tmp_path, capture_stdout=True, capture_stderr=True, check=False)
    journal = json.loads((tmp_path / "journal.json").read_text())
    assert journal["status"] == "completed", result.stderr.decode()[-3000:]
    assert journal["chaoslib-version"]  # written by Chaos Toolkit itself
    run = {r["activity"]["name"]: r["output"] for r in journal["run"]}
    assert run["attacker-publishes-with-the-leaked-key"] == (
        "refused: unknown or revoked stream key")
    assert [r["status"] for r in journal["rollbacks"]] == ["succeeded"]


async def test_spof_sigkill_and_restart_loses_no_acked_chat_message() -> None:
    experiment = load_experiment(chaos_cli.resolve("spof"))
    journal = await chaos_cli.drill(experiment, configuration(experiment, short=True))
    assert journal["status"] == "completed", journal
    run = {r["activity"]["name"]: r["output"] for r in journal["run"]}
    assert run["sigkill-the-api-process"] == -9
    assert run["api-answers-while-down"] is False  # it really was down
    for phase in ("before", "after"):
        probes = {p["activity"]["name"]: p["output"]
                  for p in journal["steady_states"][phase]["probes"]}
        assert probes["acknowledged-messages-lost"] == 0
        assert probes["posts-acknowledged-recently"] >= 1


@pytest.mark.postgres
async def test_db_hotspot_viewers_unaffected_by_a_slowed_database() -> None:
    experiment = load_experiment(chaos_cli.resolve("db_hotspot"))
    journal = await chaos_cli.drill(experiment, configuration(experiment, short=True))
    assert journal["status"] == "completed", journal
    run = {r["activity"]["name"]: r["output"] for r in journal["run"]}
    assert run["bytes-through-the-database-proxy"] > 0  # the platform was on the proxy
    # the fault was in the path: an uncached read pays at least one slowed round trip
    assert run["a-database-read-through-the-api-ms"] >= 200
    assert run["a-database-read-through-the-api-ms-before"] >= 0


async def test_viewer_surge_every_player_keeps_getting_parts() -> None:
    experiment = load_experiment(chaos_cli.resolve("surge"))
    short = configuration(experiment, short=True)
    journal = await chaos_cli.drill(experiment, short)
    assert journal["status"] == "completed", journal
    run = {r["activity"]["name"]: r["output"] for r in journal["run"]}
    assert run["surge-of-viewers"] == short["players"] + short["surge"]
    edge = run["cdn-a-edge-cache-counters"]
    assert edge["hits"] > edge["upstream_requests"] > 0  # the edge absorbed the surge


async def test_chat_flood_regular_viewer_served_nothing_acked_lost() -> None:
    experiment = load_experiment(chaos_cli.resolve("chat_flood"))
    short = configuration(experiment, short=True)
    journal = await chaos_cli.drill(experiment, short)
    assert journal["status"] == "completed", journal
    flood = {r["activity"]["name"]: r["output"] for r in journal["rollbacks"]}["stop-the-flood"]
    assert flood["429"] > 0 and flood["201"] > 0  # the limits refused part of the flood
    after = {p["activity"]["name"]: p["output"]
             for p in journal["steady_states"]["after"]["probes"]}
    assert after["acknowledged-messages-lost"] == 0
    # the WebSocket readers: all still there, nothing acked missing, p99 within the SLO
    assert after["readers-still-connected"] == short["readers"]
    assert after["acknowledged-messages-lost-to-readers"] == 0
    assert 0 < after["reader-delivery-p99-in-units-of-the-slo"] <= 1.0
    run = {r["activity"]["name"]: r["output"] for r in journal["run"]}
    assert run["the-reader-who-never-read-was-dropped"] == "1013 too slow: send queue overflowed"
    got = run["what-the-readers-got"]
    assert got["delivery_slo_s"] == 1.0  # scenarios/chat_flood.toml, from baseline.toml
    readers = {k: v for k, v in got.items() if isinstance(v, dict)}
    assert sum(r["slow"] for r in readers.values()) == 1
    for reader in (r for r in readers.values() if not r["slow"]):
        # every reader got the flood's batches and every acked well-behaved message it
        # was owed, bar those the gateway said it sampled out
        assert reader["close"] is None and reader["out_of_order"] == 0
        assert reader["messages"] > reader["owed"] > 0  # the flood's messages came too
        assert reader["owed"] - reader["owed_received"] <= reader["skipped_declared"]
    assert got["deliveries"] >= short["readers"] * 2


async def test_media_overload_storm_beside_a_live_stream() -> None:
    experiment = load_experiment(chaos_cli.resolve("media_overload"))
    short = configuration(experiment, short=True)
    journal = await chaos_cli.drill(experiment, short)
    assert journal["status"] == "completed", journal
    storm = {r["activity"]["name"]: r["output"] for r in journal["run"]}["rtmp-reconnect-storm"]
    attempts = short["storm_publishers"] * short["storm_rounds"]
    assert storm["accepted"] + storm["refused"] + storm["failed"] == attempts
    assert storm["accepted"] > 0
    # the ingest's own count of connections it closed at once: each is an attempt the
    # storm saw refused or broken, never one it took for accepted
    said = storm["ingest_says"]
    assert set(said) == {"refused_per_address", "refused_full", "publishes_refused",
                         "protocol_errors"}, said
    closed_at_once = said["refused_per_address"] + said["refused_full"]
    assert storm["refused"] + storm["failed"] >= closed_at_once


async def test_moderation_backlog_held_messages_wait_in_the_review_queue() -> None:
    experiment = load_experiment(chaos_cli.resolve("moderation_backlog"))
    journal = await chaos_cli.drill(experiment, configuration(experiment, short=True))
    assert journal["status"] == "completed", journal
    run = {r["activity"]["name"]: r["output"] for r in journal["run"]}
    assert run["messages-held-for-review"] > 0  # the raid was held, not shown
    after = {p["activity"]["name"]: p["output"]
             for p in journal["steady_states"]["after"]["probes"]}
    assert after["held-messages-missing-from-review"] == 0
    assert after["acknowledged-messages-lost"] == 0


async def test_transcode_overload_sheds_rungs_and_refuses_one_stream_too_many() -> None:
    experiment = load_experiment(chaos_cli.resolve("transcode_overload"))
    short = configuration(experiment, short=True)
    journal = await chaos_cli.drill(experiment, short)
    assert journal["status"] == "completed", journal
    run = {r["activity"]["name"]: r["output"] for r in journal["run"]}
    assert run["more-720p-casters-publish"] == short["overload_publishers"]
    assert run["a-publisher-beyond-capacity-is-refused"].startswith(
        "refused: transcode capacity exceeded")
    # recorded, not judged: whether capacity given back by the sheds admits a newcomer
    assert run["a-publisher-after-the-sheds"].startswith(("accepted", "refused: "))
    during = [p for d in journal["steady_states"]["during"] for p in d["probes"]]
    assert len(during) == 4 and all(p["tolerance_met"] for p in during)
    ladders = run["ladders-now"]
    # every ladder of the overload is still live; the node shed rungs (the counter and the
    # gauges agree) and the watched 720p rendition now carries a smaller rung's pictures
    assert len(ladders["streams"]) == short["overload_publishers"] + 1
    shed_now = sum(s["shed"] for s in ladders["streams"].values())
    assert ladders["dropped_rungs_total"] >= shed_now >= 1
    assert ladders["refused_total"] >= 1
    assert run["watched-720p-carries-a-smaller-rung"] != "720p"
    timeline = journal["x-streamscale"]["transcode"]  # for transcode.png
    assert 0 < ladders["behind_max_s"] <= timeline["behind_limit_s"] == 20.0
    fetches = run["player-fetches-so-far"]
    assert fetches["ok"] > 0 and fetches["failed"] <= 0.05 * fetches["ok"]
    watched = timeline["streams"][timeline["watched"]]
    assert max(v for _, v in watched["shed"]) >= 1
