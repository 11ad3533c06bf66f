"""AI agents: providers, tools, pricing, runs."""
