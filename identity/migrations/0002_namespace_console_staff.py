"""Console staff used to act under their bare Django username, the same namespace as Auth Service
subjects. Everything done as ADMIN under a Django account's username moves to `staff:<username>`, the id
the console uses from now on (README, "Identity"). A person who also used an ADMIN token whose subject
equals their username had both moved: `manage.py link_staff_subject <username> <subject>` moves it back and
makes console and token one identity."""

from django.conf import settings
from django.db import migrations

from conversations.renaming import rename_person

STAFF_ID_PREFIX = "staff:"  # as chatservice.authentication, frozen here as this migration ran


def namespace_console_staff(apps, schema_editor):
    user_model = apps.get_model(settings.AUTH_USER_MODEL)
    models = {
        "conversation_model": apps.get_model("conversations", "Conversation"),
        "participant_model": apps.get_model("conversations", "Participant"),
        "message_model": apps.get_model("messaging", "Message"),
    }
    for username in user_model.objects.values_list("username", flat=True).order_by("username"):
        rename_person(old=username, new=f"{STAFF_ID_PREFIX}{username}", role="ADMIN", **models)


class Migration(migrations.Migration):
    dependencies = [
        ("identity", "0001_initial"),
        ("conversations", "0001_initial"),
        ("messaging", "0003_idempotency_key_per_person"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [migrations.RunPython(namespace_console_staff, migrations.RunPython.noop)]
