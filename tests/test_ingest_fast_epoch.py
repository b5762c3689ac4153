"""The events' ts column is the same float whichever way it is computed (store.ingest.fast_epoch)."""

from datetime import datetime, timedelta, timezone, tzinfo

from hypothesis import given, settings, strategies as st
from pydantic import TypeAdapter

from agentdeck.store.ingest import epoch, fast_epoch

AS_PYDANTIC = TypeAdapter(datetime)
offsets = st.integers(min_value=-23 * 60 - 59, max_value=23 * 60 + 59).map(lambda m: timezone(timedelta(minutes=m)))
# (hypothesis's stubs type ``timezones`` as SearchStrategy[None] alone: hence the ignore below)
zones: st.SearchStrategy[tzinfo | None] = st.one_of(offsets, st.none())


@settings(max_examples=300)
@given(st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30), timezones=zones))  # type: ignore[arg-type]
def test_any_datetime_gives_exactly_what_timestamp_gives(ts):
    # Twice: the first call may note the zone, the second takes the noted way.
    assert fast_epoch(ts) == epoch(ts)
    assert fast_epoch(ts) == epoch(ts)


@settings(max_examples=300)
@given(st.datetimes(min_value=datetime(1970, 1, 2), max_value=datetime(9999, 12, 30)),
       st.sampled_from(["Z", "+00:00", "+02:00", "-05:30", "+14:00", ""]))
def test_timestamps_as_agents_write_them_give_exactly_what_timestamp_gives(naive, zone):
    # As the events are validated (pydantic's own TzInfo, one shared object for "Z").
    ts = AS_PYDANTIC.validate_json(f'"{naive.isoformat()}{zone}"')
    assert fast_epoch(ts) == epoch(ts)
    assert fast_epoch(ts) == epoch(ts)
