"""Meeting intelligence: the live brief, catch-me-up, asking the meeting, action items."""
