"""Bookable services per office (TOML): name, length, buffer and channel (video, in person or both).

Read once at start-up like the offices file; a mistake stops the server with "<file>: <field>: <problem>"
instead of showing up later as a wrong slot.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from sprechstunde.rooms.offices import NAME_KEYS, OfficeConfigError, OfficeDirectory, read_names, read_toml
from sprechstunde.scheduling.errors import BookingError

VIDEO = "video"
IN_PERSON = "in_person"
BOTH = "both"
CHANNELS = (VIDEO, IN_PERSON)
SERVICE_ID = re.compile(r"^[a-z0-9_-]{1,40}$")


@dataclass(frozen=True)
class Service:
    office: str
    id: str
    names: Mapping[str, str]
    minutes: int
    buffer: int = 0
    channel: str = BOTH

    def name(self, language: str = "de") -> str:
        return self.names.get(language) or self.names["de"]

    @property
    def channels(self) -> tuple[str, ...]:
        return CHANNELS if self.channel == BOTH else (self.channel,)


class ServiceCatalog:
    """Services by office, and the address of each office for in-person appointments."""

    def __init__(self, services: list[Service], addresses: Mapping[str, str] | None = None) -> None:
        self._services: dict[str, dict[str, Service]] = {}
        for service in services:
            self._services.setdefault(service.office, {})[service.id] = service
        self._addresses = dict(addresses or {})

    def __iter__(self) -> Iterator[Service]:
        for by_id in self._services.values():
            yield from by_id.values()

    def for_office(self, office_id: str) -> list[Service]:
        return list(self._services.get(office_id, {}).values())

    def address(self, office_id: str) -> str:
        return self._addresses.get(office_id, "")

    def require(self, office_id: Any, service_id: Any) -> Service:
        """The service, or `unknown_service` (404)."""
        by_id = self._services.get(office_id) if isinstance(office_id, str) else None
        service = by_id.get(service_id) if by_id and isinstance(service_id, str) else None
        if service is None:
            raise BookingError(
                "unknown_service", f"office {office_id!r} offers no service {str(service_id)[:40]!r}", 404
            )
        return service


def demo_services_path() -> Path:
    return Path(str(resources.files("sprechstunde.scheduling") / "services.toml"))


def load_services(offices: OfficeDirectory, path: Path | str | None = None) -> ServiceCatalog:
    """Read a services file (default: the demo file), keeping only offices that are configured, so the
    demo services work with any offices file that shares some office ids."""
    path = Path(path) if path is not None else demo_services_path()
    return parse_services(read_toml(path), str(path), offices)


def parse_services(data: Mapping[str, Any], source: str, offices: OfficeDirectory) -> ServiceCatalog:
    def fail(where: str, problem: str) -> OfficeConfigError:
        return OfficeConfigError(source, where, problem)

    services, addresses = [], {}
    for office_id, entry in data.items():
        if not isinstance(entry, dict):
            raise fail(office_id, "must be a table")
        unknown = set(entry) - {"address", "services"}
        if unknown:
            raise fail(f"{office_id}.{sorted(unknown)[0]}", "unknown setting")
        if office_id not in offices:
            continue
        address = entry.get("address", "")
        if not isinstance(address, str):
            raise fail(f"{office_id}.address", "a string")
        addresses[office_id] = address.strip()
        for service_id, spec in (entry.get("services") or {}).items():
            where = f"{office_id}.services.{service_id}"
            if not SERVICE_ID.match(service_id) or not isinstance(spec, dict):
                raise fail(where, "a table whose id is a-z, 0-9, _ or - (at most 40 characters)")
            unknown = set(spec) - {*NAME_KEYS, "minutes", "buffer", "channel"}
            if unknown:
                raise fail(f"{where}.{sorted(unknown)[0]}", "unknown setting")
            names = read_names(spec, where, fail)
            minutes, buffer = spec.get("minutes"), spec.get("buffer", 0)
            if isinstance(minutes, bool) or not isinstance(minutes, int) or not 5 <= minutes <= 480:
                raise fail(f"{where}.minutes", "whole minutes between 5 and 480")
            if isinstance(buffer, bool) or not isinstance(buffer, int) or not 0 <= buffer <= 120:
                raise fail(f"{where}.buffer", "whole minutes between 0 and 120")
            channel = spec.get("channel", BOTH)
            if channel not in (*CHANNELS, BOTH):
                raise fail(f"{where}.channel", 'one of "video", "in_person", "both"')
            services.append(Service(office_id, service_id, names, minutes, buffer, channel))
    return ServiceCatalog(services, addresses)
