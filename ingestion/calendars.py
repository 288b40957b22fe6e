"""Trading-day lookups backed by exchange-calendars (XTKS for Tokyo, XNYS for the US).

Importing exchange_calendars costs about 0.6 s and building one calendar about 0.1 s
(measured with exchange-calendars 4.13 and pandas 3.1), so the import is deferred to
the first lookup and each market's calendar is built once per run, for a bounded range.
"""

from __future__ import annotations

import datetime
import logging
from dataclasses import dataclass, field

from ingestion.markets import Market

logger = logging.getLogger(__name__)

# pandas' nanosecond timestamps end on 2262-04-11, and exchange-calendars 4.13 raises
# OutOfBoundsDatetime for a later end. The margin keeps clear of that edge.
LAST_SUPPORTED_DAY = datetime.date(2262, 4, 1)


@dataclass(frozen=True)
class _SessionSet:
    first_day: datetime.date
    last_day: datetime.date
    session_ordinals: frozenset[int]


@dataclass
class TradingCalendars:
    """Per-run cache that tells trading days from closed days, per market.

    Each market's calendar runs from its calendar_first_day to `last_day`, clamped to
    LAST_SUPPORTED_DAY. Days outside that range have no verdict.
    """

    last_day: datetime.date
    # None for a market whose clamped range is empty.
    _sessions: dict[str, _SessionSet | None] = field(default_factory=dict)

    def is_session(self, market: Market, day: datetime.date) -> bool | None:
        """Return whether `day` was a trading day, or None when the calendar does not cover it."""
        if market.calendar_code not in self._sessions:
            self._sessions[market.calendar_code] = self._load(market)
        sessions = self._sessions[market.calendar_code]
        if sessions is None or not sessions.first_day <= day <= sessions.last_day:
            return None
        return day.toordinal() in sessions.session_ordinals

    def _load(self, market: Market) -> _SessionSet | None:
        import exchange_calendars

        first_day = market.calendar_first_day
        last_day = min(self.last_day, LAST_SUPPORTED_DAY)
        where = {
            "calendar": market.calendar_code,
            "first_day": first_day.isoformat(),
            "last_day": last_day.isoformat(),
        }
        # exchange-calendars raises ValueError unless start is before end.
        if last_day <= first_day:
            logger.info("trading calendar range is empty, days have no verdict", extra=where)
            return None
        calendar = exchange_calendars.get_calendar(
            market.calendar_code, start=first_day.isoformat(), end=last_day.isoformat()
        )
        # A set of ordinals makes each lookup a hash probe, because is_session() on the
        # calendar parses its argument with pandas on every call.
        ordinals = frozenset(session.date().toordinal() for session in calendar.sessions)
        logger.info("trading calendar loaded", extra={**where, "sessions": len(ordinals)})
        return _SessionSet(first_day, last_day, ordinals)
