from django.urls import path

from sessions_app import actions_views, history_views, intelligence_views, views, webhooks

urlpatterns = [
    path("", history_views.session_list, name="dashboard"),
    path("search/", history_views.search_page, name="search"),
    path("search/facets/", history_views.search_facets, name="search_facets"),
    path("actions/", actions_views.action_list, name="actions"),
    path("actions/<int:item_id>/status/", actions_views.action_status, name="action-status"),
    path("sessions/<int:pk>/history/", history_views.session_history, name="session-history"),
    path("sessions/<int:pk>/ask/", intelligence_views.session_ask, name="session-ask"),
    path("sessions/<int:pk>/catch-up/", intelligence_views.catch_up, name="session-catch-up"),
    path(
        "sessions/<int:pk>/export/<str:fmt>/",
        history_views.session_export,
        name="session-export",
    ),
    path("sessions/new/", views.new_session, name="session-new"),
    path("sessions/<int:pk>/", views.session_detail, name="session-detail"),
    path("sessions/<int:pk>/status/", views.session_status, name="session-status"),
    path("sessions/<int:pk>/speakers/", views.session_speakers, name="session-speakers"),
    path("sessions/<int:pk>/token/", views.regenerate_token, name="session-token"),
    path("sessions/<int:pk>/simulate/", views.simulate, name="session-simulate"),
    path(
        "sessions/<int:pk>/streams/<int:stream_pk>/speaker/",
        views.rename_speaker,
        name="stream-speaker",
    ),
    path("sessions/<int:pk>/links/", views.share_link_create, name="share-link-create"),
    path(
        "sessions/<int:pk>/links/<int:link_pk>/revoke/",
        views.share_link_revoke,
        name="share-link-revoke",
    ),
    path("s/<str:token>/", views.share_page, name="share-page"),
    path("api/sessions/<int:pk>/client-token/", views.client_token_json, name="api-client-token"),
    path("rules/", views.rule_list, name="rule-list"),
    path("rules/new/", views.rule_edit, name="rule-new"),
    path("rules/<int:pk>/", views.rule_edit, name="rule-edit"),
    path("rules/<int:pk>/toggle/", views.rule_toggle, name="rule-toggle"),
    path("rules/<int:pk>/delete/", views.rule_delete, name="rule-delete"),
    path("webhooks/videodb/<str:secret>/", webhooks.lifecycle_webhook, name="videodb-webhook"),
    path(
        "webhooks/videodb/<str:secret>/alerts/<str:rtstream_id>/",
        webhooks.alert_callback,
        name="videodb-alert-callback",
    ),
]
