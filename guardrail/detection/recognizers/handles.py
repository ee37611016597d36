"""Usernames, handles and logins (``USERNAME``).

A handle has no fixed shape, so the evidence is where it stands: an ``@`` mention or a ``u/`` name, a
label ("username", "login", "AD account", "LINE:", "portal user"), or the author slot of a post, a reply
or a chat line ("Posted by X", "X replied:", "X — Today at 21:14", "@x · 2h", a line "x_y:" before a
message). A bare word in an author slot counts only when it looks like a login (an underscore, a digit
or an inner capital), so "Comments:" or "Agent:" never do.
"""

from __future__ import annotations

from guardrail.detection.recognizers.base import Rule, RuleRecognizer

__all__ = ["username_recognizer"]

# a login: letters, digits, "_", "." and "-" inside, 3 to 32 characters
_LOGIN = r"[A-Za-z0-9][A-Za-z0-9_.-]{1,30}[A-Za-z0-9_]"
# a login-looking word: an underscore, a digit, or a capital after a lower-case letter
_LOGINISH = rf"(?=[A-Za-z0-9_.-]*(?:_|\d|[a-z][A-Z]))(?=[A-Za-z0-9_.-]*[A-Za-z]){_LOGIN}"
_LABELS = (
    r"user\s*name|username|user\s*id|login|log-in|handle|screen\s*name|gamertag|nick(?:name)?|"
    r"ad\s+account|account\s+name|portal\s+user|github|gitlab"
)
# labels that are also ordinary words ("User: thanks", "on the line"): only with a login-looking value
_WEAK_LABELS = (
    r"user|twitter|instagram|insta|ig|tiktok|snapchat|telegram|signal|skype|discord|line|wechat|kakao|reddit"
)
_END = r"(?![\w@-]|\.\w)"


def username_recognizer() -> RuleRecognizer:
    """Handles after ``@`` / ``u/``, labelled usernames, and login-looking authors of posts and lines."""
    return RuleRecognizer(
        entity="USERNAME",
        name="UsernameRecognizer",
        rules=[
            # @mention, not the domain of an e-mail address
            Rule(
                "at mention",
                r"(?<![\w.@/])@[A-Za-z0-9_](?:[A-Za-z0-9_.]{0,28}[A-Za-z0-9_])?(?![\w@]|\.\w)",
                0.7,
            ),
            Rule("reddit user", r"(?<![\w/])u/[A-Za-z0-9_-]{3,20}\b", 0.9),
            Rule(
                "labelled",
                rf"(?<![\w-])(?i:{_LABELS})(?![\w-])(?:\s*(?:is|:|=|-|was|will\s+be))+\s*[\"'“]?(?P<v>{_LOGIN}){_END}",
                0.8,
            ),
            Rule(
                "weak label",
                rf"(?<![\w-])(?i:{_WEAK_LABELS})(?![\w-])\s*(?:[:=]|\bis\b)\s*[\"'“]?(?P<v>{_LOGINISH}){_END}",
                0.75,
            ),
            Rule(
                "author",
                rf"(?i:\b(?:posted\s+by|reply\s+from|replied\s+by|comment\s+by|from\s+user|by\s+user|"
                rf"submitted\s+by|author|op)\b)\s*:?\s*(?P<v>(?-i:{_LOGINISH}))",
                0.75,
            ),
            Rule(
                "comment author",
                rf"(?i:\bcomment)\s*\((?P<v>{_LOGIN})\)",
                0.7,
            ),
            # a login-style owner of a record: "Owner: mbakke", "Assigned to: j.ortiz"
            Rule(
                "record owner",
                r"(?i:\b(?:owner|assignee|assigned\s+to|created\s+by|modified\s+by|updated\s+by|"
                r"closed\s+by|opened\s+by|requested\s+by|approver|reporter)\b)[ \t]*:[ \t]*"
                r"(?P<v>(?!(?:me|you|us|them|none|null|nan|tbd|tba|unassigned|system|admin|auto|n/a)\b)"
                r"[a-z][a-z0-9]*(?:[._-][a-z0-9]+)?)(?![\w@-]|\.\w|[ \t]+[a-z])",
                0.7,
            ),
            # a handle on a messaging or gaming platform: "use tomek.z on Signal", "add me, kari_b, on Discord"
            Rule(
                "handle on platform",
                r"(?i:\b(?:use|add|message|dm|ping|text|find|follow|contact|reach)\b)(?:[ \t]+(?i:me))?[ \t]*,?[ \t]*"
                rf"(?P<v>(?-i:{_LOGINISH}|[a-z][a-z0-9]{{2,}}\.[a-z0-9]+))[ \t]*,?[ \t]+(?i:on)[ \t]+"
                r"(?:Signal|Telegram|WhatsApp|Discord|Skype|Slack|Teams|Instagram|Insta|Snapchat|TikTok|Twitter|"
                r"Threads|Steam|Xbox|PSN|Reddit|LinkedIn|GitHub|WeChat|LINE|Kakao|Viber|Matrix|Mastodon)\b",
                0.75,
            ),
            # a line that names its author before the message: "bergen_kari replied:", "vex0r — Today at"
            Rule(
                "author line",
                rf"(?m)^[ \t]*@?(?P<v>{_LOGINISH})[ \t]*(?:(?:replied|wrote|said|commented|posted)\b[^\n]{{0,20}}:|"
                rf":[ \t]*$|[—–·|][ \t]*(?i:today|yesterday|\d))",
                0.7,
            ),
        ],
        context=["username", "user", "login", "handle", "account"],
    )
