"""Application settings: config/newswire.yaml, validated at start-up, as one frozen object."""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import yaml

from core.schemas import SchemaViolation, config_dir, validate

ENV_PREFIX = "NEWSWIRE__"


class ConfigError(ValueError):
    """The configuration is invalid; the message names the file and the bad key."""


@dataclass(frozen=True)
class Topic:
    """A Kafka topic the project owns."""

    name: str
    partitions: int


@dataclass(frozen=True)
class Topics:
    fragments: Topic
    enriched: Topic
    alerts: Topic
    dlq: Topic
    stats: Topic

    def all(self) -> tuple[Topic, ...]:
        return (self.fragments, self.enriched, self.alerts, self.dlq, self.stats)


@dataclass(frozen=True)
class EmbeddedKafka:
    enabled: bool = True
    version: str = "4.1.1"
    controller_port: int = 9093
    heap: str = "512m"


@dataclass(frozen=True)
class KafkaSettings:
    bootstrap_servers: str
    consumer_group: str
    topics: Topics
    embedded: EmbeddedKafka = field(default_factory=EmbeddedKafka)


@dataclass(frozen=True)
class LanguageSettings:
    min_letters: int = 20
    min_confidence: float = 0.5


@dataclass(frozen=True)
class EnrichmentSettings:
    """Entity and place tagging. ``entities``: "gazetteer" (fast, curated lists + rules for unlisted names),
    "spacy" (adds spaCy NER for unlisted names, English only), or "off" (skip the stage)."""

    entities: str = "gazetteer"
    demonyms: bool = True


@dataclass(frozen=True)
class DedupSettings:
    """pipeline.dedup: the mode, what counts as the same item, and the tunables of
    pipelines/stages/dedup/logic.py (defaults: what bench/dedup_eval.py measured). ``mode``: "near"
    (exact + near-duplicates + containment, state in Redis: survives restarts, shared by all
    workers) or "exact" (content-hash only, Beam state, no Redis)."""

    mode: str = "near"
    # Same canonical URL / same source+GUID are the same page: a duplicate, or an update of it
    # (pipelines/stages/dedup/logic.py, judge).
    match_url: bool = True
    match_guid: bool = True

    shingle_words: int = 3
    bands: int = 42
    rows: int = 3
    min_sentence_words: int = 5
    max_sentence_keys: int = 64
    max_bucket_entries: int = 8
    # Redis hashes per period (ttl_s) that the index is spread over (pipelines/stages/dedup/state.py):
    # a hash stays a compact listpack up to 128 fields, i.e. ~2.5 events per shard per ttl_s; the
    # default suits ~1.3M fragments per 72 h. More still works, at ~2.5x the memory per fragment.
    index_shards: int = 524288
    ttl_s: float = 72 * 3600.0
    near_duplicate_jaccard: float = 0.45
    min_band_hits: int = 3
    containment: float = 0.6
    min_sentence_hits: int = 2
    seed: int = 20220225

    def __post_init__(self) -> None:
        if self.bands < 1 or self.rows < 1:
            raise ValueError(f"dedup: bands and rows must be >= 1, got bands={self.bands} rows={self.rows}")
        if not 0 < self.near_duplicate_jaccard <= 1 or not 0 < self.containment <= 1:
            raise ValueError("dedup: near_duplicate_jaccard and containment must be in (0, 1]")
        if not 1 <= self.index_shards <= 1 << 24:
            raise ValueError(f"dedup: index_shards must be 1..16777216, got {self.index_shards}")
        if self.max_bucket_entries < 1:
            raise ValueError(f"dedup: max_bucket_entries must be >= 1, got {self.max_bucket_entries}")

    @property
    def num_perm(self) -> int:
        """Length of a MinHash signature."""
        return self.bands * self.rows


@dataclass(frozen=True)
class NoveltySettings:
    """The novelty tunables (pipelines/stages/stories/novelty.py); config: stories.novelty_near_match."""

    min_words: int = 4
    shingle_words: int = 3
    near_match: float = 0.8
    max_sentences: int = 4096
    max_shingles: int = 65536
    # Keep 1 in ``shingle_sample`` shingles (those whose hash is divisible by it: the same ones in
    # every process), and compare a sentence on its sampled shingles: memory / shingle_sample for
    # a near-match estimate that is still exact on sentences of 8+ words in practice.
    shingle_sample: int = 2

    def __post_init__(self) -> None:
        if not 0 < self.near_match <= 1:
            raise ValueError(f"novelty: near_match must be in (0, 1], got {self.near_match}")
        if self.shingle_sample < 1:
            raise ValueError(f"novelty: shingle_sample must be >= 1, got {self.shingle_sample}")


@dataclass(frozen=True)
class StorySettings:
    """pipeline.stories: whether stories run, and the tunables of pipelines/stages/stories/
    (clustering.py; ``novelty`` for novelty.py). State in Redis."""

    enabled: bool = True
    novelty: NoveltySettings = field(default_factory=lambda: NoveltySettings())

    # p(same event) from pipelines/data/story_scorer.json at or above which an event joins a story
    # (chosen with those coefficients on held-out seeds by bench/train_story_scorer.py; the file
    # records it, and a test keeps this default and config/newswire.yaml equal to it)
    join_threshold: float = 0.3
    max_gap_s: float = 72 * 3600.0
    # IDF: pseudo-documents behind the shipped word prior, prior of unknown words, words above this
    # prior document frequency are function words; content words kept per event.
    prior_docs: float = 300.0
    unseen_doc_freq: float = 2e-5
    max_word_doc_freq: float = 0.35
    max_event_terms: int = 30
    place_weight: float = 0.5
    # A quote counts when its words' prior IDF above quote_word_idf_floor sums to quote_min_idf_sum
    # (stock phrases stay below), and then its 5-word shingles whose mean prior IDF reaches quote_min_idf.
    quote_min_words: int = 6
    quote_shingle_words: int = 5
    quote_word_idf_floor: float = 2.5
    quote_min_idf_sum: float = 4.5
    quote_min_idf: float = 1.0
    # Centroid: the founding event counts founder_weight times (damps drift); caps per story.
    founder_weight: float = 2.0
    max_story_terms: int = 48
    max_story_entities: int = 24
    max_story_numbers: int = 24
    max_story_quotes: int = 48
    max_story_sources: int = 32
    # Late merge: when an event scores >= join_threshold against two open stories whose content
    # centroids have cosine >= merge_min_similarity, whose name centroids have cosine >=
    # merge_min_name_similarity and whose numbers do not disagree, the smaller (then younger) story
    # is merged into the other (1.0: never merge); a story lists at most max_merged_ids it absorbed.
    merge_min_similarity: float = 0.4
    merge_min_name_similarity: float = 0.9
    max_merged_ids: int = 16
    # Inverted index: keys per event, newest stories kept per key and day, candidates scored.
    index_terms: int = 6
    index_entities: int = 3
    index_quotes: int = 2
    max_postings: int = 12
    max_candidates: int = 8
    top_n: int = 5

    def __post_init__(self) -> None:
        if not 0 < self.join_threshold < 1:
            raise ValueError(f"stories: join_threshold is a probability in (0, 1), got {self.join_threshold}")
        if self.max_gap_s <= 0:
            raise ValueError("stories: max_gap_s must be a positive duration in seconds")
        if not 0 < self.merge_min_similarity <= 1:
            raise ValueError("stories: merge_min_similarity is a cosine in (0, 1] (1 turns late merges off), "
                             f"got {self.merge_min_similarity}")


#: The stages that keep state in Redis, each of which ``redis.stage_urls`` may place on its own server.
STATE_STAGES = ("dedup", "stories", "alerts")


@dataclass(frozen=True)
class RedisSettings:
    """Where pipeline state lives (near-duplicate index). ``embedded``: `newswire up` and the tests
    start their own redis-server on the URL's port, data under data_dir/redis."""

    url: str = "redis://127.0.0.1:6390/0"
    embedded: bool = True
    namespace: str = "nd:"
    # "auto": half of the machine's memory (connectors/redis.resolve_maxmemory); writes past it fail
    # (noeviction), never evict state silently. None: no limit.
    maxmemory: str | None = "auto"
    # A stage's state (dedup, stories, alerts) on a Redis of its own; a stage not named uses ``url``.
    # One Redis runs every script on one thread, so it bounds all jobs together (docs/deploy.md).
    # (stage, url) pairs, as load_settings reads the ``redis.stage_urls`` mapping.
    stage_urls: tuple[tuple[str, str], ...] = ()

    def url_for(self, stage: str) -> str:
        """The Redis URL of ``stage`` (``dedup``, ``stories`` or ``alerts``)."""
        return dict(self.stage_urls).get(stage) or self.url

    def server_stages(self, stages: Iterable[str] = STATE_STAGES) -> dict[str, list[str]]:
        """The Redis servers of ``url`` and of ``stages``' state, each (its first URL) with the stages
        whose state it holds, ``url``'s first (it also holds the status board, so it may hold no
        stage). A server is a host and port: two URLs that differ only in the database are one server."""
        out: dict[str, list[str]] = {self.url: []}
        first = {_server(self.url): self.url}
        for stage in stages:
            url = self.url_for(stage)
            out.setdefault(first.setdefault(_server(url), url), []).append(stage)
        return out

    @property
    def password(self) -> str | None:
        """The password in the URL (``redis://:PASSWORD@host:port/0``), which the embedded server then
        requires (``requirepass``); mandatory when it listens beyond loopback (docs/security.md)."""
        return urlsplit(self.url).password

    @property
    def port(self) -> int:
        return url_port(self.url)


def _server(url: str) -> tuple[str, int]:
    """The (host, port) a ``redis://`` URL names (the host in lower case)."""
    return urlsplit(url).hostname or "", url_port(url)


def url_port(url: str) -> int:
    """The port of a ``redis://[:password@]host:port[/db]`` URL."""
    return int(url.split("://", 1)[1].split("/", 1)[0].rsplit(":", 1)[1])


#: Hosts that mean "this machine": only there can `newswire up` run the embedded PostgreSQL.
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")


@dataclass(frozen=True)
class StorageSettings:
    """Where enriched events, their stories and alerts are stored, chosen by the URL's scheme:
    ``sqlite:///path`` (embedded default) or ``postgresql://user@host:port/db``.
    ``postgres_embedded``: when the URL is PostgreSQL on a loopback host, `newswire up` and
    `newswire broker` start their own server on the URL's port, data under data_dir/postgres."""

    url: str
    postgres_embedded: bool = True

    @property
    def kind(self) -> str:
        """``sqlite`` or ``postgresql``."""
        return self.url.split("://", 1)[0]

    @property
    def sqlite_path(self) -> Path:
        """Filesystem path of the SQLite store (sqlite:///relative resolves against the cwd)."""
        return Path(self.url.removeprefix("sqlite:///"))

    @property
    def embedded_postgres(self) -> bool:
        """Whether `newswire up` runs the PostgreSQL server itself (see the class docstring)."""
        return self.kind == "postgresql" and self.postgres_embedded and urlsplit(self.url).hostname in LOOPBACK_HOSTS

    @property
    def postgres_port(self) -> int:
        return urlsplit(self.url).port or 5432

    @property
    def postgres_database(self) -> str:
        return urlsplit(self.url).path.lstrip("/")

    @property
    def postgres_user(self) -> str:
        """The URL's user: the embedded server's application role (default ``newswire``; not a superuser)."""
        return urlsplit(self.url).username or "newswire"


def storage_url_error(url: str) -> str | None:
    """What is wrong with a ``storage.url`` (None when it is usable): the scheme, host, port, database."""
    if url.startswith("sqlite:///"):
        return None if url.removeprefix("sqlite:///").strip() else "sqlite:/// needs a file path"
    if not url.startswith("postgresql://"):
        return f"'{url}' is neither sqlite:///path nor postgresql://user@host:port/db"
    parts = urlsplit(url)
    try:
        parts.port  # noqa: B018 - parsing it is the check
    except ValueError:
        return f"'{url}': the port is not a number from 0 to 65535"
    if not parts.hostname:
        return f"'{url}': a PostgreSQL URL needs a host, e.g. postgresql://newswire@127.0.0.1:5433/newswire"
    database = parts.path.lstrip("/")
    if not database or "/" in database:
        return f"'{url}': a PostgreSQL URL needs one database name after the host, e.g. .../newswire"
    return None


@dataclass(frozen=True)
class PortableSettings:
    """Where a deployed pipeline is submitted (runner flink): a Beam job server in front of a Flink
    cluster, and the Python SDK worker pool the Flink task managers call (docker-compose.yml)."""

    job_endpoint: str = "localhost:8099"
    environment_type: str = "EXTERNAL"
    environment_config: str = "localhost:50000"
    parallelism: int = 2


@dataclass(frozen=True)
class PipelineSettings:
    runner: str = "prism"
    max_fragment_bytes: int = 262144
    # Bounds that keep one record from stalling or stopping the stream (docs/deploy.md#limits).
    analysis_max_chars: int = 20_000
    max_event_bytes: int = 900_000
    max_list_items: int = 200
    # How long a step waits out an unreachable broker, Redis or store before it gives up, and how
    # often `newswire pipeline` resubmits a failed job (within the window) before it exits non-zero.
    outage_max_wait_s: float = 600.0
    job_restarts: int = 5
    job_restart_window_s: float = 3600.0
    # GET /healthz and /readyz of `newswire pipeline` / `up` (None: no endpoint).
    health_host: str = "127.0.0.1"
    health_port: int | None = 8081
    poll_max_records: int = 500
    poll_timeout_ms: int = 50
    # How long a poll waits when the job reads ONE partition (`up`'s jobs, one per partition): no
    # other partition's poll waits behind it, and records end the wait as they arrive.
    lone_poll_timeout_ms: int = 250
    # The reader's fetches: the broker answers one once fetch_min_bytes of records are there or
    # fetch_max_wait_ms have passed (capped to the job's poll wait), so at a steady rate a poll
    # brings a batch, not a record or two, and the per-batch work is shared (bench/RESULTS.md
    # "Fetches that wait for a batch").
    fetch_min_bytes: int = 65536
    fetch_max_wait_ms: int = 100
    idle_watermark_lag_s: float = 0.25
    stats_window_s: int = 60
    # Read only these partitions of the raw topic (None: all). Several independent pipeline jobs
    # can split one topic this way; they share dedup and story state through Redis.
    partitions: tuple[int, ...] | None = None
    language: LanguageSettings = field(default_factory=LanguageSettings)
    enrichment: EnrichmentSettings = field(default_factory=EnrichmentSettings)
    portable: PortableSettings = field(default_factory=PortableSettings)
    dedup: DedupSettings = field(default_factory=DedupSettings)
    stories: StorySettings = field(default_factory=StorySettings)


@dataclass(frozen=True)
class RssFeed:
    """One feed the RSS/Atom poller reads: its name becomes the source ``rss:{name}``."""

    name: str
    url: str
    interval_s: float = 300.0


@dataclass(frozen=True)
class RssSettings:
    """connectors.rss: the RSS/Atom poller (runs when enabled and feeds are listed)."""

    enabled: bool = True
    feeds: tuple[RssFeed, ...] = ()
    timeout_s: float = 20.0
    max_backoff_s: float = 3600.0
    user_agent: str = "newswire/0.1 (+https://newswire.dev)"
    # GET /metrics, /healthz and /readyz of the poller (None: no endpoint; 0: any free port).
    health_host: str = "127.0.0.1"
    health_port: int | None = 8083
    # /readyz answers 503 once every feed's polls have failed for this long (docs/connectors.md).
    unready_after_s: float = 300.0


@dataclass(frozen=True)
class HttpSettings:
    """connectors.http: the POST /fragments ingest endpoint."""

    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = 8080
    token_env: str = "NEWSWIRE_HTTP_TOKEN"
    max_body_bytes: int = 1_048_576
    rate_limit_per_s: float = 200.0
    rate_limit_burst: int = 400
    max_in_flight: int = 10_000
    ack_timeout_s: float = 30.0
    source: str = "http:ingest"
    # Slow or greedy clients (connectors/sources/http.py HttpLimits, docs/security.md).
    header_timeout_s: float = 10.0
    body_timeout_s: float = 30.0
    max_connections: int = 2048
    max_header_bytes: int = 8192


@dataclass(frozen=True)
class InboxSettings:
    """connectors.inbox: the watched folder. ``path`` None means ``<data_dir>/inbox``."""

    enabled: bool = True
    path: Path | None = None
    poll_interval_s: float = 1.0
    settle_s: float = 1.0
    source: str = "file:inbox"
    # GET /metrics, /healthz and /readyz of the watcher (None: no endpoint; 0: any free port).
    health_host: str = "127.0.0.1"
    health_port: int | None = 8084
    # /readyz answers 503 once the inbox has been failing for this long (docs/connectors.md).
    unready_after_s: float = 300.0


@dataclass(frozen=True)
class ConnectorSettings:
    rss: RssSettings = field(default_factory=RssSettings)
    http: HttpSettings = field(default_factory=HttpSettings)
    inbox: InboxSettings = field(default_factory=InboxSettings)


@dataclass(frozen=True)
class AlertSettings:
    """Alert rules (pipelines.stages.alerts.transform, docs/alerts.md): the rules file, resolved against
    the directory of the configuration file; state in Redis under redis.namespace + ``al:``."""

    enabled: bool = True
    rules_path: Path = Path("config/alerts.yaml")
    # The running pipeline reloads a changed rules file, looking at most this often (seconds).
    reload_interval_s: float = 5.0
    # Webhook delivery (`newswire alerts notify`, `newswire up`): attempts per alert before it goes
    # to the dead-letter topic, and the longest wait between two attempts.
    notify_max_attempts: int = 8
    notify_max_backoff_s: float = 60.0
    # GET /metrics of the notifier (None: no endpoint); 0 picks a free port.
    notify_metrics_host: str = "127.0.0.1"
    notify_metrics_port: int | None = 8082


@dataclass(frozen=True)
class ConsoleSettings:
    """console: the web console (newswire/console/, docs/console.md). Tokens come from the environment
    variables named here; with neither set it serves only a loopback host, to anyone there."""

    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = 8090
    viewer_token_env: str = "NEWSWIRE_CONSOLE_VIEWER_TOKEN"
    operator_token_env: str = "NEWSWIRE_CONSOLE_OPERATOR_TOKEN"
    session_ttl_s: float = 12 * 3600.0
    alert_backlog: int = 100
    dead_letter_backlog: int = 200

    def __post_init__(self) -> None:
        if self.viewer_token_env == self.operator_token_env:
            raise ConfigError(f"console: viewer_token_env and operator_token_env must differ (both "
                              f"'{self.viewer_token_env}'), else a viewer's token would make an operator")


@dataclass(frozen=True)
class Settings:
    """Everything configurable, validated. Picklable, so Beam workers receive it as is."""

    data_dir: Path
    kafka: KafkaSettings
    pipeline: PipelineSettings
    storage: StorageSettings
    file_source: str = "file:ingest"
    origin: str = "config/newswire.yaml"
    connectors: ConnectorSettings = field(default_factory=ConnectorSettings)
    redis: RedisSettings = field(default_factory=RedisSettings)
    alerts: AlertSettings = field(default_factory=AlertSettings)
    console: ConsoleSettings = field(default_factory=ConsoleSettings)

    @property
    def state_stages(self) -> list[str]:
        """The stages of this configuration that keep state in Redis (of :data:`STATE_STAGES`)."""
        p = self.pipeline
        return [stage for stage, on in (("dedup", p.dedup.mode == "near"), ("stories", p.stories.enabled),
                                        ("alerts", self.alerts.enabled)) if on]

    @property
    def inbox_path(self) -> Path:
        """The watched inbox folder (connectors.inbox.path, default <data_dir>/inbox)."""
        return self.connectors.inbox.path or self.data_dir / "inbox"

    @property
    def storage_url(self) -> str:
        """The store's URL (storage.url). For the embedded PostgreSQL, with neither a password nor a
        ``passfile`` in it, the password file the embedded server wrote for the application role
        (``<data_dir>/postgres/<user>.pgpass``, 0600; connectors/postgres.py) is added as ``passfile``."""
        url = self.storage.url
        if not self.storage.embedded_postgres or urlsplit(url).password or "passfile=" in url:
            return url
        passfile = (self.data_dir / "postgres" / f"{self.storage.postgres_user}.pgpass").resolve()
        return f"{url}{'&' if '?' in url else '?'}passfile={quote(str(passfile), safe='/')}"

    @property
    def sqlite_path(self) -> Path:
        """Filesystem path of the SQLite store (sqlite:///relative resolves against the cwd)."""
        return self.storage.sqlite_path


def read_config_file(path: Path, error: type[ConfigError] = ConfigError, what: str = "") -> Any:
    """Parsed YAML of a config file, or ``error`` naming the file (``what``: where it is configured)."""
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise error(f"{path}: file not found{f' ({what})' if what else ''}") from None
    except yaml.YAMLError as exc:
        raise error(f"{path}: not valid YAML: {exc}") from None


def _apply_env_overrides(raw: dict[str, Any], environ: Mapping[str, str]) -> dict[str, Any]:
    for name, value in environ.items():
        if not name.startswith(ENV_PREFIX):
            continue
        keys = [k.lower() for k in name[len(ENV_PREFIX):].split("__") if k]
        node = raw
        for k in keys[:-1]:
            child = node.setdefault(k, {})
            if not isinstance(child, dict):
                raise ConfigError(f"environment {name}: '{'.'.join(keys[:-1])}' is not a section")
            node = child
        node[keys[-1]] = yaml.safe_load(value)
    return raw


def layered(base: Mapping[str, Any], changes: Mapping[str, Any]) -> dict[str, Any]:
    """`base` with `changes` laid over it, section by section: a mapping merges key by key, any other
    value (a list included) replaces; an empty section (``pipeline:`` with nothing under it) changes nothing."""
    out = dict(base)
    for key, value in changes.items():
        if isinstance(out.get(key), Mapping) and (value is None or isinstance(value, Mapping)):
            out[key] = layered(out[key], value or {})
        else:
            out[key] = value
    return out


def load_settings(path: str | os.PathLike[str] | None = None,
                  environ: Mapping[str, str] | None = None,
                  overrides: Mapping[str, Any] | None = None) -> Settings:
    """Read, override (environment, then `overrides` as dotted keys), validate and freeze the config.

    A file given as `path` names only what it changes: it is laid over the shipped defaults
    (config/newswire.yaml), as the environment is laid over both.
    """
    defaults_path = config_dir() / "newswire.yaml"
    cfg_path = Path(path) if path else defaults_path
    raw = read_config_file(cfg_path)
    if not isinstance(raw, dict):
        raise ConfigError(f"{cfg_path}: must be a mapping of sections, got {type(raw).__name__}")
    if cfg_path.resolve() != defaults_path.resolve():
        defaults = read_config_file(defaults_path)
        if "rules_path" not in (raw.get("alerts") or {}):
            # the shipped default names a file beside the shipped config, not beside this one
            defaults["alerts"]["rules_path"] = str(defaults_path.parent / defaults["alerts"]["rules_path"])
        raw = layered(defaults, raw)
    raw = _apply_env_overrides(raw, os.environ if environ is None else environ)
    for dotted, value in (overrides or {}).items():
        node = raw
        *parents, last = dotted.split(".")
        for k in parents:
            node = node.setdefault(k, {})
        node[last] = value
    try:
        validate("newswire-config", raw)
    except SchemaViolation as exc:
        raise ConfigError(f"{cfg_path}: {exc.path or '(top level)'}: {exc.detail}") from None
    storage_error = storage_url_error(raw["storage"]["url"])
    if storage_error:
        raise ConfigError(f"{cfg_path}: storage.url: {storage_error}")
    port_error = _port_clash(raw)
    if port_error:
        raise ConfigError(f"{cfg_path}: {port_error}")

    k = raw["kafka"]
    p = raw.get("pipeline", {})
    topics = Topics(**{role: Topic(**spec) for role, spec in k["topics"].items()})
    return Settings(
        data_dir=Path(raw["data_dir"]),
        kafka=KafkaSettings(
            bootstrap_servers=k["bootstrap_servers"],
            consumer_group=k["consumer_group"],
            topics=topics,
            embedded=EmbeddedKafka(**k.get("embedded", {})),
        ),
        pipeline=PipelineSettings(
            **{key: v for key, v in p.items() if key not in ("language", "enrichment", "portable", "dedup",
                                                                 "stories", "partitions")},
            dedup=DedupSettings(**p.get("dedup", {})),
            stories=_story_settings(p.get("stories", {})),
            partitions=tuple(p["partitions"]) if p.get("partitions") is not None else None,
            language=LanguageSettings(**p.get("language", {})),
            enrichment=EnrichmentSettings(**p.get("enrichment", {})),
            portable=PortableSettings(**p.get("portable", {})),
        ),
        storage=StorageSettings(**raw["storage"]),
        file_source=raw.get("connectors", {}).get("files", {}).get("source", "file:ingest"),
        origin=str(cfg_path),
        connectors=_connector_settings(raw.get("connectors", {})),
        redis=_redis_settings(raw.get("redis", {})),
        alerts=_alert_settings(raw.get("alerts") or {}, cfg_path),
        console=_console_settings(raw.get("console") or {}, cfg_path),
    )


def _redis_settings(raw: Mapping[str, Any]) -> RedisSettings:
    stage_urls = tuple(sorted((raw.get("stage_urls") or {}).items()))
    return RedisSettings(**{**raw, "stage_urls": stage_urls})


def _port_clash(raw: Mapping[str, Any]) -> str | None:
    """Two endpoints `newswire up` serves in one process on the same port: which, else None."""
    connectors = raw.get("connectors") or {}
    http, rss, inbox = (connectors.get(name) or {} for name in ("http", "rss", "inbox"))
    ports = {"connectors.http.port": http.get("port", HttpSettings.port) if http.get("enabled", True) else None,
             "connectors.rss.health_port": rss.get("health_port", RssSettings.health_port)
             if rss.get("enabled", True) and rss.get("feeds") else None,
             "connectors.inbox.health_port": inbox.get("health_port", InboxSettings.health_port)
             if inbox.get("enabled", True) else None,
             "pipeline.health_port": (raw.get("pipeline") or {}).get("health_port", PipelineSettings.health_port),
             "alerts.notify_metrics_port": (raw.get("alerts") or {}).get("notify_metrics_port",
                                                                         AlertSettings.notify_metrics_port),
             "console.port": (raw.get("console") or {}).get("port", ConsoleSettings.port)
             if (raw.get("console") or {}).get("enabled", True) else None}
    seen: dict[int, str] = {}
    for key, port in ports.items():
        if port:  # None: no endpoint; 0: a free port each
            if port in seen:
                return f"{key}: {port} is also {seen[port]}; `newswire up` serves both, choose another port"
            seen[port] = key
    return None


def _story_settings(raw: dict[str, Any]) -> StorySettings:
    rest = {k: v for k, v in raw.items() if k != "novelty_near_match"}
    novelty = NoveltySettings(near_match=raw["novelty_near_match"]) if "novelty_near_match" in raw else NoveltySettings()
    return StorySettings(**rest, novelty=novelty)


def _alert_settings(raw: dict[str, Any], cfg_path: Path) -> AlertSettings:
    # a relative rules_path is beside the configuration file, wherever the process runs
    rules_path = Path(raw.get("rules_path", "alerts.yaml"))
    rest = {k: v for k, v in raw.items() if k not in ("enabled", "rules_path")}
    return AlertSettings(enabled=raw.get("enabled", True),
                         rules_path=rules_path if rules_path.is_absolute() else cfg_path.parent / rules_path, **rest)


def _console_settings(raw: dict[str, Any], cfg_path: Path) -> ConsoleSettings:
    try:
        return ConsoleSettings(**raw)
    except ConfigError as exc:
        raise ConfigError(f"{cfg_path}: {exc}") from None


def _connector_settings(raw: dict[str, Any]) -> ConnectorSettings:
    rss = dict(raw.get("rss") or {})
    feeds = tuple(RssFeed(**feed) for feed in rss.pop("feeds", None) or ())
    inbox = dict(raw.get("inbox") or {})
    if inbox.get("path"):
        inbox["path"] = Path(inbox["path"])
    return ConnectorSettings(rss=RssSettings(**rss, feeds=feeds), http=HttpSettings(**(raw.get("http") or {})),
                             inbox=InboxSettings(**inbox))
