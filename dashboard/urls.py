"""Dashboard URLs, mounted at the site root, with the login and logout pages."""

from django.contrib.auth import views as auth_views
from django.urls import path

from . import views

urlpatterns = [
    path(
        "accounts/login/",
        auth_views.LoginView.as_view(redirect_authenticated_user=True),
        name="login",
    ),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("", views.session_list, name="dashboard"),
    path("sessions/new", views.session_new, name="dashboard-session-new"),
    path("account", views.account_page, name="dashboard-account"),
    path("sessions/<session_id:session_id>", views.session_page, name="dashboard-session"),
    path(
        "sessions/<session_id:session_id>/synthesis",
        views.synthesis_fragment,
        name="dashboard-synthesis",
    ),
]
