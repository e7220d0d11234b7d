"""FIT activity files for the export archive, written with fit-tool.

fit-tool encodes each message through generic field objects, about 60 µs a record: an hour recorded
every second would take a quarter of a second, and a thousand activities minutes. So every message but
`record` is built by fit-tool, and so is the record *definition* (field ids, sizes, base types, and the
profile's scale and offset); the record data messages are then packed with one precompiled `struct`
derived from that definition. The tests check those bytes equal fit-tool's own encoding of the same
record, and decode whole files with fitdecode.
"""

from __future__ import annotations

import bisect
import struct
import sys
from dataclasses import dataclass
from functools import cache
from itertools import pairwise
from typing import Any

from fit_tool.definition_message import DefinitionMessage
from fit_tool.fit_file_header import FitFileHeader
from fit_tool.message import Message
from fit_tool.profile.messages.activity_message import ActivityMessage
from fit_tool.profile.messages.device_info_message import DeviceInfoMessage
from fit_tool.profile.messages.event_message import EventMessage
from fit_tool.profile.messages.file_id_message import FileIdMessage
from fit_tool.profile.messages.lap_message import LapMessage
from fit_tool.profile.messages.record_message import RecordMessage
from fit_tool.profile.messages.session_message import SessionMessage
from fit_tool.profile.profile_type import (
    Activity,
    Event,
    EventType,
    FileType,
    LapTrigger,
    Manufacturer,
    SessionTrigger,
    Sport,
    SubSport,
)
from fit_tool.record import Record

#: 1989-12-31T00:00:00Z, the FIT epoch, in Unix seconds.
FIT_EPOCH = 631_065_600

#: Stream types a FIT record can carry, in the order the export encodes them.
FIT_STREAMS = ("time", "latlng", "altitude", "distance", "velocity_smooth", "heartrate", "cadence", "watts", "temp")

# Stream type -> (RecordMessage attribute, component of a [lat, lng] pair or None), enhanced fields first:
# readers prefer enhanced_speed / enhanced_altitude, older ones only know speed / altitude.
_RECORD_FIELDS: dict[str, tuple[tuple[str, int | None], ...]] = {
    "time": (("timestamp", None),),
    "latlng": (("position_lat", 0), ("position_long", 1)),
    "altitude": (("enhanced_altitude", None), ("altitude", None)),
    "distance": (("distance", None),),
    "velocity_smooth": (("enhanced_speed", None), ("speed", None)),
    "heartrate": (("heart_rate", None),),
    "cadence": (("cadence", None),),
    "watts": (("power", None),),
    "temp": (("temperature", None),),
}
_SAMPLE_VALUE: dict[str, Any] = {
    "timestamp": 1_000_000_000_000, "position_lat": 1.0, "position_long": 1.0, "enhanced_altitude": 1.0,
    "altitude": 1.0, "distance": 1.0, "enhanced_speed": 1.0, "speed": 1.0, "heart_rate": 1, "cadence": 1,
    "power": 1, "temperature": 1,
}

# Local message numbers: one per message type, so no definition is ever re-sent.
_LOCAL = {"file_id": 0, "device_info": 1, "event": 2, "record": 3, "lap": 4, "session": 5, "activity": 6}

_SPORTS: dict[str, tuple[Sport, SubSport]] = {
    "Run": (Sport.RUNNING, SubSport.GENERIC),
    "TrailRun": (Sport.RUNNING, SubSport.TRAIL),
    "VirtualRun": (Sport.RUNNING, SubSport.VIRTUAL_ACTIVITY),
    "Ride": (Sport.CYCLING, SubSport.ROAD),
    "MountainBikeRide": (Sport.CYCLING, SubSport.MOUNTAIN),
    "GravelRide": (Sport.CYCLING, SubSport.GENERIC),
    "EBikeRide": (Sport.CYCLING, SubSport.GENERIC),
    "VirtualRide": (Sport.CYCLING, SubSport.VIRTUAL_ACTIVITY),
    "Swim": (Sport.SWIMMING, SubSport.LAP_SWIMMING),
    "Hike": (Sport.HIKING, SubSport.GENERIC),
    "Walk": (Sport.WALKING, SubSport.GENERIC),
    "WeightTraining": (Sport.TRAINING, SubSport.STRENGTH_TRAINING),
    "Rowing": (Sport.ROWING, SubSport.GENERIC),
}


def _manufacturer(device: str | None) -> Manufacturer:
    name = (device or "").lower()
    for prefix, maker in (("garmin", Manufacturer.GARMIN), ("wahoo", Manufacturer.WAHOO_FITNESS),
                          ("zwift", Manufacturer.ZWIFT), ("coros", Manufacturer.COROS)):
        if name.startswith(prefix):
            return maker
    return Manufacturer.DEVELOPMENT  # e.g. Apple Watch: FIT has no manufacturer id for Apple


@dataclass(frozen=True)
class FileMeta:
    """What a file states about its activity besides the samples (from the served summary)."""

    activity_id: int
    name: str
    sport_type: str
    start_epoch: int  # start_date, Unix seconds
    local_epoch: int  # start_date_local read as if it were UTC (FIT's local_date_time convention)
    elapsed: int
    moving: int
    calories: float | None
    average_speed: float | None
    average_heartrate: float | None
    average_cadence: float | None
    average_watts: float | None
    total_elevation_gain: float | None
    device_name: str | None
    serial: int
    pauses: tuple[tuple[int, int], ...]


@dataclass(frozen=True)
class RecordCodec:
    """The record definition fit-tool chose for a set of streams, and a packer for its data messages."""

    streams: tuple[str, ...]
    definition: bytes  # the whole definition record, header byte included
    header: int  # the header byte of each data record
    packer: struct.Struct  # header byte, then one value per field of the definition, in its order
    fields: tuple[tuple[str, str, int | None, float, float], ...]  # (field, stream, component, scale, offset)


@cache
def record_codec(streams: tuple[str, ...]) -> RecordCodec:
    """Derive the packer from fit-tool's definition of a record holding these streams' fields."""
    sample = RecordMessage(local_id=_LOCAL["record"])
    source: dict[str, tuple[str, int | None]] = {}
    for stream in streams:
        for field_name, component in _RECORD_FIELDS[stream]:
            setattr(sample, field_name, _SAMPLE_VALUE[field_name])
            source[field_name] = (stream, component)
    definition = DefinitionMessage.from_data_message(sample)
    fmt = "<B"
    fields = []
    for fd in definition.field_definitions:
        field = sample.get_field(fd.field_id)
        if fd.size != fd.base_type.size or field.name not in source:
            raise ValueError(f"unexpected record field {field.name} ({fd.size} bytes)")
        fmt += fd.base_type.struct_format
        stream, component = source[field.name]
        fields.append((field.name, stream, component, float(field.scale or 1.0), float(field.offset or 0.0)))
    return RecordCodec(
        streams=streams,
        definition=Record.from_message(definition).to_bytes(),
        header=_LOCAL["record"],  # a normal data-record header is the local message number
        packer=struct.Struct(fmt),
        fields=tuple(fields),
    )


def _column(codec_field: tuple[str, str, int | None, float, float], streams: dict[str, list[Any]],
            start_epoch: int) -> list[int]:
    """One field's encoded values for every sample, rounded as fit-tool rounds (`round((v + offset) * scale)`)."""
    name, stream, component, scale, offset = codec_field
    data = streams[stream]
    if name == "timestamp":
        # fit-tool takes milliseconds since 1970 (scale 0.001, offset -631065600000): whole seconds here.
        return [start_epoch + t - FIT_EPOCH for t in data]
    if component is not None:
        return [round((p[component] + offset) * scale) for p in data]
    if scale == 1.0 and offset == 0.0:
        return [int(v) for v in data]
    return [round((v + offset) * scale) for v in data]


def encode_records(codec: RecordCodec, streams: dict[str, list[Any]], start_epoch: int) -> list[bytes]:
    """Every record data message (header byte included), one per stream sample, in order."""
    columns = [_column(f, streams, start_epoch) for f in codec.fields]
    pack = codec.packer.pack
    header = codec.header
    return [pack(header, *row) for row in zip(*columns, strict=True)]


class _Messages:
    """Encodes fit-tool messages, emitting a definition the first time a local number is used."""

    def __init__(self) -> None:
        self.defined: dict[int, bytes] = {}

    def encode(self, message: Message, kind: str) -> bytes:
        message.local_id = _LOCAL[kind]
        definition = DefinitionMessage.from_data_message(message)
        raw = Record.from_message(definition).to_bytes()
        out = b""
        if self.defined.get(message.local_id) != raw:
            self.defined[message.local_id] = raw
            out = raw
        message.set_definition_message(definition)
        return out + Record.from_message(message).to_bytes()


def _ms(epoch_seconds: int) -> int:
    return epoch_seconds * 1000


def _event(start_epoch: int, offset: int, event_type: EventType) -> EventMessage:
    msg = EventMessage()
    msg.timestamp = _ms(start_epoch + offset)
    msg.event = Event.TIMER
    msg.event_type = event_type
    msg.event_group = 0
    return msg


def _totals(msg: LapMessage | SessionMessage, meta: FileMeta, streams: dict[str, list[Any]],
            sport: Sport, sub_sport: SubSport) -> None:
    """Fields lap and session share: the whole activity as one lap."""
    end = meta.start_epoch + meta.elapsed
    msg.timestamp = _ms(end)
    msg.start_time = _ms(meta.start_epoch)
    msg.total_elapsed_time = float(meta.elapsed)
    msg.total_timer_time = float(meta.moving)
    msg.total_distance = float(streams["distance"][-1])
    msg.sport = sport
    msg.sub_sport = sub_sport
    msg.message_index = 0
    if "latlng" in streams:
        first, last = streams["latlng"][0], streams["latlng"][-1]
        msg.start_position_lat, msg.start_position_long = first[0], first[1]
        msg.end_position_lat, msg.end_position_long = last[0], last[1]
    if meta.average_speed is not None:
        msg.enhanced_avg_speed = msg.avg_speed = meta.average_speed
    speeds = streams.get("velocity_smooth")
    if speeds:
        msg.enhanced_max_speed = msg.max_speed = max(speeds)
    if meta.calories is not None:
        msg.total_calories = round(meta.calories)
    if meta.total_elevation_gain is not None and "altitude" in streams:
        msg.total_ascent = round(meta.total_elevation_gain)
        alt = streams["altitude"]
        msg.total_descent = round(sum(max(0.0, a - b) for a, b in pairwise(alt)))
    if "heartrate" in streams and meta.average_heartrate is not None:
        msg.avg_heart_rate = round(meta.average_heartrate)
        msg.max_heart_rate = max(streams["heartrate"])
    if "cadence" in streams and meta.average_cadence is not None:
        msg.avg_cadence = round(meta.average_cadence)
        msg.max_cadence = max(streams["cadence"])
    if "watts" in streams:
        watts = streams["watts"]
        msg.avg_power = round(meta.average_watts) if meta.average_watts is not None else round(sum(watts) / len(watts))
        msg.max_power = max(watts)


def fit_bytes(meta: FileMeta, streams: dict[str, list[Any]]) -> bytes:
    """A FIT activity file: file_id, device_info, timer events, one record per sample, lap, session, activity."""
    sport, sub_sport = _SPORTS.get(meta.sport_type, (Sport.GENERIC, SubSport.GENERIC))
    maker = _manufacturer(meta.device_name)
    messages = _Messages()
    start = meta.start_epoch
    parts: list[bytes] = []

    file_id = FileIdMessage()
    file_id.type = FileType.ACTIVITY
    file_id.manufacturer = maker.value
    file_id.product = 1
    file_id.serial_number = meta.serial
    file_id.time_created = _ms(start)
    parts.append(messages.encode(file_id, "file_id"))

    device = DeviceInfoMessage()
    device.timestamp = _ms(start)
    device.device_index = 0  # the creator
    device.manufacturer = maker.value
    device.product = 1
    device.serial_number = meta.serial
    device.software_version = 12.3
    parts.append(messages.encode(device, "device_info"))

    parts.append(messages.encode(_event(start, 0, EventType.START), "event"))

    # Records, with timer stop/start events around each pause, placed by time.
    codec = record_codec(tuple(s for s in FIT_STREAMS if s in streams))
    records = encode_records(codec, streams, start)
    times = streams["time"]
    inserts: list[tuple[int, bytes]] = []  # (insert before record index, event bytes)
    for at, length in meta.pauses:
        for offset, kind in ((at, EventType.STOP_ALL), (at + length, EventType.START)):
            index = bisect.bisect_right(times, offset)
            inserts.append((index, messages.encode(_event(start, offset, kind), "event")))
    parts.append(codec.definition)
    previous = 0
    for index, event in inserts:
        parts.extend(records[previous:index])
        parts.append(event)
        previous = index
    parts.extend(records[previous:])
    parts.append(messages.encode(_event(start, meta.elapsed, EventType.STOP_ALL), "event"))

    lap = LapMessage()
    _totals(lap, meta, streams, sport, sub_sport)
    lap.event = Event.LAP
    lap.event_type = EventType.STOP
    lap.lap_trigger = LapTrigger.SESSION_END
    parts.append(messages.encode(lap, "lap"))

    session = SessionMessage()
    _totals(session, meta, streams, sport, sub_sport)
    session.event = Event.SESSION
    session.event_type = EventType.STOP
    session.trigger = SessionTrigger.ACTIVITY_END
    session.first_lap_index = 0
    session.num_laps = 1
    parts.append(messages.encode(session, "session"))

    # timestamp and local_timestamp name the same instant (the start), so both readings agree:
    # local_timestamp is start_date_local, and local_timestamp - timestamp is the UTC offset.
    activity = ActivityMessage()
    activity.timestamp = _ms(start)
    activity.local_timestamp = meta.local_epoch - FIT_EPOCH
    activity.total_timer_time = float(meta.moving)
    activity.num_sessions = 1
    activity.type = Activity.MANUAL
    activity.event = Event.ACTIVITY
    activity.event_type = EventType.STOP
    parts.append(messages.encode(activity, "activity"))

    body = b"".join(parts)
    header = FitFileHeader(records_size=len(body), gen_crc=True).to_bytes()
    crc = crc16(body, crc16(header))
    return header + body + struct.pack("<H", crc)


# --- CRC -----------------------------------------------------------------------------------------------
# FIT's CRC is CRC-16/ARC (reflected 0x8005). fit-tool's nibble loop costs ~1 µs a byte; a table indexed
# by 16 bits consumes two bytes per Python step, which keeps the CRC of a 100 kB file near 3 ms.

@cache
def _tables() -> tuple[list[int], list[int]]:
    t8 = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
        t8.append(crc)
    t16 = [(t8[x & 0xFF] >> 8) ^ t8[((x >> 8) ^ t8[x & 0xFF]) & 0xFF] for x in range(65536)]
    return t8, t16


def crc16(data: bytes | bytearray | memoryview, crc: int = 0) -> int:
    """FIT CRC of `data`, continuing from `crc` (same result as fit_tool.utils.crc.crc16)."""
    t8, t16 = _tables()
    raw = bytes(data)
    even = len(raw) & ~1
    words = memoryview(raw[:even]).cast("H")
    if sys.byteorder == "big":
        import array

        swapped = array.array("H", raw[:even])
        swapped.byteswap()
        words = memoryview(swapped)
    for word in words:
        crc = t16[crc ^ word]
    if even != len(raw):
        crc = (crc >> 8) ^ t8[(crc ^ raw[-1]) & 0xFF]
    return crc
