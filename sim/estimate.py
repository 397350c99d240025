"""The seed's back-of-envelope, recomputed from a scenario, with where its arithmetic slips.

The seed states figures without inputs; `Estimate` in the scenario makes the inputs
explicit (10K streams/day x 2 h at 2 Mbps, 500 B per stored message, ...), chosen so the
figures come back, and the notes say what those inputs imply.
"""

from __future__ import annotations

from dataclasses import dataclass

from sim.scenario import Scenario
from sim.workload import channel_weights

TB = 1e12
GB = 1e9


@dataclass(frozen=True, kw_only=True)
class Row:
    quantity: str
    value: float
    unit: str
    seed: str = ""
    note: str = ""


def estimate(sc: Scenario) -> list[Row]:
    w, e = sc.workload, sc.estimate
    rows: list[Row] = []
    total_gbps = 0.0
    seed_gbps = 0.0
    seed_viewers = 0.0
    for r in w.renditions:
        viewers = w.peak_viewers * r.share
        gbps = viewers * r.bitrate_kbps / 1e6
        total_gbps += gbps
        seed_note = ""
        if r.bitrate_kbps in (2000.0, 4000.0):
            seed_gbps += gbps
            seed_viewers += viewers
            seed_note = "seed row"
        rows.append(Row(quantity=f"egress {r.name} ({viewers:,.0f} @ {r.bitrate_kbps:g} kbps)",
                        value=gbps, unit="Gbps", note=seed_note))
    rows.append(Row(quantity="egress, seed's two rungs", value=seed_gbps, unit="Gbps",
                    seed="~2,080 Gbps",
                    note=f"counts {seed_viewers:,.0f} viewers, not the 1M+ it sizes for"))
    rows.append(Row(quantity=f"egress, all {w.peak_viewers:,} viewers", value=total_gbps,
                    unit="Gbps", note="what the edges must carry at peak"))
    rec_bytes_s = e.recorded_bitrate_kbps * 1000 / 8
    day_bytes = e.streams_per_day * e.stream_hours * 3600 * rec_bytes_s
    rows.append(Row(quantity="recording storage per day", value=day_bytes / TB, unit="TB",
                    seed="~17.6 TB/day",
                    note=f"{e.streams_per_day:,} streams x {e.stream_hours:g} h x "
                         f"{e.recorded_bitrate_kbps:g} kbps; the seed's 17.6 is this / 1.024"))
    rows.append(Row(quantity=f"recording storage, {e.retention_days} days",
                    value=day_bytes * e.retention_days / TB, unit="TB", seed="~528 TB"))
    ladder_kbps = sum(r.bitrate_kbps for r in w.renditions)
    rows.append(Row(quantity="recording per day, whole ladder kept",
                    value=day_bytes * ladder_kbps / e.recorded_bitrate_kbps / TB, unit="TB",
                    note="the seed records one 2 Mbps rung only"))
    msgs_month = e.chat_messages_per_day * 30
    rows.append(Row(quantity="chat messages per day", value=e.chat_messages_per_day / 1e6,
                    unit="M", seed="75M",
                    note=f"{e.chat_messages_per_day / 86400:,.0f} msgs/s on average"))
    rows.append(Row(quantity="chat storage per month",
                    value=msgs_month * e.stored_bytes_per_message / TB, unit="TB",
                    seed="~1.1 TB",
                    note=f"at {e.stored_bytes_per_message:g} B/msg; the seed's 1.1 TB implies "
                         f"{implied_bytes_per_message(1.1 * TB, e.chat_messages_per_day):.0f}"
                         " B/msg"))
    rows.append(Row(quantity="chat storage per month, 155 B wire messages",
                    value=msgs_month * 155 / TB, unit="TB",
                    note="raw payload; the seed's figure is ~3x that (indexes, replicas?)"))
    deliveries = peak_chat_deliveries_per_s(sc)
    rows.append(Row(quantity="chat deliveries per second at peak", value=deliveries / 1e6,
                    unit="M/s",
                    note=f"fan-out, missing from the seed: "
                         f"{deliveries * sc.costs.chat_delivery_us / 1e6:,.0f} cores at "
                         f"{sc.costs.chat_delivery_us:g} us/delivery"))
    rows.append(Row(quantity="user data", value=e.users * e.bytes_per_user / GB, unit="GB",
                    seed="8 GB", note=f"{e.users:,} users x {e.bytes_per_user:g} B"))
    rows.append(Row(quantity="stream metadata per month",
                    value=e.stream_records_per_month * e.bytes_per_stream_record / GB,
                    unit="GB", seed="0.3 GB/month",
                    note=f"{e.stream_records_per_month:,} streams x "
                         f"{e.bytes_per_stream_record:g} B"))
    ladder_cores = sum(r.transcode_cores for r in w.renditions)
    rows.append(Row(quantity="transcode cores at peak", value=w.streams * ladder_cores,
                    unit="cores", note=f"{w.streams:,} streams x {ladder_cores:.2f} cores "
                                       "per ladder (two 720p30 ladders fill 2 cores)"))
    return rows


def implied_bytes_per_message(bytes_per_month: float, messages_per_day: float) -> float:
    return bytes_per_month / (messages_per_day * 30)


def implied_stream_hours_per_day(tb_per_day: float, bitrate_kbps: float) -> float:
    """Stream-hours a day of recording implies at one bitrate (decimal units)."""
    return tb_per_day * TB / (bitrate_kbps * 1000 / 8 * 3600)


def peak_chat_deliveries_per_s(sc: Scenario) -> float:
    """Messages/s x members summed over rooms: the fan-out the seed's 75M/day hides."""
    w = sc.workload
    viewers = w.peak_viewers * channel_weights(w)
    msgs = viewers * w.chat_msgs_per_viewer_s
    if sc.chat.room_rate_cap_msgs_s > 0:
        msgs = msgs.clip(max=sc.chat.room_rate_cap_msgs_s)
    return float((msgs * viewers * w.chat_join_fraction).sum())


def format_table(rows: list[Row]) -> str:
    head = ("quantity", "value", "unit", "seed", "note")
    cells = [(r.quantity, f"{r.value:,.1f}", r.unit, r.seed, r.note) for r in rows]
    widths = [max(len(c[i]) for c in [head, *cells]) for i in range(4)]
    lines = []
    for c in [head, *cells]:
        lines.append("  ".join(
            [c[0].ljust(widths[0]), c[1].rjust(widths[1]), c[2].ljust(widths[2]),
             c[3].ljust(widths[3]), c[4]]).rstrip())
    return "\n".join(lines)
