"""`makemessages` that also finds the scripts' own short names for the catalog's functions: `t()` for
gettext, `fmt()`/`format()` for gettext then interpolate, `plural()` for ngettext (chat.js, workspace.js);
and never fuzzy-matches."""

from django.core.management.commands.makemessages import Command as MakeMessagesCommand


class Command(MakeMessagesCommand):
    # A new string stays empty for a translator rather than borrowing a similar one's translation.
    msgmerge_options = [*MakeMessagesCommand.msgmerge_options, "--no-fuzzy-matching"]
    xgettext_options = [
        *MakeMessagesCommand.xgettext_options,
        "--keyword=t",
        "--keyword=fmt",
        "--keyword=format",
        "--keyword=plural:1,2",
    ]
