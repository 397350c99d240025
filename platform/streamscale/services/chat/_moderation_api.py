"""HTTP routes of chat moderation: /api/channels/{channel_id}/... and message deletion.

A channel is the streamer's user id; its owner and moderators (stored roles) act, every
action is audited, and the logic lives in `moderation_actions` (these handlers stay thin).
`bp` (prefix /api) holds two blueprints: the channel routes and
DELETE /api/streams/{stream_id}/chat/{message_id}.
"""

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
from ..clock import utcnow
from ..errors import ValidationFailed
from . import _admin_api as admin_api
from ._moderation_schemas import (
    AppealIn,
    AppealOut,
    AppealPageOut,
    AppealQuery,
    AuditOut,
    AuditPageOut,
    AuditQuery,
    BanIn,
    BanOut,
    BanPageOut,
    BanQuery,
    DecisionIn,
    HeldMessageOut,
    HeldPageOut,
    MessageStatusOut,
    ReasonQuery,
    ReviewIn,
    ReviewQuery,
    RoleListOut,
    RoleOut,
    SettingsOut,
    SettingsPatch,
    TimeoutClearedOut,
    TimeoutIn,
    TimeoutListOut,
    TimeoutOut,
    WordIn,
    WordListOut,
    WordOut,
)
from .moderation_actions import Moderation
from .pipeline import message_bodies

bp = Blueprint("moderation", __name__, url_prefix="/api")
channels = Blueprint("channels", __name__, url_prefix="/channels")
messages = Blueprint("messages", __name__, url_prefix="/streams")
BEARER: list[dict[str, list[str]]] = [{"bearer": []}]
TAG = ["moderation"]


def _mod() -> Moderation:
    poster = deps().services.get("chat")
    return Moderation(deps().store, poster.publish if poster is not None else None)


# -- moderators ----------------------------------------------------------------------------

@channels.get("/<channel_id>/moderators")
@tag(TAG)
@validate_response(RoleListOut)
@errors(400, 404)
async def list_moderators(channel_id: str) -> RoleListOut:
    """The channel's moderators, oldest appointment first (public)."""
    await _mod().room(channel_id)
    roles = await deps().store.list_channel_roles(channel_id)
    return RoleListOut(items=[RoleOut(channel_id=r.channel_id, user_id=r.user_id,
                                      role="moderator", created_at=r.created_at)
                              for r in roles if r.role == "moderator"])


@channels.get("/<channel_id>/moderators/<user_id>")
@tag(TAG)
@validate_response(RoleOut)
@errors(400, 404)
async def get_moderator(channel_id: str, user_id: str) -> RoleOut:
    """Whether a user moderates the channel (404 if not)."""
    role = await _mod().moderator(channel_id, user_id)
    return RoleOut(channel_id=channel_id, user_id=user_id, role="moderator",
                   created_at=role.created_at)


@channels.put("/<channel_id>/moderators/<user_id>")
@tag(TAG)
@security_scheme(BEARER)
@validate_response(RoleOut)
@errors(400, 401, 403, 404, 409)
async def appoint(channel_id: str, user_id: str) -> RoleOut:
    """Appoint a moderator (owner only; idempotent)."""
    claims = await authenticate()
    role = await _mod().appoint(claims.user_id, channel_id, user_id)
    return RoleOut(channel_id=channel_id, user_id=user_id, role="moderator",
                   created_at=role.created_at)


@channels.delete("/<channel_id>/moderators/<user_id>")
@tag(TAG)
@security_scheme(BEARER)
@validate_response(RoleOut)
@errors(400, 401, 403, 404)
async def dismiss(channel_id: str, user_id: str) -> RoleOut:
    """Remove a moderator (the owner, or a moderator stepping down)."""
    claims = await authenticate()
    await _mod().dismiss(claims.user_id, channel_id, user_id)
    return RoleOut(channel_id=channel_id, user_id=user_id, role=None, created_at=None)


# -- bans ----------------------------------------------------------------------------------

@channels.post("/<channel_id>/bans")
@tag(TAG)
@security_scheme(BEARER)
@validate_request(BanIn)
@validate_response(BanOut, 201)
@errors(400, 401, 403, 404, 409)
async def ban(channel_id: str, data: BanIn) -> tuple[BanOut, int]:
    """Ban a user from the channel's chat; their connections to its rooms are closed."""
    claims = await authenticate()
    made = await _mod().ban(claims.user_id, channel_id, data.user_id, data.reason)
    return BanOut.of(made), 201


@channels.delete("/<channel_id>/bans/<user_id>")
@tag(TAG)
@security_scheme(BEARER)
@validate_querystring(ReasonQuery)
@validate_response(BanOut)
@errors(400, 401, 403, 404)
async def unban(channel_id: str, user_id: str, query_args: ReasonQuery) -> BanOut:
    """Lift a user's ban."""
    claims = await authenticate()
    return BanOut.of(await _mod().unban(claims.user_id, channel_id, user_id, query_args.reason))


@channels.get("/<channel_id>/bans")
@tag(TAG)
@security_scheme(BEARER)
@validate_querystring(BanQuery)
@validate_response(BanPageOut)
@errors(400, 401, 403, 404)
async def list_bans(channel_id: str, query_args: BanQuery) -> BanPageOut:
    """Bans, newest first (staff only)."""
    claims = await authenticate()
    await _mod().staff_room(channel_id, claims.user_id)
    page = await deps().store.list_bans(channel_id, active_only=query_args.active,
                                        cursor=query_args.cursor, limit=query_args.limit)
    return BanPageOut(items=[BanOut.of(b) for b in page.items], next_cursor=page.next_cursor)


# -- timeouts ------------------------------------------------------------------------------

@channels.post("/<channel_id>/timeouts")
@tag(TAG)
@security_scheme(BEARER)
@validate_request(TimeoutIn)
@validate_response(TimeoutOut, 201)
@errors(400, 401, 403, 404)
async def timeout(channel_id: str, data: TimeoutIn) -> tuple[TimeoutOut, int]:
    """Stop a user posting for duration_s (replaces any timeout they had)."""
    claims = await authenticate()
    made = await _mod().timeout(claims.user_id, channel_id, data.user_id, data.duration_s,
                                data.reason)
    return TimeoutOut.of(made), 201


@channels.delete("/<channel_id>/timeouts/<user_id>")
@tag(TAG)
@security_scheme(BEARER)
@validate_querystring(ReasonQuery)
@validate_response(TimeoutClearedOut)
@errors(400, 401, 403, 404)
async def untimeout(channel_id: str, user_id: str, query_args: ReasonQuery
                    ) -> TimeoutClearedOut:
    """End a timeout early."""
    claims = await authenticate()
    await _mod().untimeout(claims.user_id, channel_id, user_id, query_args.reason)
    return TimeoutClearedOut(channel_id=channel_id, user_id=user_id, timed_out=False)


@channels.get("/<channel_id>/timeouts")
@tag(TAG)
@security_scheme(BEARER)
@validate_response(TimeoutListOut)
@errors(400, 401, 403, 404)
async def list_timeouts(channel_id: str) -> TimeoutListOut:
    """Timeouts in force, soonest to end first (staff only)."""
    claims = await authenticate()
    await _mod().staff_room(channel_id, claims.user_id)
    items = await deps().store.list_timeouts(channel_id, now=utcnow())
    return TimeoutListOut(items=[TimeoutOut.of(t) for t in items])


# -- settings and banned words -------------------------------------------------------------

@channels.get("/<channel_id>/chat-settings")
@tag(TAG)
@validate_response(SettingsOut)
@errors(400, 404)
async def get_settings(channel_id: str) -> SettingsOut:
    """The channel's chat settings (public: clients show slow and followers-only mode)."""
    await _mod().room(channel_id)
    return SettingsOut.of(await deps().store.get_room_settings(channel_id))


@channels.patch("/<channel_id>/chat-settings")
@tag(TAG)
@security_scheme(BEARER)
@validate_request(SettingsPatch)
@validate_response(SettingsOut)
@errors(400, 401, 403, 404)
async def patch_settings(channel_id: str, data: SettingsPatch) -> SettingsOut:
    """Change slow mode, followers-only mode, link policy or regex filters (staff)."""
    claims = await authenticate()
    changes = {name: getattr(data, name) for name in data.model_fields_set}
    for name in ("slow_mode_s", "link_policy", "regex_filters"):
        if name in changes and changes[name] is None:
            raise ValidationFailed(f"{name} may not be null", code="validation_error")
    settings = await _mod().update_settings(claims.user_id, channel_id, changes)
    return SettingsOut.of(settings)


@channels.get("/<channel_id>/banned-words")
@tag(TAG)
@security_scheme(BEARER)
@validate_response(WordListOut)
@errors(400, 401, 403, 404)
async def list_words(channel_id: str) -> WordListOut:
    """Words banned in the channel: its own list and the global one (staff only)."""
    claims = await authenticate()
    await _mod().staff_room(channel_id, claims.user_id)
    words = await deps().store.list_banned_words(channel_id)
    return WordListOut(items=[WordOut(word=w.word, scope="global" if w.channel_id is None
                                      else "channel") for w in words])


@channels.post("/<channel_id>/banned-words")
@tag(TAG)
@security_scheme(BEARER)
@validate_request(WordIn)
@validate_response(WordOut)
@errors(400, 401, 403, 404)
async def add_word(channel_id: str, data: WordIn) -> WordOut:
    """Ban a word in the channel, stored normalised (idempotent)."""
    claims = await authenticate()
    stored, _ = await _mod().add_word(claims.user_id, channel_id, data.word)
    return WordOut(word=stored, scope="channel")


@channels.delete("/<channel_id>/banned-words/<word>")
@tag(TAG)
@security_scheme(BEARER)
@validate_response(WordOut)
@errors(400, 401, 403, 404)
async def remove_word(channel_id: str, word: str) -> WordOut:
    """Unban a word of the channel's list (matched in normalised form)."""
    claims = await authenticate()
    stored = await _mod().remove_word(claims.user_id, channel_id, word)
    return WordOut(word=stored, scope="channel")


# -- messages and the review queue ----------------------------------------------------------

@messages.delete("/<stream_id>/chat/<message_id>")
@tag(TAG)
@security_scheme(BEARER)
@validate_querystring(ReasonQuery)
@validate_response(MessageStatusOut)
@errors(400, 401, 403, 404)
async def delete_message(stream_id: str, message_id: str, query_args: ReasonQuery
                         ) -> MessageStatusOut:
    """Delete a message (staff, or its author); viewers in the room see it go."""
    claims = await authenticate()
    done = await _mod().delete_message(claims.user_id, stream_id, message_id,
                                       query_args.reason)
    return MessageStatusOut(id=done.id, status="deleted")


@channels.get("/<channel_id>/review")
@tag(TAG)
@security_scheme(BEARER)
@validate_querystring(ReviewQuery)
@validate_response(HeldPageOut)
@errors(400, 401, 403, 404)
async def review_queue(channel_id: str, query_args: ReviewQuery) -> HeldPageOut:
    """Messages held for review in the channel's streams, newest first (staff only).

    A page may hold fewer than `limit` items (even none) while next_cursor is set."""
    claims = await authenticate()
    page = await _mod().review_queue(claims.user_id, channel_id,
                                     stream_id=query_args.stream_id,
                                     cursor=query_args.cursor, limit=query_args.limit)
    store = deps().store
    bodies = await message_bodies(store, page.items)
    items = [HeldMessageOut(**body, moderation=dict(m.moderation or {}) or None)
             for m, body in zip(page.items, bodies, strict=True)]
    return HeldPageOut(items=items, next_cursor=page.next_cursor)


@channels.post("/<channel_id>/review/<message_id>")
@tag(TAG)
@security_scheme(BEARER)
@validate_request(ReviewIn)
@validate_response(MessageStatusOut)
@errors(400, 401, 403, 404, 409)
async def review(channel_id: str, message_id: str, data: ReviewIn) -> MessageStatusOut:
    """Approve (shown to the room) or reject (deleted) a held message."""
    claims = await authenticate()
    done = await _mod().review(claims.user_id, channel_id, message_id, approve=data.approve,
                               reason=data.reason)
    return MessageStatusOut(id=done.id, status="visible" if data.approve else "deleted")


# -- audit log and appeals -------------------------------------------------------------------

@channels.get("/<channel_id>/audit")
@tag(TAG)
@security_scheme(BEARER)
@validate_querystring(AuditQuery)
@validate_response(AuditPageOut)
@errors(400, 401, 403, 404)
async def audit(channel_id: str, query_args: AuditQuery) -> AuditPageOut:
    """Every moderator action in the channel, newest first (staff only)."""
    claims = await authenticate()
    await _mod().staff_room(channel_id, claims.user_id)
    page = await deps().store.list_audit_entries(
        channel_id, target_user_id=query_args.target_user_id, cursor=query_args.cursor,
        limit=query_args.limit)
    return AuditPageOut(items=[AuditOut.of(e) for e in page.items],
                        next_cursor=page.next_cursor)


@channels.post("/<channel_id>/appeals")
@tag(TAG)
@security_scheme(BEARER)
@validate_request(AppealIn)
@validate_response(AppealOut, 201)
@errors(400, 401, 404, 409)
async def file_appeal(channel_id: str, data: AppealIn) -> tuple[AppealOut, int]:
    """Appeal your ban in this channel (once per ban: 409 on a second)."""
    claims = await authenticate()
    return AppealOut.of(await _mod().appeal(claims.user_id, channel_id, data.text)), 201


@channels.get("/<channel_id>/appeals")
@tag(TAG)
@security_scheme(BEARER)
@validate_querystring(AppealQuery)
@validate_response(AppealPageOut)
@errors(400, 401, 404)
async def list_appeals(channel_id: str, query_args: AppealQuery) -> AppealPageOut:
    """Staff: the channel's appeals (pending by default). Anyone else: their own."""
    claims = await authenticate()
    status = None if query_args.status == "any" else query_args.status
    page = await _mod().appeals(claims.user_id, channel_id, status=status,
                                cursor=query_args.cursor, limit=query_args.limit)
    return AppealPageOut(items=[AppealOut.of(a) for a in page.items],
                         next_cursor=page.next_cursor)


@channels.post("/<channel_id>/appeals/<appeal_id>/decision")
@tag(TAG)
@security_scheme(BEARER)
@validate_request(DecisionIn)
@validate_response(AppealOut)
@errors(400, 401, 403, 404, 409)
async def decide_appeal(channel_id: str, appeal_id: str, data: DecisionIn) -> AppealOut:
    """Uphold or lift (lifting ends the ban). Not by the moderator who made the ban."""
    claims = await authenticate()
    return AppealOut.of(await _mod().decide(claims.user_id, channel_id, appeal_id,
                                            lift=data.decision == "lift", reason=data.reason))


bp.register_blueprint(channels)
bp.register_blueprint(admin_api.bp)
bp.register_blueprint(messages)
