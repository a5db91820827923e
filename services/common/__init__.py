"""Flask building blocks every sample service shares: identity, health, errors and fault knobs."""
