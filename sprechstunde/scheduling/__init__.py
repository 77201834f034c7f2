"""Appointment scheduling: bookable services per office, advisors' availability, slots, bookings with
atomic seats, manage/join tokens, iCalendar files and e-mail reminders."""

from sprechstunde.scheduling.availability import Availability, AvailabilityBook, parse_availability
from sprechstunde.scheduling.bookings import SchedulingService
from sprechstunde.scheduling.catalog import Service, ServiceCatalog, load_services
from sprechstunde.scheduling.errors import BookingError
from sprechstunde.scheduling.records import Booked, Booking, JoinState, Slot

__all__ = [
    "Availability",
    "AvailabilityBook",
    "Booked",
    "Booking",
    "BookingError",
    "JoinState",
    "SchedulingService",
    "Service",
    "ServiceCatalog",
    "Slot",
    "load_services",
    "parse_availability",
]
