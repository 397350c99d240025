"""HTTP routes of the users service: /api/users/..."""

from __future__ import annotations

from quart import Blueprint
from quart_schema import (
    security_scheme,
    tag,
    validate_querystring,
    validate_request,
    validate_response,
)

from ...backends.storage import Follow, Page, User
from ..api import PageQuery, authenticate, client_ip, deps, errors, maybe_authenticate
from ..streaming import StreamService
from ._schemas import (
    AccountDeletedOut,
    DeleteAccountIn,
    FollowOut,
    FollowPageOut,
    FollowStateOut,
    LoginIn,
    ProfileUpdateIn,
    RefreshIn,
    RegisterIn,
    RegisterOut,
    SignedOut,
    TokensOut,
    UserOut,
)
from ._service import Tokens, UserService

bp = Blueprint("users", __name__, url_prefix="/api/users")
BEARER: list[dict[str, list[str]]] = [{"bearer": []}]


def _svc() -> UserService:
    svc: UserService = deps().services["users"]
    return svc


async def _out(user: User, *, private: bool = False) -> UserOut:
    followers, following = await _svc().counts(user.id)
    return UserOut(
        id=user.id, username=user.username, display_name=user.display_name, bio=user.bio,
        created_at=user.created_at, followers=followers, following=following,
        email=user.email if private else None,
    )


async def _tokens_out(tokens: Tokens) -> TokensOut:
    return TokensOut(
        access_token=tokens.access_token, expires_in=tokens.expires_in,
        refresh_token=tokens.refresh_token, refresh_expires_in=tokens.refresh_expires_in,
        user=await _out(tokens.user, private=True),
    )


@bp.post("/register")
@tag(["users"])
@validate_request(RegisterIn)
@validate_response(RegisterOut, 201)
@errors(400, 409)
async def register(data: RegisterIn) -> tuple[RegisterOut, int]:
    """Create an account. Usernames are unique ignoring case; emails are stored lower-cased."""
    deps().rate_limits.hit("register", client_ip())
    user = await _svc().register(
        username=data.username, email=data.email, password=data.password,
        display_name=data.display_name,
    )
    return RegisterOut(user=await _out(user, private=True)), 201


@bp.post("/login")
@tag(["users"])
@validate_request(LoginIn)
@validate_response(TokensOut)
@errors(400, 401)
async def login(data: LoginIn) -> TokensOut:
    """Sign in with username or email; returns a short access token and a refresh token."""
    deps().rate_limits.hit("login", client_ip())
    return await _tokens_out(await _svc().login(login=data.login, password=data.password))


@bp.post("/refresh")
@tag(["users"])
@validate_request(RefreshIn)
@validate_response(TokensOut)
@errors(400, 401)
async def refresh(data: RefreshIn) -> TokensOut:
    """Trade a refresh token for new tokens. Each refresh token works once."""
    deps().rate_limits.hit("login", client_ip())
    return await _tokens_out(await _svc().refresh(data.refresh_token))


@bp.post("/logout")
@tag(["users"])
@validate_request(RefreshIn)
@validate_response(SignedOut)
@errors(400)
async def logout(data: RefreshIn) -> SignedOut:
    """Revoke a refresh token and every token rotated from the same sign-in."""
    await _svc().logout(data.refresh_token)
    return SignedOut(signed_out=True)


@bp.get("/me")
@tag(["users"])
@security_scheme(BEARER)
@validate_response(UserOut)
@errors(400, 401)
async def me() -> UserOut:
    """Your own profile, with your email."""
    claims = await authenticate()
    return await _out(await _svc().get(claims.user_id), private=True)


@bp.patch("/me")
@tag(["users"])
@security_scheme(BEARER)
@validate_request(ProfileUpdateIn)
@validate_response(UserOut)
@errors(400, 401, 403, 409)
async def update_me(data: ProfileUpdateIn) -> UserOut:
    """Update your profile. Changing email or password needs current_password."""
    claims = await authenticate()
    user = await _svc().update_profile(
        claims.user_id, display_name=data.display_name, bio=data.bio, email=data.email,
        password=data.password, current_password=data.current_password,
    )
    return await _out(user, private=True)


@bp.delete("/me")
@tag(["users"])
@security_scheme(BEARER)
@validate_request(DeleteAccountIn)
@validate_response(AccountDeletedOut)
@errors(400, 401, 403)
async def delete_me(data: DeleteAccountIn) -> AccountDeletedOut:
    """Delete your account (password confirmed). Your tokens stop working at once, your
    open streams end (a live publisher is cut off), your profile, email, password, follows
    and stream keys are erased; your chat messages stay, shown as from a deleted user."""
    claims = await authenticate()
    deps().rate_limits.hit("login", client_ip())  # a password guess, like a sign-in
    streams: StreamService = deps().services["streams"]
    ended = await _svc().delete_account(claims.user_id, password=data.password,
                                        end_stream=streams.mark_ended)
    return AccountDeletedOut(deleted=True, streams_ended=ended)


@bp.get("/<id:user_id>")
@tag(["users"])
@validate_response(UserOut)
@errors(400, 401, 404)
async def get_user(user_id: str) -> UserOut:
    """A user's public profile (email only when it is your own)."""
    claims = await maybe_authenticate()
    user = await _svc().get(user_id)
    return await _out(user, private=claims is not None and claims.user_id == user.id)


async def _follow_state(user_id: str, following: bool) -> FollowStateOut:
    followers, _ = await _svc().counts(user_id)
    return FollowStateOut(user_id=user_id, following=following, followers=followers)


@bp.put("/<user_id>/follow")
@tag(["followers"])
@security_scheme(BEARER)
@validate_response(FollowStateOut)
@errors(400, 401, 404)
async def follow(user_id: str) -> FollowStateOut:
    """Follow a user (idempotent)."""
    claims = await authenticate()
    await _svc().follow(user_id=user_id, follower_id=claims.user_id)
    return await _follow_state(user_id, True)


@bp.delete("/<user_id>/follow")
@tag(["followers"])
@security_scheme(BEARER)
@validate_response(FollowStateOut)
@errors(400, 401, 404)
async def unfollow(user_id: str) -> FollowStateOut:
    """Stop following a user (idempotent)."""
    claims = await authenticate()
    await _svc().unfollow(user_id=user_id, follower_id=claims.user_id)
    return await _follow_state(user_id, False)


def _page_out(page: Page[Follow]) -> FollowPageOut:
    return FollowPageOut(
        items=[FollowOut(user_id=f.user_id, follower_id=f.follower_id,
                         created_at=f.created_at) for f in page.items],
        next_cursor=page.next_cursor,
    )


@bp.get("/<user_id>/followers")
@tag(["followers"])
@validate_querystring(PageQuery)
@validate_response(FollowPageOut)
@errors(400, 404)
async def followers(user_id: str, query_args: PageQuery) -> FollowPageOut:
    """Who follows this user, newest first, paginated by cursor."""
    return _page_out(await _svc().followers(user_id, cursor=query_args.cursor,
                                            limit=query_args.limit))


@bp.get("/<user_id>/following")
@tag(["followers"])
@validate_querystring(PageQuery)
@validate_response(FollowPageOut)
@errors(400, 404)
async def following(user_id: str, query_args: PageQuery) -> FollowPageOut:
    """Whom this user follows, newest first, paginated by cursor."""
    return _page_out(await _svc().following(user_id, cursor=query_args.cursor,
                                            limit=query_args.limit))
