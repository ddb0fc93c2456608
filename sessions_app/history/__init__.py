"""A session afterwards: its record in time order, timeline, search (words, meaning), exports."""
