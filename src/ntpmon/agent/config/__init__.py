"""Local state, certificates, tokens and hot reload of the agent (agent.md §5–§8)."""
