"""The users service: accounts, sign-in, profiles, follows."""

from ._api import bp
from ._service import Tokens, UserService

__all__ = ["Tokens", "UserService", "bp"]
