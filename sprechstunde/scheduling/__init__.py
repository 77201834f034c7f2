"""Appointment scheduling: bookable services per office, advisors' availability, slots, bookings with
atomic seats, manage/join tokens, iCalendar files and e-mail reminders."""

from sprechstunde.scheduling.availability import Availability, AvailabilityBook, parse_availability
from sprechstunde.scheduling.bookings import Booked, Booking, JoinState, SchedulingService, Slot
from sprechstunde.scheduling.catalog import Service, ServiceCatalog, load_services
from sprechstunde.scheduling.errors import BookingError

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
