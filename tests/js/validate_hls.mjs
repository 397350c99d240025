// Strict HLS playlist validation with an independent parser (kuu/hls-parser, strict mode).
//
//   node validate_hls.mjs a.m3u8 b.m3u8     one result line per file
//   node validate_hls.mjs < lines.jsonl     one JSON string (playlist text) per line in,
//                                           one result line out per line, in order
//
// A result is {"ok": true, "summary": {...}} or {"ok": false, "error": "..."}. The summary is
// what the parser read (target duration, segments with their parts), so a test can check
// rules the parser does not, on the parser's reading instead of the writer's own model.
// Output is flushed per line: one process can serve a whole test session.
import { readFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import HLS from 'hls-parser';

HLS.setOptions({ strictMode: true, silent: true });

function summarize(playlist) {
  if (playlist.isMasterPlaylist) {
    return {
      master: true,
      variants: playlist.variants.map((v) => ({
        uri: v.uri, bandwidth: v.bandwidth, codecs: v.codecs ?? null,
      })),
    };
  }
  return {
    master: false,
    version: playlist.version ?? null,
    targetDuration: playlist.targetDuration,
    partTarget: playlist.partTargetDuration ?? null,
    mediaSequence: playlist.mediaSequenceBase ?? 0,
    skipped: playlist.skip ?? 0,
    endlist: Boolean(playlist.endlist),
    canSkipUntil: playlist.lowLatencyCompatibility?.canSkipUntil ?? null,
    segments: playlist.segments.map((s) => ({
      msn: s.mediaSequenceNumber,
      uri: s.uri || null,
      duration: s.duration ?? null,
      parts: s.parts.filter((p) => !p.hint).map((p) => p.duration),
      hint: s.parts.some((p) => p.hint),
    })),
  };
}

function check(text) {
  try {
    const playlist = HLS.parse(text);
    return { ok: true, summary: summarize(playlist) };
  } catch (error) {
    return { ok: false, error: String(error?.message ?? error) };
  }
}

const files = process.argv.slice(2);
if (files.length > 0) {
  let failed = false;
  for (const file of files) {
    const result = check(readFileSync(file, 'utf8'));
    failed ||= !result.ok;
    process.stdout.write(`${file}: ${result.ok ? 'ok' : result.error}\n`);
  }
  process.exitCode = failed ? 1 : 0;
} else {
  const lines = createInterface({ input: process.stdin, crlfDelay: Infinity });
  for await (const line of lines) {
    if (!line.trim()) continue;
    let result;
    try {
      result = check(JSON.parse(line));
    } catch (error) {
      result = { ok: false, error: `bad input line: ${error.message}` };
    }
    process.stdout.write(`${JSON.stringify(result)}\n`);
  }
}
