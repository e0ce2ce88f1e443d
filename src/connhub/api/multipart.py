"""multipart/form-data bodies read in memory, for routes that take small files.

Starlette's form parser spools files over 1 MiB to a temporary file; certificate material must never
touch the local disk, so the body (already bounded by `http.BodyLimit`) is read here instead, with
python-multipart's `FormParser` told never to spool. This module knows no dialect: the route names
the parts it allows and the size of each.
"""

from __future__ import annotations

from collections.abc import Sequence
from io import BytesIO

from python_multipart.exceptions import FormParserError, MultipartParseError
from python_multipart.multipart import Field, File, FormParser, parse_options_header
from starlette.exceptions import HTTPException
from starlette.requests import Request

from connhub.api.http import UPLOAD_BODY_BYTES, BodyTooLarge
from connhub.domain.errors import ValidationFailed

FORM_DATA = b"multipart/form-data"
MALFORMED = "is not a well-formed multipart/form-data body"
NEVER_SPOOL = {"MAX_MEMORY_FILE_SIZE": float("inf")}  # the whole body is bounded before it is parsed


async def read_parts(request: Request, names: Sequence[str], max_part_bytes: int) -> dict[str, bytes]:
    """The parts of a multipart body by name, each at most `max_part_bytes`, parsed in memory.

    415 when the body is not multipart/form-data; 413 naming a part over the bound; 400 naming any
    part not in `names`, sent twice, or none at all.
    """
    boundary = _boundary(request.headers.get("content-type", ""), names)
    try:
        raw = await request.body()
    except BodyTooLarge:
        raise HTTPException(413, f"the request body must be at most {UPLOAD_BODY_BYTES} bytes") from None
    return _checked(_parse(raw, boundary), names, max_part_bytes)


def _boundary(content_type: str, names: Sequence[str]) -> bytes:
    kind, params = parse_options_header(content_type)
    boundary = params.get(b"boundary")
    if kind != FORM_DATA or not boundary:
        raise HTTPException(415, f"the request body must be multipart/form-data with {', '.join(names)}")
    return boundary


def _parse(raw: bytes, boundary: bytes) -> list[tuple[str, bytes]]:
    """Every part as (name, content), in the order sent."""
    parts: list[tuple[str, bytes]] = []
    ended = False

    def on_field(field: Field) -> None:
        parts.append((_name(field.field_name), field.value or b""))

    def on_file(file: File) -> None:
        content = file.file_object
        assert isinstance(content, BytesIO)  # NEVER_SPOOL: python-multipart kept it in memory
        parts.append((_name(file.field_name), content.getvalue()))

    def on_end() -> None:
        nonlocal ended
        ended = True

    try:
        parser = FormParser(FORM_DATA.decode(), on_field, on_file, on_end, boundary=boundary, config=NEVER_SPOOL)
        parser.write(raw)
        parser.finalize()
    except (MultipartParseError, FormParserError, ValueError):
        raise ValidationFailed({"body": MALFORMED}) from None
    if not ended:
        raise ValidationFailed({"body": MALFORMED})
    return parts


def _name(raw: bytes | None) -> str:
    return (raw or b"").decode("utf-8", "replace")


def _checked(parts: list[tuple[str, bytes]], names: Sequence[str], max_part_bytes: int) -> dict[str, bytes]:
    found: dict[str, bytes] = {}
    problems: dict[str, str] = {}
    for name, content in parts:
        if name not in names:
            problems[name[:100] or "body"] = f"unknown field: send {_either(names)}"
        elif name in found:
            problems[name] = "sent more than once"
        elif len(content) > max_part_bytes:
            raise HTTPException(413, f"{name} must be at most {max_part_bytes} bytes")
        else:
            found[name] = content
    if not parts:
        problems["body"] = f"send at least one of {', '.join(names)}"
    if problems:
        raise ValidationFailed(problems)
    return found


def _either(names: Sequence[str]) -> str:
    """`a, b or c`."""
    return " or ".join(filter(None, (", ".join(names[:-1]), names[-1])))
