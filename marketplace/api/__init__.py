"""The REST API (``/api/v1/``): shared parts (errors, idempotency, pagination,
permissions) and the shop's resources. The money resources live in ``payments.api``."""
