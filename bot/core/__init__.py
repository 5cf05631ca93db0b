"""The core: one message in, replies out (assistant, flows, understanding, facts, answers); no channel SDK."""
