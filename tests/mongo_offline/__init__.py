"""An offline MongoDB for what can be proven without a server: django-mongodb-backend itself, with
only its client replaced by a stub that records every operation the backend sends and answers as an
empty database would (no documents, writes acknowledged).

It proves the backend accepts our settings, migrations and querysets: compilation to MQL and the
schema editor's index definitions run for real. It proves nothing about results; the suite against a
real server (DATABASE_URL=mongodb://…, README) does that. Used as ENGINE "tests.mongo_offline".
"""
