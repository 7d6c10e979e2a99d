"""The kernel's two tables (of the ``marketplace`` app, so their migrations stay
``marketplace``'s): tasks the broker refused, kept to queue again, and the first answer
to each API ``Idempotency-Key``."""

from marketplace.kernel.models.deferred_tasks import DeferredTask
from marketplace.kernel.models.idempotency import IdempotencyRecord

__all__ = ["DeferredTask", "IdempotencyRecord"]
