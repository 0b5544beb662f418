"""Source connectors: push Fragment records INTO the raw Kafka topic.

:data:`SOURCES` is the registry: name -> class. The name is the source's config section
(``connectors.NAME`` in config/newswire.yaml) and its ``newswire source NAME`` command; `newswire
up` starts every registered source whose ``enabled(settings)`` holds. A new source is one module
(a :class:`~connectors.sources.base.BaseSource`) plus one line here and its config section.
"""

from __future__ import annotations

from connectors.sources.base import BaseSource
from connectors.sources.http import HttpSource
from connectors.sources.inbox import InboxSource
from connectors.sources.rss import RssSource

SOURCES: dict[str, type[BaseSource]] = {source.name: source for source in (InboxSource, HttpSource, RssSource)}
