"""Multi-turn dialogue: forms and handoff."""
