"""Multi-turn flows below the assistant: the Lapor Rakit form, the handoff to staff."""
