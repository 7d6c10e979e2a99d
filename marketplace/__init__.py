"""The project package (settings, URLs, the Celery app) and the shop: the catalog,
carts, orders and their pages. Its layers (docs/architecture.md): entry points
(``views/``, ``api/``, ``admin``) over ``services/`` (orders and money together), over
``payments``, over ``orders`` and ``selectors/``, over ``models/``, over
``accounts``, over ``kernel/`` (the shared kernel)."""

# Load the Celery app whenever Django starts so that @shared_task binds to it.
from .celery import app as celery_app

__all__ = ("celery_app",)
