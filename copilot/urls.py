from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from copilot import health
from copilot.signin import AdminSignInForm, SignInForm

# Both sign-in pages count failures and refuse a guesser for a while (copilot/signin.py).
admin.site.login_form = AdminSignInForm

urlpatterns = [
    path("", include("sessions_app.urls")),
    path(
        "accounts/login/",
        auth_views.LoginView.as_view(
            redirect_authenticated_user=True, authentication_form=SignInForm
        ),
        name="login",
    ),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path(
        "accounts/password/",
        auth_views.PasswordChangeView.as_view(),
        name="password_change",
    ),
    path(
        "accounts/password/done/",
        auth_views.PasswordChangeDoneView.as_view(),
        name="password_change_done",
    ),
    path("healthz", health.healthz, name="healthz"),
    path("admin/", admin.site.urls),
]
