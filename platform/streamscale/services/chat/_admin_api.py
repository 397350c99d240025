"""HTTP routes of platform admins: /api/admin/banned-words (the global list) and
/api/admin/audit (the platform-wide log). Platform admins only (403 for others); the role
is granted by the operator's CLI. Mounted under the moderation blueprint (/api)."""

from __future__ import annotations

from quart import Blueprint
from quart_schema import (
    security_scheme,
    tag,
    validate_querystring,
    validate_request,
    validate_response,
)

from ..api import authenticate, deps, errors
from ._moderation_schemas import (
    AuditOut,
    AuditPageOut,
    AuditQuery,
    WordIn,
    WordListOut,
    WordOut,
)
from .platform_admin import PlatformAdmin

bp = Blueprint("platform_admin", __name__, url_prefix="/admin")
BEARER: list[dict[str, list[str]]] = [{"bearer": []}]
TAG = ["admin"]


def _admin() -> PlatformAdmin:
    return PlatformAdmin(deps().store)


@bp.get("/banned-words")
@tag(TAG)
@security_scheme(BEARER)
@validate_response(WordListOut)
@errors(400, 401, 403)
async def list_words() -> WordListOut:
    """The global banned-word list, in force in every channel (platform admins only)."""
    claims = await authenticate()
    words = await _admin().words(claims.user_id)
    return WordListOut(items=[WordOut(word=w, scope="global") for w in words])


@bp.post("/banned-words")
@tag(TAG)
@security_scheme(BEARER)
@validate_request(WordIn)
@validate_response(WordOut)
@errors(400, 401, 403)
async def add_word(data: WordIn) -> WordOut:
    """Ban a word in every channel, stored normalised (idempotent). Chat refuses it
    within `chat.moderation_refresh_s`."""
    claims = await authenticate()
    stored, _ = await _admin().add_word(claims.user_id, data.word)
    return WordOut(word=stored, scope="global")


@bp.delete("/banned-words/<word>")
@tag(TAG)
@security_scheme(BEARER)
@validate_response(WordOut)
@errors(400, 401, 403, 404)
async def remove_word(word: str) -> WordOut:
    """Remove a word from the global list (matched in normalised form)."""
    claims = await authenticate()
    return WordOut(word=await _admin().remove_word(claims.user_id, word), scope="global")


@bp.get("/audit")
@tag(TAG)
@security_scheme(BEARER)
@validate_querystring(AuditQuery)
@validate_response(AuditPageOut)
@errors(400, 401, 403)
async def audit(query_args: AuditQuery) -> AuditPageOut:
    """Platform-wide actions (global word list, admin grants), newest first."""
    claims = await authenticate()
    await _admin().check(claims.user_id)
    page = await deps().store.list_audit_entries(
        None, target_user_id=query_args.target_user_id, cursor=query_args.cursor,
        limit=query_args.limit)
    return AuditPageOut(items=[AuditOut.of(e) for e in page.items],
                        next_cursor=page.next_cursor)
