"""Storage of conversations, requests and logs."""
