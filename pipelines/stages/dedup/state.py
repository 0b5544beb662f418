"""The near-duplicate index in Redis: :mod:`logic`'s per-key buckets, shared by every worker and
every pipeline instance pointed at one Redis, kept across restarts (append-only file).

The one place that knows how the buckets are laid out in Redis; the decisions are the pure
functions in ``logic.py`` beside it, the Beam side is ``transform.py``.
"""

from __future__ import annotations

import hashlib
import logging
import re
import struct
import time
from collections.abc import Callable, Sequence
from typing import Any

import redis

from connectors.redis import mark_if_keys_left
from core.settings import DedupSettings
from pipelines.stages.dedup.logic import (
    DEFAULT_SETTINGS,
    BucketEntry,
    DedupVerdict,
    Fingerprint,
    KeyHits,
    fingerprint,
    judge,
    key_kind,
    kind_entry_size,
)

log = logging.getLogger(__name__)


# --------------------------------------------------------------------------- dedup state

# Layout. Redis' own cost for a key (~110 bytes: dict entry, key object, expiry entry) dwarfed the
# ~30 bytes a bucket holds, and an event has ~50 keys (bands + sentences), so buckets are fields of
# hashes instead: every dedup key is hashed (BLAKE2b, 9 bytes: :func:`key_slot`) to a *shard* (the
# first 3 bytes, masked to ``index_shards``) and a *field* (the next 5 bytes; the earlier layout
# used 6), and lives in the hash
#
#     namespace + b"y" + period (uint32 BE) + shard (3 bytes)      field -> bucket
#
# (shard + field: 59 bits at the shipped ``index_shards``, ~0.002 expected pairs of keys sharing a
# bucket among the ~52M keys of 1M fragments; such a pair gives one key of an event a stray hit,
# which turns into a wrong verdict only if one of the two is a content-hash or page key and the
# other's event is then taken for a copy: ~2e-4 a period at 1M fragments per ttl_s.)
#
# A hash of up to 128 small fields is one listpack (a flat byte array, ~3 bytes of overhead per
# field). A *period* is ``ttl_s`` of wall-clock time: writes go to the current period's hash, reads
# cover the periods a live entry can be in (the current one and the one before), and a whole hash
# expires ``ttl_s`` after its period ends (set by the script write that may have created it, i.e.
# one adding a field; every write of a period sets the same instant): no per-field expiry, nothing
# to sweep. (A key is therefore forgotten between ttl_s and 2 x ttl_s after its last write, 1.5 x
# ttl_s on average;
# entries older than ``ts - ttl_s`` in event time are ignored and dropped on every write, as
# before. Three half-TTL periods would hold 1.25 x ttl_s on average but cost a third more lookups
# per event.)
#
# A bucket: the *handles* of its events concatenated, oldest first; a handle is the first 7 bytes
# of BLAKE2b(event id) (56 bits: ~3e-5 expected pairs of events sharing one among the ~2M events of
# the two periods read at 1M fragments per ttl_s, ~3e-3 at 10M; such a pair's later event would
# take over the earlier one's record). What an entry says about its event (time, sizes, id) is the
# same under all of the event's ~50 keys, so it is stored once per period, as the event's *record*,
# in
#
#     namespace + b"r" + period + record shard (3 bytes)           handle -> record
#
# (record shard: the handle's first 3 bytes modulo ``index_shards // 32``, ~60 records a hash at
# the volume ``index_shards`` suits). A record is
#   ts: uint48 LE milliseconds | band size | sentence size | page size: uint16 LE each | tag: uint8 | id
# (sizes: logic.kind_entry_size; tag 0: the id is 32 lower-case hex chars, every id core.records
# makes, stored as 16 raw bytes; tag n > 0: the id is n bytes of UTF-8). So an entry costs ~9
# bytes under each key instead of ~27, and the record ~40 bytes once.
#
# The script returns hits as *entries*, the earlier layout's format (one event under one key):
#   ts: uint48 LE milliseconds | size: uint16 LE | tag: uint8 | event id
# and :func:`decode_entries` reads them. Earlier layout: buckets of such entries in
# ``namespace + b"x" + period + shard`` hashes. They are read, never written, while the marker key
# ``namespace + b"old"`` exists: a store that finds such hashes at start-up sets it to expire when
# they all have (2 x ttl_s), so an upgrade loses no duplicates and an event first seen by the old
# layout is still a replay; on a fresh Redis nothing is read twice.
_ENTRY_HEAD = struct.Struct("<6sHB")
_RECORD_HEAD = struct.Struct("<6sHHH")
_HEX_ID = re.compile(r"[0-9a-f]{32}")
_MAX_SIZE = 0xFFFF
_PERIODS = 2  # periods read per probe: the current one and the one before (a period is ttl_s long)
_HANDLE_BYTES = 7
_RECORDS_PER_SHARD = 32  # record shards = index_shards // this

# Per event, atomically (a script runs alone on the server), one round trip for all its keys:
# the same steps as pipelines.stages.dedup.logic.probe_entry on each key's bucket, plus one rule for
# replays (marked *). ARGV: 1 bucket hash prefix, 2 record hash prefix, 3 current period,
# 4 expiry of the current period's hashes (unix ms), 5 the event's handle, 6 its record,
# 7 horizon (ms: ts - ttl), 8 one kind letter per key (e exact, p page, b band, s sentence),
# 9 max_bucket_entries, 10 record shards, 11 the earlier layout's marker key, 12 its bucket hash
# prefix, 13 the event id as the earlier layout stored it (tag + id bytes), 14.. one key_slot
# (shard, 3 bytes + field, 6 bytes: 5 of them here, 6 in the earlier layout) per key. The content-hash key comes first: when it has hits the event
# is an exact copy, which page keys do not store (the versions of a page they keep are distinct
# texts; `copy` in probe_entry). Returns {key index, hits (entries concatenated)} pairs for the
# keys that have hits.
_PROBE_SCRIPT = """
local prefix, rprefix, period, expire_at = ARGV[1], ARGV[2], tonumber(ARGV[3]), ARGV[4]
local own, own_record, horizon = ARGV[5], ARGV[6], tonumber(ARGV[7])
local kinds, max_entries, rshards = ARGV[8], tonumber(ARGV[9]), tonumber(ARGV[10])
local old = redis.call('EXISTS', ARGV[11]) == 1
local old_prefix, own_old = ARGV[12], ARGV[13]
local periods = {}
for j = 0, %(periods)d - 1 do periods[j + 1] = struct.pack('>I4', period - %(periods)d + 1 + j) end
local current = periods[#periods]
-- per period, handle -> the live record ({raw}, plus its entry as each kind of key returns it,
-- built when first needed), or false (no record, or expired): one HGET per record an event meets
local records = {}
local kind_size = {e = false, b = 7, s = 9, p = 11}  -- where a kind's size is in a record (e: none)
for j = 1, #periods do records[j] = {} end
local function record(j, h)
  local r = records[j][h]
  if r == nil then
    local shard = struct.pack('>I3', struct.unpack('>I3', h) %% rshards)
    local raw = redis.call('HGET', rprefix .. periods[j] .. shard, h)
    if raw and struct.unpack('<I6', raw) >= horizon then
      r = {raw = raw}
    else
      r = false
    end
    records[j][h] = r
  end
  return r
end
-- touched: shard -> whether the write may have created its hash (the field was not there): only a
-- new hash needs its expiry set, one that had the field got the same expiry when it was created
local out, touched, wrote, copy = {}, {}, false, false
for i = 1, #kinds do
  local kind = string.sub(kinds, i, i)
  local slot = ARGV[13 + i]
  local shard, field = string.sub(slot, 1, 3), string.sub(slot, 4, 8)
  local live, hits, own_seen, kept, had = 0, {}, false, {}, false
  if old then
    for _, p in ipairs(periods) do
      local bucket = redis.call('HGET', old_prefix .. p .. shard, string.sub(slot, 4))
      if bucket then
        local pos = 1
        while pos <= #bucket do
          local tag = string.byte(bucket, pos + 8)
          local len = 9 + (tag == 0 and 16 or tag)
          local e = string.sub(bucket, pos, pos + len - 1)
          pos = pos + len
          if struct.unpack('<I6', e) >= horizon then
            live = live + 1
            if string.sub(e, 9) == own_old then
              own_seen = true
            elseif not own_seen then
              hits[#hits + 1] = e
            end
          end
        end
      end
    end
  end
  for j, p in ipairs(periods) do
    local bucket = redis.call('HGET', prefix .. p .. shard, field)
    if bucket then
      if j == #periods then had = true end
      for pos = 1, #bucket, %(handle)d do
        local h = string.sub(bucket, pos, pos + %(handle)d - 1)
        local r = record(j, h)
        if r then
          live = live + 1
          if j == #periods then kept[#kept + 1] = h end
          if h == own then
            own_seen = true
          elseif not own_seen then
            -- * a replay sees only what was there before its first pass: the same verdict again
            local hit = r[kind]
            if not hit then
              local raw, at = r.raw, kind_size[kind]
              hit = string.sub(raw, 1, 6) .. (at and string.sub(raw, at, at + 1) or '\\0\\0') .. string.sub(raw, 13)
              r[kind] = hit
            end
            hits[#hits + 1] = hit
          end
        end
      end
    end
  end
  if not own_seen and live < max_entries and not (kind == 'e' and #hits > 0) and not (kind == 'p' and copy) then
    kept[#kept + 1] = own
    redis.call('HSET', prefix .. current .. shard, field, table.concat(kept))
    touched[shard] = touched[shard] or not had
    wrote = true
  end
  if kind == 'e' and #hits > 0 then copy = true end
  if #hits > 0 then
    out[#out + 1] = i
    out[#out + 1] = table.concat(hits)
  end
end
if wrote then
  local rkey = rprefix .. current .. struct.pack('>I3', struct.unpack('>I3', own) %% rshards)
  redis.call('HSET', rkey, own, own_record)
  redis.call('PEXPIREAT', rkey, expire_at)
end
for shard, new in pairs(touched) do
  if new then redis.call('PEXPIREAT', prefix .. current .. shard, expire_at) end
end
return out
""".replace("%(periods)d", str(_PERIODS)).replace("%(handle)d", str(_HANDLE_BYTES)).replace("%%", "%")


def encode_event_id(event_id: str) -> bytes:
    """Tag byte + id as stored in an entry (16 raw bytes for a 32-hex id)."""
    if _HEX_ID.fullmatch(event_id):
        return b"\x00" + bytes.fromhex(event_id)
    raw = event_id.encode("utf-8")
    if not 0 < len(raw) < 256:
        raise ValueError(f"dedup: event_id must be 1-255 bytes of UTF-8, got {len(raw)} bytes: {event_id[:80]!r}")
    return bytes([len(raw)]) + raw


def _millis(ts: float) -> int:
    return min(max(0, round(ts * 1000)), (1 << 48) - 1)


def encode_entry(entry: BucketEntry) -> bytes:
    """One entry as hits come back (and as the earlier layout stored it in buckets; see above)."""
    tagged = encode_event_id(entry.event_id)
    return _millis(entry.ts).to_bytes(6, "little") + min(entry.size, _MAX_SIZE).to_bytes(2, "little") + tagged


def event_handle(event_id: str) -> bytes:
    """The 7 bytes that stand for an event in a bucket (see the layout above)."""
    return hashlib.blake2b(event_id.encode("utf-8"), digest_size=_HANDLE_BYTES).digest()


def encode_record(event_id: str, ts: float, fp: Fingerprint) -> bytes:
    """The event's record: time, band / sentence / page sizes, id (see the layout above)."""
    return _RECORD_HEAD.pack(_millis(ts).to_bytes(6, "little"),
                             *(min(kind_entry_size(kind, fp), _MAX_SIZE) for kind in ("band", "sentence", "page"))
                             ) + encode_event_id(event_id)


_HEX_ENTRY = struct.Struct("<IHHB16s")  # a tag-0 entry: ts low 32 bits, ts high 16 bits, size, tag, id
_HEX_TAG_AT = 8  # offset of the tag byte in an entry


def decode_entries(blob: bytes, memo: dict[bytes, BucketEntry] | None = None) -> list[BucketEntry]:
    """Entries concatenated as in a bucket (or a script's hits) -> BucketEntry list, in order.

    Hits are decoded for every key of every event (~150 entries an event on the e2e bench's
    stream), so the common case, where every id is a 32-hex id (fixed 25-byte entries), is one
    ``iter_unpack``: if the tag at every 25-byte boundary is 0, each entry really is 25 bytes long
    (an entry with a non-zero tag would put one at a boundary first). ``memo``: entries already
    decoded (raw bytes -> entry), shared across the keys of one reply, where the same earlier
    event comes back under many keys."""
    size = _HEX_ENTRY.size
    if len(blob) % size == 0 and blob[_HEX_TAG_AT::size].count(0) == len(blob) // size:
        if memo is None:
            return [BucketEntry(raw.hex(), (lo | hi << 32) / 1000, n)
                    for lo, hi, n, _, raw in _HEX_ENTRY.iter_unpack(blob)]
        out = []
        for pos in range(0, len(blob), size):
            chunk = blob[pos:pos + size]
            entry = memo.get(chunk)
            if entry is None:
                lo, hi, n, _, raw = _HEX_ENTRY.unpack(chunk)
                entry = memo[chunk] = BucketEntry(raw.hex(), (lo | hi << 32) / 1000, n)
            out.append(entry)
        return out
    return _decode_any(blob)


def _decode_any(blob: bytes) -> list[BucketEntry]:
    out, pos = [], 0
    while pos < len(blob):
        ms, size, tag = _ENTRY_HEAD.unpack_from(blob, pos)
        pos += _ENTRY_HEAD.size
        n = tag or 16
        raw = blob[pos:pos + n]
        pos += n
        out.append(BucketEntry(raw.hex() if tag == 0 else raw.decode("utf-8"),
                               int.from_bytes(ms, "little") / 1000, size))
    return out


def key_slot(key: str, shards: int) -> bytes:
    """Where a dedup key's bucket lives: shard (3 bytes, < ``shards``) + field (6 bytes; the
    layout now uses the first 5, the earlier one all 6)."""
    digest = hashlib.blake2b(key.encode("utf-8"), digest_size=9).digest()
    return (int.from_bytes(digest[:3], "big") % shards).to_bytes(3, "big") + digest[3:]


class RedisDedupStore:
    """:class:`~pipelines.stages.dedup.logic.DedupIndex` with its buckets in Redis: shared, durable, expiring.

    Each event costs one round trip (:meth:`probe`): a server-side script reads and updates all
    its keys atomically, so two copies racing through different workers still meet (the one that
    runs second sees the first). Verdicts are :func:`~pipelines.stages.dedup.logic.judge`'s over the same
    hits ``DedupIndex`` would find, with one addition for replays: an event whose entry is already
    in a bucket sees only the entries stored before its own, so re-processing it (a Beam retry, a
    restart, a client retry after a timeout) gives its first verdict again and never matches
    itself. Buckets are fields of period hashes that expire whole (see the layout above); entries
    older than ``ts - ttl_s`` (event time) are ignored and dropped on every write, as in ``DedupIndex``.
    ``clock``: wall-clock seconds, which pick the period (tests pass their own).
    """

    def __init__(self, client: redis.Redis, settings: DedupSettings = DEFAULT_SETTINGS,
                 namespace: bytes = b"nd:", clock: Callable[[], float] = time.time) -> None:
        self.client = client
        self.settings = settings
        self.namespace = namespace
        self.clock = clock
        self._script = client.register_script(_PROBE_SCRIPT)
        self._period_ms = max(1, round(settings.ttl_s * 1000))  # one TTL
        self._ttl_ms = max(1, round(settings.ttl_s * 1000))
        self._prefix = namespace + b"y"
        self._record_prefix = namespace + b"r"
        self._record_shards = max(1, settings.index_shards // _RECORDS_PER_SHARD)
        self._old_prefix = namespace + b"x"
        self._old_marker = namespace + b"old"
        self._old_checked = False

    def _note_old_layout(self) -> None:
        """Once, before the first probe: set the marker that makes probes read the earlier layout's
        hashes too, when any are left (see the layout above; ~1 in 6 keys of a pipeline's Redis); it
        expires when the last of them can have."""
        if not self._old_checked:
            mark_if_keys_left(self.client, self._old_prefix + b"*", self._old_marker, 2 * self._ttl_ms)
            self._old_checked = True

    def probe(self, fp: Fingerprint, event_id: str, ts: float) -> list[KeyHits]:
        """Read every key of the event and store the event under them; the keys' hits (one round trip)."""
        if not fp.keys:
            return []
        self._note_old_layout()
        return self._hits(fp, self._script(args=self._script_args(fp, event_id, ts)))

    def probe_many(self, events: Sequence[tuple[Fingerprint, str, float]]) -> list[list[KeyHits]]:
        """:meth:`probe` for several ``(fingerprint, event_id, ts)`` in one round trip, in order.

        Each event's script still runs alone, so a later event in the batch sees the earlier ones.
        """
        self._note_old_layout()
        with self.client.pipeline(transaction=False) as pipe:
            for fp, event_id, ts in events:
                if fp.keys:
                    self._script(args=self._script_args(fp, event_id, ts), client=pipe)
            replies = iter(pipe.execute())
        return [self._hits(fp, next(replies)) if fp.keys else [] for fp, _, _ in events]

    def _script_args(self, fp: Fingerprint, event_id: str, ts: float) -> list[Any]:
        kinds = "".join(key_kind(k)[0] for k in fp.keys)
        period = int(self.clock() * 1000) // self._period_ms
        expire_at = (period + 1) * self._period_ms + self._ttl_ms
        shards = self.settings.index_shards
        return [self._prefix, self._record_prefix, period, expire_at, event_handle(event_id),
                encode_record(event_id, ts, fp), _millis(ts - self.settings.ttl_s), kinds,
                self.settings.max_bucket_entries, self._record_shards, self._old_marker, self._old_prefix,
                encode_event_id(event_id), *(key_slot(k, shards) for k in fp.keys)]

    @staticmethod
    def _hits(fp: Fingerprint, reply: Sequence[Any]) -> list[KeyHits]:
        memo: dict[bytes, BucketEntry] = {}
        return [KeyHits(fp.keys[int(reply[i]) - 1], tuple(decode_entries(reply[i + 1], memo)))
                for i in range(0, len(reply), 2)]

    def observe(self, event_id: str, fp: Fingerprint, ts: float) -> DedupVerdict:
        """Match the event against earlier ones and store it: :meth:`DedupIndex.observe` on Redis."""
        return DedupVerdict(event_id, judge(fp, self.probe(fp, event_id, ts), self.settings), fp)

    def add(self, event_id: str, text: str, ts: float, **fingerprint_kw: str) -> DedupVerdict:
        """Fingerprint ``text`` and :meth:`observe` it (``url=``, ``guid=``, ``content_hash=``, ``source=`` optional)."""
        return self.observe(event_id, fingerprint(text, settings=self.settings, **fingerprint_kw), ts)
