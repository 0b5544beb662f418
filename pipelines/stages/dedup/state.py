"""The near-duplicate index in Redis: :mod:`logic`'s per-key buckets, shared by every worker and
every pipeline instance pointed at one Redis, kept across restarts (append-only file).

The one place that knows how the buckets are laid out in Redis; the decisions are the pure
functions in ``logic.py`` beside it, the Beam side is ``transform.py``.
"""

from __future__ import annotations

import logging
import re
import struct
from collections.abc import Sequence
from typing import Any

import redis

from core.settings import DedupSettings
from pipelines.stages.dedup.logic import (
    DEFAULT_SETTINGS,
    BucketEntry,
    DedupVerdict,
    Fingerprint,
    KeyHits,
    entry_size,
    fingerprint,
    judge,
    key_kind,
)

log = logging.getLogger(__name__)


# --------------------------------------------------------------------------- dedup state

# One Redis string per dedup key: its bucket, entries concatenated oldest first. An entry is
#   ts: float64 LE | size: uint32 LE | tag: uint8 | event id
# tag 0: the id is 32 lower-case hex chars (every id core.records makes), stored as 16 raw
# bytes (29-byte entry: a one-entry bucket fits Redis' 44-byte embedded string); tag n > 0: the
# id is n bytes of UTF-8. Strings, not lists: a small list costs ~100 bytes more per key.
_ENTRY_HEAD = struct.Struct("<dIB")
_HEX_ID = re.compile(r"[0-9a-f]{32}")
_HASHED_KEY = re.compile(r"([a-z]+[0-9]*):([0-9a-f]{16}|[0-9a-f]{32})")

# Per event, atomically (a script runs alone on the server), one round trip for all its keys:
# the same steps as pipelines.stages.dedup.logic.probe_entry on each key's bucket, plus one rule for
# replays (marked *). KEYS: the event's dedup keys. ARGV: 1 event id (tag + id bytes), 2 horizon
# (float64 LE: ts - ttl), 3 one kind letter per key (e exact, b band, s sentence), 4-6 this
# event's entry for e/b/s keys, 7 max_bucket_entries, 8 TTL in ms.
# Returns {key index, hits (entries concatenated)} pairs for the keys that have hits.
_PROBE_SCRIPT = """
local own, horizon = ARGV[1], struct.unpack('<d', ARGV[2])
local kinds, entry_of = ARGV[3], {e = ARGV[4], b = ARGV[5], s = ARGV[6]}
local max_entries, ttl_ms = tonumber(ARGV[7]), tonumber(ARGV[8])
local out = {}
for i, key in ipairs(KEYS) do
  local kind = string.sub(kinds, i, i)
  local bucket = redis.call('GET', key) or ''
  local live, hits, seen, own_at = {}, {}, 0, nil
  local pos = 1
  while pos <= #bucket do
    local tag = string.byte(bucket, pos + 12)
    local len = 13 + (tag == 0 and 16 or tag)
    local e = string.sub(bucket, pos, pos + len - 1)
    pos = pos + len
    seen = seen + 1
    if struct.unpack('<d', e) >= horizon then
      live[#live + 1] = e
      if string.sub(e, 13) == own then
        own_at = #live
      elseif own_at == nil then
        -- * a replay sees only what was there before its first pass: the same verdict again
        hits[#hits + 1] = e
      end
    end
  end
  local append = own_at == nil and #live < max_entries and not (kind == 'e' and #hits > 0)
  if append then
    live[#live + 1] = entry_of[kind]
    redis.call('SET', key, table.concat(live), 'PX', ttl_ms)
  elseif #live == 0 and seen > 0 then
    redis.call('DEL', key)
  elseif #live < seen then
    redis.call('SET', key, table.concat(live), 'KEEPTTL')
  end
  if #hits > 0 then
    out[#out + 1] = i
    out[#out + 1] = table.concat(hits)
  end
end
return out
"""


def encode_event_id(event_id: str) -> bytes:
    """Tag byte + id as stored in an entry (16 raw bytes for a 32-hex id)."""
    if _HEX_ID.fullmatch(event_id):
        return b"\x00" + bytes.fromhex(event_id)
    raw = event_id.encode("utf-8")
    if not 0 < len(raw) < 256:
        raise ValueError(f"dedup: event_id must be 1-255 bytes of UTF-8, got {len(raw)} bytes: {event_id[:80]!r}")
    return bytes([len(raw)]) + raw


def encode_entry(entry: BucketEntry) -> bytes:
    """One bucket entry as stored in Redis (see the layout above)."""
    tagged = encode_event_id(entry.event_id)
    return struct.pack("<dI", entry.ts, entry.size) + tagged


def decode_entries(blob: bytes) -> list[BucketEntry]:
    """Entries concatenated as in a bucket (or a script's hits) -> BucketEntry list, in order."""
    out, pos = [], 0
    while pos < len(blob):
        ts, size, tag = _ENTRY_HEAD.unpack_from(blob, pos)
        pos += _ENTRY_HEAD.size
        n = tag or 16
        raw = blob[pos:pos + n]
        pos += n
        out.append(BucketEntry(raw.hex() if tag == 0 else raw.decode("utf-8"), ts, size))
    return out


def encode_key(key: str, namespace: bytes) -> bytes:
    """A dedup key as a Redis key: ``b07:<16 hex>`` -> namespace + ``b07`` + 8 raw bytes.

    Raw hash bytes halve the key; a key of any other shape is kept as text after a 0xFF byte, which
    no hashed key starts with, so two different dedup keys never share a Redis key.
    """
    m = _HASHED_KEY.fullmatch(key)
    if m:
        return namespace + m.group(1).encode("ascii") + bytes.fromhex(m.group(2))
    return namespace + b"\xff" + key.encode("utf-8")


class RedisDedupStore:
    """:class:`~pipelines.stages.dedup.logic.DedupIndex` with its buckets in Redis: shared, durable, expiring.

    Each event costs one round trip (:meth:`probe`): a server-side script reads and updates all
    its keys atomically, so two copies racing through different workers still meet (the one that
    runs second sees the first). Verdicts are :func:`~pipelines.stages.dedup.logic.judge`'s over the same
    hits ``DedupIndex`` would find, with one addition for replays: an event whose entry is already
    in a bucket sees only the entries stored before its own, so re-processing it (a Beam retry, a
    restart, a client retry after a timeout) gives its first verdict again and never matches
    itself. A key expires ``ttl_s`` (wall clock) after its last append; entries older than
    ``ts - ttl_s`` (event time) are ignored and dropped on every probe, as in ``DedupIndex``.
    """

    def __init__(self, client: redis.Redis, settings: DedupSettings = DEFAULT_SETTINGS,
                 namespace: bytes = b"nd:") -> None:
        self.client = client
        self.settings = settings
        self.namespace = namespace
        self._script = client.register_script(_PROBE_SCRIPT)
        self._ttl_ms = max(1, round(settings.ttl_s * 1000))

    def probe(self, fp: Fingerprint, event_id: str, ts: float) -> list[KeyHits]:
        """Read every key of the event and store the event under them; the keys' hits (one round trip)."""
        if not fp.keys:
            return []
        return self._hits(fp, self._script(*self._script_call(fp, event_id, ts)))

    def probe_many(self, events: Sequence[tuple[Fingerprint, str, float]]) -> list[list[KeyHits]]:
        """:meth:`probe` for several ``(fingerprint, event_id, ts)`` in one round trip, in order.

        Each event's script still runs alone, so a later event in the batch sees the earlier ones.
        """
        with self.client.pipeline(transaction=False) as pipe:
            for fp, event_id, ts in events:
                if fp.keys:
                    self._script(*self._script_call(fp, event_id, ts), client=pipe)
            replies = iter(pipe.execute())
        return [self._hits(fp, next(replies)) if fp.keys else [] for fp, _, _ in events]

    def _script_call(self, fp: Fingerprint, event_id: str, ts: float) -> tuple[list[bytes], list[Any]]:
        # entry_size() looks at the key's first letter only: e(xact), b(and), s(entence)
        entries = [encode_entry(BucketEntry(event_id, ts, entry_size(kind, fp))) for kind in "ebs"]
        keys = [encode_key(k, self.namespace) for k in fp.keys]
        kinds = "".join(key_kind(k)[0] for k in fp.keys)
        return keys, [encode_event_id(event_id), struct.pack("<d", ts - self.settings.ttl_s), kinds,
                      *entries, self.settings.max_bucket_entries, self._ttl_ms]

    @staticmethod
    def _hits(fp: Fingerprint, reply: Sequence[Any]) -> list[KeyHits]:
        return [KeyHits(fp.keys[int(reply[i]) - 1], tuple(decode_entries(reply[i + 1])))
                for i in range(0, len(reply), 2)]

    def observe(self, event_id: str, fp: Fingerprint, ts: float) -> DedupVerdict:
        """Match the event against earlier ones and store it: :meth:`DedupIndex.observe` on Redis."""
        return DedupVerdict(event_id, judge(fp, self.probe(fp, event_id, ts), self.settings), fp)

    def add(self, event_id: str, text: str, ts: float, **fingerprint_kw: str) -> DedupVerdict:
        """Fingerprint ``text`` and :meth:`observe` it (``url=``, ``guid=``, ``content_hash=`` optional)."""
        return self.observe(event_id, fingerprint(text, settings=self.settings, **fingerprint_kw), ts)
