"""Users (email login), sellers, roles, API tokens and sign-up. Below the shop and
the money (docs/architecture.md): its services, models and roles import only the
shared kernel; its views and admin are entry points."""
