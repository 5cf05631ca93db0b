"""What runs beside the channels: the staff desk, the outbox worker, the weekly digest, the settings."""
