"""What operators edit, as tooling: checking, evaluating, editing, reloading and reviewing it."""
