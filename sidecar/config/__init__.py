"""The configuration file: its schema (:mod:`.models`), loading it (:mod:`.loading`) and listen
addresses (:mod:`.listen`). Parsed once at start (and at each reload) and passed down."""

from sidecar.config.loading import load_config, parse_config
from sidecar.config.models import Config, KeyConfig

__all__ = ["Config", "KeyConfig", "load_config", "parse_config"]
