"""gunicorn configuration of the echo service: ``gunicorn -c services/echo/gunicorn.conf.py``."""

from services.common.gunicorn_defaults import *  # noqa: F403  (bind, workers, hooks, ...)

wsgi_app = "services.echo.app:create_app()"
