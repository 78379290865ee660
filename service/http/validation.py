"""Every invalid field of a request body at once, each with its JSON pointer.

msgspec stops at the first error. When a body fails to decode, it is walked
here field by field against the same types (so what is refused cannot differ
from what msgspec refuses): every unknown field, every missing required field
and every invalid value is reported, recursing into nested objects and lists.

A date or datetime field (an `occurred_on`, `starts_at`, `published_on`: a
string type with the world-time or date pattern) that does not parse is
reported with `domain.world_time`'s sentence and example, the same one the
domain gives for 2022-02-30; a body whose only faults are dates is a 422
`invalid-date`, like every other date error of the API.
"""

from __future__ import annotations

import types
import typing
from typing import Any

import msgspec

from domain import world_time
from domain.errors import InvalidDate
from service.http.problems import InvalidField, field_from_message

_DATE_PATTERNS = {world_time.DATE_PATTERN, world_time.WORLD_TIME_PATTERN}


class Fault(msgspec.Struct):
    field: InvalidField
    date: bool = False


def _token(name: str) -> str:
    return name.replace("~", "~0").replace("/", "~1")


def _strict_error(value: Any, type_: Any) -> msgspec.ValidationError | None:
    # Through JSON, so the rules are exactly those of decoding the body.
    try:
        msgspec.json.decode(msgspec.json.encode(value), type=type_, strict=True)
    except msgspec.ValidationError as error:
        return error
    return None


def _unwrap(type_: Any) -> Any:
    while typing.get_origin(type_) is typing.Annotated:
        type_ = typing.get_args(type_)[0]
    return type_


def _members(type_: Any) -> list[Any]:
    type_ = _unwrap(type_)
    if typing.get_origin(type_) in (typing.Union, types.UnionType):
        return [_unwrap(t) for t in typing.get_args(type_) if t is not type(None)]
    return [type_]


def _date_kind(type_: Any) -> str | None:
    """"date" or "world time" when the type is one of the API's date strings."""
    for member in _members(type_):
        if member is str:
            info = msgspec.inspect.type_info(type_)
            infos = info.types if isinstance(info, msgspec.inspect.UnionType) else (info,)
            for item in infos:
                inner = item.type if isinstance(item, msgspec.inspect.Metadata) else item
                if isinstance(inner, msgspec.inspect.StrType) and inner.pattern in _DATE_PATTERNS:
                    return "date" if inner.pattern == world_time.DATE_PATTERN else "world time"
    return None


def _struct_for(type_: Any, value: Any) -> type[msgspec.Struct] | None:
    """The Struct a dict is meant as: the type itself, or the member of a tagged
    union that its tag selects."""
    if not isinstance(value, dict):
        return None
    structs = [m for m in _members(type_) if isinstance(m, type) and issubclass(m, msgspec.Struct)]
    if len(structs) == 1:
        return structs[0]
    for struct in structs:
        config = struct.__struct_config__
        if config.tag_field and value.get(config.tag_field) == config.tag:
            return struct
    return None


def _list_item(type_: Any, value: Any) -> Any:
    if not isinstance(value, list):
        return None
    for member in _members(type_):
        if typing.get_origin(member) in (list, tuple) and typing.get_args(member):
            return typing.get_args(member)[0]
    return None


def faults(value: Any, type_: Any, pointer: str = "") -> list[Fault]:
    """Every fault of `value` (decoded JSON) as `type_`; [] when it is valid."""
    error = _strict_error(value, type_)
    if error is None:
        return []
    found: list[Fault] = []
    struct = _struct_for(type_, value)
    item_type = _list_item(type_, value)
    if struct is not None:
        found = _struct_faults(value, struct, pointer)
    elif item_type is not None:
        for index, item in enumerate(value):
            found.extend(faults(item, item_type, f"{pointer}/{index}"))
    elif (kind := _date_kind(type_)) is not None:
        return [Fault(InvalidField(pointer=pointer, detail=date_sentence(value, kind)), date=True)]
    if found:
        return found
    # The value itself (a wrong type, a bound, a list's length): msgspec's message.
    field = field_from_message(str(error))
    field.pointer = pointer + (field.pointer or "")
    return [Fault(field)]


def _struct_faults(value: dict[str, Any], struct: type[msgspec.Struct], pointer: str) -> list[Fault]:
    config = struct.__struct_config__
    fields = msgspec.structs.fields(struct)
    names = {f.encode_name for f in fields} | ({config.tag_field} if config.tag_field else set())
    found: list[Fault] = []
    if config.forbid_unknown_fields:
        for name in value:
            if name not in names:
                found.append(Fault(InvalidField(pointer=f"{pointer}/{_token(name)}",
                                                detail=f"Object contains unknown field `{name}`")))
    if config.tag_field and value.get(config.tag_field) != config.tag:
        found.append(Fault(InvalidField(pointer=f"{pointer}/{_token(config.tag_field)}",
                                        detail=f"Expected `{config.tag}`")))
    for info in fields:
        where = f"{pointer}/{_token(info.encode_name)}"
        if info.encode_name not in value:
            if info.required:
                found.append(Fault(InvalidField(pointer=where, detail=f"Object missing required field "
                                                f"`{info.encode_name}`")))
            continue
        found.extend(faults(value[info.encode_name], info.type, where))
    return found


def date_sentence(value: Any, kind: str = "world time") -> str:
    """What is wrong with a date, in a sentence, with an example of a good one."""
    if kind == "date" and isinstance(value, str) and "T" in value:
        return f"{value!r} is not a date: give the day alone, as an ISO 8601 date such as 2022-03-16."
    try:
        world_time.parse(value, "")
    except InvalidDate as error:
        return error.detail
    return f"{value!r} is not a date this field takes: write an ISO 8601 date such as 2022-03-16."


__all__ = ["Fault", "date_sentence", "faults"]
