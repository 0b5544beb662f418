"""Application settings: config/newswire.yaml, validated at start-up, as one frozen object."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from newswire.schemas import SchemaViolation, config_dir, validate

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
    """Entity and place tagging. ``entities``: "gazetteer" (fast, curated lists + rules),
    "spacy" (adds spaCy NER for unlisted names, English only), or "off" (skip the stage)."""

    entities: str = "gazetteer"
    demonyms: bool = True


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
    poll_max_records: int = 500
    poll_timeout_ms: int = 50
    idle_watermark_lag_s: float = 0.25
    stats_window_s: int = 60
    language: LanguageSettings = field(default_factory=LanguageSettings)
    enrichment: EnrichmentSettings = field(default_factory=EnrichmentSettings)
    portable: PortableSettings = field(default_factory=PortableSettings)


@dataclass(frozen=True)
class Settings:
    """Everything configurable, validated. Picklable, so Beam workers receive it as is."""

    data_dir: Path
    kafka: KafkaSettings
    pipeline: PipelineSettings
    storage_url: str
    file_source: str = "file:ingest"
    origin: str = "config/newswire.yaml"

    @property
    def sqlite_path(self) -> Path:
        """Filesystem path of the SQLite store (sqlite:///relative resolves against the cwd)."""
        return Path(self.storage_url.removeprefix("sqlite:///"))


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


def load_settings(path: str | os.PathLike[str] | None = None,
                  environ: Mapping[str, str] | None = None,
                  overrides: Mapping[str, Any] | None = None) -> Settings:
    """Read, override (environment, then `overrides` as dotted keys), validate and freeze the config."""
    cfg_path = Path(path) if path else config_dir() / "newswire.yaml"
    try:
        raw = yaml.safe_load(cfg_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{cfg_path}: file not found") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{cfg_path}: not valid YAML: {exc}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{cfg_path}: must be a mapping of sections, got {type(raw).__name__}")
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
            **{key: v for key, v in p.items() if key not in ("language", "enrichment", "portable")},
            language=LanguageSettings(**p.get("language", {})),
            enrichment=EnrichmentSettings(**p.get("enrichment", {})),
            portable=PortableSettings(**p.get("portable", {})),
        ),
        storage_url=raw["storage"]["url"],
        file_source=raw.get("connectors", {}).get("files", {}).get("source", "file:ingest"),
        origin=str(cfg_path),
    )
