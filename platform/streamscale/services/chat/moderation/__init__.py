"""Chat moderation: pure decisions (no I/O) that the chat worker asks for every message.

Usage from the worker that owns a room::

    engine = ModerationEngine(clock=time.time, toxicity=model)   # model loaded in a thread
    engine.load_channel(state_from_storage)  # or engine.open_channel(channel_id, owner_id)
    decision = engine.check(MessageContext(channel_id, user_id, text, follows_since=...))
    entry = engine.room(channel_id).ban(moderator_id, user_id, "spam")  # persist entry
"""

from .engine import Action, Decision, MessageContext, ModerationEngine, Reason, ReasonKind
from .filters import InvalidRule, RegexFilter, WordList, compile_safe
from .links import LinkPolicy, LinkRules, find_domains
from .normalise import Normalised, fold, normalise
from .rules import (
    Appeal,
    AppealStatus,
    AuditAction,
    AuditEntry,
    Ban,
    ChannelState,
    InvalidTransition,
    NotPermitted,
    Role,
    Room,
    Timeout,
)
from .toxicity import LinearTfidfScorer, ToxicityModel, ToxicityThresholds

__all__ = [
    "Action",
    "Appeal",
    "AppealStatus",
    "AuditAction",
    "AuditEntry",
    "Ban",
    "ChannelState",
    "Decision",
    "InvalidRule",
    "InvalidTransition",
    "LinearTfidfScorer",
    "LinkPolicy",
    "LinkRules",
    "MessageContext",
    "ModerationEngine",
    "Normalised",
    "NotPermitted",
    "Reason",
    "ReasonKind",
    "RegexFilter",
    "Role",
    "Room",
    "Timeout",
    "ToxicityModel",
    "ToxicityThresholds",
    "WordList",
    "compile_safe",
    "find_domains",
    "fold",
    "normalise",
]
