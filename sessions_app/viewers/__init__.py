"""Who may view a session: its owner, share links and the people who opened them."""
