"""Natural-language understanding: normalization, places, intents, matching."""
