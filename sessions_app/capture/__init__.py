"""Starting and following a capture: sessions, client tokens, webhooks, lifecycle, alert rules."""
