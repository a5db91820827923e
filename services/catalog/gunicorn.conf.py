"""gunicorn configuration of the catalog service: ``gunicorn -c services/catalog/gunicorn.conf.py``."""

from services.common.gunicorn_defaults import *  # noqa: F403  (bind, workers, hooks, ...)

wsgi_app = "services.catalog.app:create_app()"
