"""gunicorn configuration of every sample service: ``gunicorn -c services/gunicorn.conf.py``.

``SERVICE_NAME`` picks the app: ``SERVICE_NAME=catalog`` serves
``services.catalog.app:create_app()``. ``SERVICE_APP`` serves one service's code under
another name (``SERVICE_NAME=flaky SERVICE_APP=echo``). A missing or unknown name stops
startup with a message naming the variable.
"""

from services.common.gunicorn_defaults import *  # noqa: F403  (bind, workers, hooks, ...)
from services.common.gunicorn_defaults import settings

wsgi_app = settings.wsgi_app
