"""WSGI entry point: ``gunicorn wsgi:app``."""

from partnernet import create_app

app = create_app()
