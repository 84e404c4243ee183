"""`makemessages` that also finds the scripts' own short names for the catalog's functions: `t()` for
gettext, `fmt()`/`format()` for gettext then interpolate, `plural()` for ngettext (chat.js, workspace.js)."""

from django.core.management.commands.makemessages import Command as MakeMessagesCommand


class Command(MakeMessagesCommand):
    xgettext_options = [
        *MakeMessagesCommand.xgettext_options,
        "--keyword=t",
        "--keyword=fmt",
        "--keyword=format",
        "--keyword=plural:1,2",
    ]
