"""Ways to hand a queued job to the worker endpoint."""
