# CareForAll chat service: one Daphne worker per container (docker-compose.yml runs two behind nginx).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app

# The pinned runtime dependencies of pyproject.toml ([project].dependencies, no dev extras), in their
# own layer so a code change does not reinstall them. The code itself runs from /app (Daphne and
# manage.py import from the working directory), where templates/ and var/ sit beside it.
COPY pyproject.toml ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" \
        > requirements.txt \
    && pip install -r requirements.txt \
    && rm requirements.txt

COPY . .

# Admin and API-docs assets into STATIC_ROOT (var/static), served by WhiteNoise. Settings load with
# debug off, so placeholder values stand in for the secrets (a throwaway public key: no key pair is
# written into the image); the real ones arrive at run time.
RUN DJANGO_DEBUG=false DJANGO_SECRET_KEY=collectstatic-only ALLOWED_HOSTS=localhost \
    JWT_PUBLIC_KEY="$(python -c 'from chatservice.devkeys import generate_rsa_keypair; print(generate_rsa_keypair()[1].decode())')" \
    python manage.py collectstatic --noinput -v0

# The code and assets stay owned by root: the service user can read them, not change them.
RUN useradd --system --uid 10001 --user-group --no-create-home --shell /usr/sbin/nologin chat \
    && mkdir -p /var/lib/chat/attachments && chown -R chat:chat /var/lib/chat && chmod 700 /var/lib/chat/attachments
USER chat

EXPOSE 8000

# Daphne stops on SIGTERM: it closes the listening socket and its connections, and gives the
# application up to --application-close-timeout (10 s) to finish; compose allows 30 s (stop_grace_period).
STOPSIGNAL SIGTERM

# Heartbeat flags as in the Makefile (DAPHNE_FLAGS; tests/test_deploy.py compares them). --proxy-headers:
# the client address and scheme come from nginx's X-Forwarded-For / X-Forwarded-Proto.
CMD ["daphne", "-b", "0.0.0.0", "-p", "8000", "--proxy-headers", \
     "--ping-interval", "20", "--ping-timeout", "30", "--websocket_timeout", "-1", \
     "chatservice.asgi:application"]
