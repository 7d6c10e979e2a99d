from django.urls import path

from payments import views

app_name = "payments"

urlpatterns = [
    path("webhooks/<str:processor>/", views.webhook, name="webhook"),
    path(
        "webhooks/<str:processor>/connect/",
        views.webhook,
        {"endpoint": "connect"},
        name="webhook_connect",
    ),
    path("local/onboarding/<str:account_id>/", views.local_onboarding, name="local_onboarding"),
]
