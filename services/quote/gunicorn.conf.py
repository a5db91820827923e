"""gunicorn configuration of the quote service: ``gunicorn -c services/quote/gunicorn.conf.py``."""

from services.common.gunicorn_defaults import *  # noqa: F403  (bind, workers, hooks, ...)

wsgi_app = "services.quote.app:create_app()"
