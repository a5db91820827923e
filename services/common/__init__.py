"""Flask building blocks every sample service shares: settings, identity, health, JSON errors,
forwarded headers and fault knobs."""
