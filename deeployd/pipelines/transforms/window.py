"""`window`: tumbling, sliding and session windows with aggregations.

Time of a record:
- processing time (default): `Item.ingest_ms` (the log's ingest time, so a replay is identical);
- event time (`timeField`): the field's value, epoch ms (number) or an ISO-8601 string.

A window [start, end) closes when its close time `end + allowedLatenessMs` is reached by the
watermark (the max record time seen so far, checked after every record in process()) or by
`now_ms` in advance() (the workflow's timer; see next_deadline_ms). Closing emits one row per (window, group):
    {"windowStart": ISO, "windowEnd": ISO, <group keys>, <aggregates>}
A record whose windows have all closed already is late -> `ChainOutput.late` (not aggregated).
Session windows: a session grows while records arrive less than `gap` ms apart; its row spans
[first record time, last record time + gap). State is bounded by `maxOpenWindows` (window x group).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import Field

from .aggs import AggregationConfig, Aggregations, AggregationsMixin
from .configs import validate_config
from .errors import ConfigError, StepError
from .expressions import datetime_ms, iso_ms
from .model import TRANSFORMS, OutItem, Record, RunCtx, Step, as_item, span
from .paths import make_getter, split_path

TYPES = ("tumbling", "sliding", "session")
MAX_SIZE_MS = 31 * 24 * 3600 * 1000
MAX_WINDOWS_PER_ITEM = 100
DEFAULT_MAX_OPEN = 10_000
MAX_OPEN_LIMIT = 100_000

# open-window entry: [start, end, group_values, accumulators, first_offset, last_offset, ingest_ms]
START, END, GVALS, ACCS, FIRST, LAST, INGEST = range(7)


class WindowConfig(AggregationsMixin):
    type: str
    size: int | None = Field(default=None, ge=1, le=MAX_SIZE_MS)
    slide: int | None = Field(default=None, ge=1, le=MAX_SIZE_MS)
    gap: int | None = Field(default=None, ge=1, le=MAX_SIZE_MS)
    timeField: str | None = None
    allowedLatenessMs: int = Field(default=0, ge=0, le=MAX_SIZE_MS)
    maxOpenWindows: int = Field(default=DEFAULT_MAX_OPEN, ge=1, le=MAX_OPEN_LIMIT)
    aggregations: list[AggregationConfig] = Field(  # default: count the records
        default_factory=lambda: [AggregationConfig(field="*", function="count")],
        min_length=1,
        max_length=50,
    )


MIN_TIME_MS = -62_135_596_800_000  # 0001-01-01T00:00:00Z
MAX_TIME_MS = 253_402_300_799_999  # 9999-12-31T23:59:59.999Z


def parse_time(v: Any) -> int | None:
    """Epoch ms from a number or an ISO-8601 string (naive = UTC); None if not a time."""
    t = type(v)
    ms: int | None = None
    if t is int:
        ms = v
    elif t is float:
        ms = int(v) if v == v and abs(v) < 1e16 else None
    elif t is str:
        if v.isdigit():
            ms = int(v)
        else:
            try:
                ms = datetime_ms(datetime.fromisoformat(v))
            except ValueError:
                return None
    if ms is None or not MIN_TIME_MS <= ms <= MAX_TIME_MS:
        return None
    return ms


@TRANSFORMS.register("window")
class WindowStep(Step):
    stateful = True
    groups_records = True
    after_stateful = False  # a window/batch step comes before this one

    def __init__(self, index: int, raw: Any, upstream: str | None = None) -> None:
        self.index = index
        self.after_stateful = upstream is not None
        loc = ("transforms", index, "config")
        self.config = cfg = validate_config(WindowConfig, raw, loc)
        if cfg.type not in TYPES:
            raise ConfigError(
                (*loc, "type"),
                f"unknown window type '{cfg.type}'; expected one of: {', '.join(TYPES)}",
            )
        self.kind = cfg.type
        if self.kind == "session":
            if cfg.gap is None and cfg.size is None:
                raise ConfigError((*loc, "gap"), "session windows need 'gap' (ms)")
            if cfg.gap is not None and cfg.size is not None:
                raise ConfigError(
                    (*loc, "size"), "'size' is not used by session windows when 'gap' is set"
                )
            if cfg.slide is not None:
                raise ConfigError(
                    (*loc, "slide"), "'slide' is not used by session windows (use 'gap')"
                )
            if cfg.gap is None:  # documented default: a session ends after `size` ms of quiet
                cfg.gap, cfg.size = cfg.size, None
        else:
            if cfg.size is None:
                raise ConfigError((*loc, "size"), f"{self.kind} windows need 'size' (ms)")
            if cfg.gap is not None:
                raise ConfigError((*loc, "gap"), "'gap' is only used by session windows")
            if self.kind == "tumbling" and cfg.slide is not None:
                raise ConfigError((*loc, "slide"), "'slide' is only used by sliding windows")
            if self.kind == "sliding":
                if cfg.slide is None:  # documented default: four overlapping windows per record
                    cfg.slide = max(1, cfg.size // 4)
                if cfg.slide > cfg.size:
                    raise ConfigError((*loc, "slide"), "'slide' must not be larger than 'size'")
                if -(-cfg.size // cfg.slide) > MAX_WINDOWS_PER_ITEM:
                    raise ConfigError(
                        (*loc, "slide"),
                        f"size/slide must be at most {MAX_WINDOWS_PER_ITEM} (windows per record)",
                    )
        self.event_time = cfg.timeField is not None
        if self.event_time:
            try:
                split_path(cfg.timeField or "")
            except ValueError as exc:
                raise ConfigError((*loc, "timeField"), str(exc)) from None
            self.time_getter = make_getter(cfg.timeField or "")
        self.lateness = cfg.allowedLatenessMs
        self.size = cfg.size or 0
        self.slide = cfg.slide or self.size
        self.gap = cfg.gap or 0
        self.max_open = cfg.maxOpenWindows
        self.aggs = Aggregations(cfg.groupBy, cfg.aggregations, loc, ("windowStart", "windowEnd"))

    # state: {"wm": event-time watermark | None, "fired": close times <= fired are emitted | None,
    #         "open": {"<start>|<group key>": entry}, "due": earliest close time | None,
    #         "keys": "json"} ("keys" marks JSON group keys; older states are re-keyed on load)
    def initial(self) -> Any:
        return {"wm": None, "fired": None, "open": {}, "due": None, "keys": "json"}

    def load(self, raw: Any) -> Any:
        open_ = raw["open"]
        if raw.get("keys") != "json":
            key = self.aggs.group_key
            open_ = {f"{e[START]}|{key(e[GVALS])}": e for e in open_.values()}
        st = {"wm": raw["wm"], "fired": raw["fired"], "open": dict(open_)}
        st["touched"] = set()  # entries copied in this call (the input state is never mutated)
        st["due"] = self._due(st["open"])
        if self.kind == "session":  # group key -> its open sessions' keys (not persisted)
            by_group: dict[str, set[str]] = {}
            for k in st["open"]:
                by_group.setdefault(k.split("|", 1)[1], set()).add(k)
            st["by_group"] = by_group
        return st

    def dump(self, st: Any) -> Any:
        return {
            "wm": st["wm"],
            "fired": st["fired"],
            "open": st["open"],
            "due": st["due"],
            "keys": "json",
        }

    def deadline(self, st: Any) -> int | None:
        return st["due"]

    def _due(self, open_: dict) -> int | None:
        if not open_:
            return None
        return min(e[END] for e in open_.values()) + self.lateness

    def _entry(self, st: dict, key: str) -> list:
        """The open entry `key`, copied on its first write in this call."""
        entry = st["open"][key]
        if key not in st["touched"]:
            entry = [*entry[:ACCS], self.aggs.copy(entry[ACCS]), *entry[FIRST:]]
            st["open"][key] = entry
            st["touched"].add(key)
        return entry

    def _new(self, st: dict, key: str, start: int, end: int, gvals: list, sp: tuple) -> list:
        entry = [start, end, gvals, self.aggs.new(), sp[0], sp[1], sp[2]]
        st["open"][key] = entry
        st["touched"].add(key)
        if st["due"] is None or end + self.lateness < st["due"]:
            st["due"] = end + self.lateness
        return entry

    @staticmethod
    def _extend(entry: list, sp: tuple) -> None:
        if sp[0] < entry[FIRST]:
            entry[FIRST] = sp[0]
        if sp[1] > entry[LAST]:
            entry[LAST] = sp[1]
        if sp[2] < entry[INGEST]:
            entry[INGEST] = sp[2]

    # ------------------------------------------------------------------ processing

    def process(self, st: Any, recs: list[Record], ctx: RunCtx) -> list[Record]:
        out: list[Record] = []
        aggs = self.aggs
        for value, src in recs:
            try:
                sp = span(src)
                if self.event_time:
                    ts = parse_time(self.time_getter(value))
                    if ts is None:
                        raise StepError(
                            f"window: timeField '{self.config.timeField}' is missing or not a time"
                        )
                else:
                    ts = sp[2]
                gvals = aggs.group_values(value)
                gkey = aggs.group_key(gvals)
                vals = aggs.extract(value)
                if self.kind == "session":
                    accepted = self._add_session(st, ts, gvals, gkey, vals, sp)
                else:
                    accepted = self._add_fixed(st, ts, gvals, gkey, vals, sp)
                if not accepted:
                    ctx.late.append(as_item(value, src))
                    continue
            except StepError as exc:
                ctx.fail(value, src, str(exc))
                continue
            except Exception as exc:  # an engine bug must fail the item, not stall the pipeline
                ctx.fail(value, src, f"window: {type(exc).__name__}: {exc}")
                continue
            if st["wm"] is None or ts > st["wm"]:
                st["wm"] = ts
                if st["due"] is not None and ts >= st["due"]:
                    out += self._close(st, ts)
        return out

    def _closed(self, st: dict, end: int) -> bool:
        """Has the window ending at `end` been closed (by the timer or the watermark) already?"""
        close = end + self.lateness
        fired, wm = st["fired"], st["wm"]
        return (fired is not None and close <= fired) or (wm is not None and close <= wm)

    def _add_fixed(self, st: dict, ts: int, gvals: list, gkey: str, vals: list, sp: tuple) -> bool:
        if self.kind == "tumbling":  # the hot path: exactly one window
            start = ts - ts % self.size
            if self._closed(st, start + self.size):
                return False
            key = f"{start}|{gkey}"
            if key in st["open"]:
                entry = self._entry(st, key)
                self.aggs.check_compatible(entry[ACCS], vals)
                self._extend(entry, sp)
            else:
                if len(st["open"]) >= self.max_open:
                    raise StepError(
                        f"window: too many open windows (maxOpenWindows={self.max_open})"
                    )
                entry = self._new(st, key, start, start + self.size, gvals, sp)
            self.aggs.add(entry[ACCS], vals)
            return True
        last_start = ts - ts % self.slide
        starts = [s for s in range(last_start, ts - self.size, -self.slide)]
        starts = [s for s in starts if not self._closed(st, s + self.size)]
        if not starts:
            return False
        open_ = st["open"]
        keys = [f"{s}|{gkey}" for s in starts]
        new = sum(1 for k in keys if k not in open_)
        if new and len(open_) + new > self.max_open:
            raise StepError(f"window: too many open windows (maxOpenWindows={self.max_open})")
        for k in keys:  # validate against every window before touching any
            if k in open_:
                self.aggs.check_compatible(open_[k][ACCS], vals)
        entries = []
        for s, k in zip(starts, keys, strict=True):
            if k in open_:
                entry = self._entry(st, k)
            else:
                entry = self._new(st, k, s, s + self.size, gvals, sp)
            entries.append(entry)
        for entry in entries:
            self._extend(entry, sp)
            self.aggs.add(entry[ACCS], vals)
        return True

    def _add_session(
        self, st: dict, ts: int, gvals: list, gkey: str, vals: list, sp: tuple
    ) -> bool:
        open_ = st["open"]
        mine = st["by_group"].setdefault(gkey, set())
        end = ts + self.gap
        # sessions of this group overlapping [ts, ts + gap) merge with the new record
        hits = sorted(k for k in mine if open_[k][START] < end and ts < open_[k][END])
        if not hits and self._closed(st, end):
            return False
        if not hits and len(open_) >= self.max_open:
            raise StepError(f"window: too many open windows (maxOpenWindows={self.max_open})")
        aggs = self.aggs
        for k in hits:
            aggs.check_compatible(open_[k][ACCS], vals)
        if len(hits) == 1 and open_[hits[0]][START] <= ts:  # the common case: extend in place
            entry = self._entry(st, hits[0])
            if end > entry[END]:
                old_close = entry[END] + self.lateness
                entry[END] = end
                if old_close == st["due"]:
                    st["due"] = self._due(open_)
            self._extend(entry, sp)
            aggs.add(entry[ACCS], vals)
            return True
        accs = aggs.new()
        start, first, last, ingest = ts, sp[0], sp[1], sp[2]
        lateness = self.lateness
        recompute = any(open_[k][END] + lateness == st["due"] for k in hits)
        for k in hits:
            e = open_.pop(k)
            mine.discard(k)
            st["touched"].discard(k)
            accs = aggs.merge(accs, e[ACCS])
            start, end = min(start, e[START]), max(end, e[END])
            first, last, ingest = min(first, e[FIRST]), max(last, e[LAST]), min(ingest, e[INGEST])
        aggs.add(accs, vals)
        key = f"{start}|{gkey}"
        open_[key] = [start, end, gvals, accs, first, last, ingest]
        mine.add(key)
        st["touched"].add(key)
        if recompute or st["due"] is None:
            st["due"] = self._due(open_)
        else:  # the merged session ends no earlier than the ones it absorbed
            st["due"] = min(st["due"], end + lateness)
        return True

    # ------------------------------------------------------------------ closing

    def _close(self, st: dict, until: int) -> list[Record]:
        """Emit and drop every window whose close time is <= until."""
        open_ = st["open"]
        lateness = self.lateness
        due = [(k, e) for k, e in open_.items() if e[END] + lateness <= until]
        if st["fired"] is None or until > st["fired"]:
            st["fired"] = until
        if not due:
            return []
        by_group = st.get("by_group")
        for k, _ in due:
            del open_[k]
            if by_group is not None:
                by_group[k.split("|", 1)[1]].discard(k)
        st["due"] = self._due(open_)
        due.sort(key=lambda ke: (ke[1][END], ke[1][START]))
        return [self._row(e) for _, e in due]

    def _row(self, e: list) -> Record:
        head = {"windowStart": iso_ms(e[START]), "windowEnd": iso_ms(e[END])}
        row = self.aggs.row(e[GVALS], e[ACCS], head)
        return row, OutItem(row, e[FIRST], e[LAST], e[INGEST])

    def tick(self, st: Any, recs: list[Record], ctx: RunCtx) -> list[Record]:
        # process() closes windows by the watermark only, never by now_ms: while the workflow is
        # still draining a backlog, items ingested before now_ms may not have been read yet.
        out = self.process(st, recs, ctx) if recs else []
        if self.event_time or self.after_stateful or ctx.max_ingest is None:
            return out
        # Processing time, fed straight from the log: every item the chain read this call moves
        # the watermark, also those a filter dropped before reaching this step.
        wm = ctx.max_ingest
        if st["wm"] is None or wm > st["wm"]:
            st["wm"] = wm
            if st["due"] is not None and wm >= st["due"]:
                out += self._close(st, wm)
        return out

    def advance(self, st: Any, ctx: RunCtx) -> list[Record]:
        """The timer: close every window whose close time is <= now_ms."""
        return self._close(st, ctx.now_ms)

    def flush(self, st: Any, ctx: RunCtx) -> list[Record]:
        """Emit every open window (partial), e.g. when the pipeline stops."""
        entries = sorted(st["open"].values(), key=lambda e: (e[END], e[START]))
        st["open"] = {}
        st["due"] = None
        if "by_group" in st:
            st["by_group"] = {}
        return [self._row(e) for e in entries]
