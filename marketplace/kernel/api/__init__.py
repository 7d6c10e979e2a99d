"""The REST API's plumbing, shared by ``marketplace.api`` and ``payments.api``: errors
as problem details, idempotency keys, cursor pagination, strict parsers and fields,
throttling, ``?expand=``, metadata PATCHes and the schema's error codes. Nothing here
knows an order, a seller or a payout."""
