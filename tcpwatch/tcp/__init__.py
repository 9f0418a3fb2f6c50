"""TCP knowledge: plain data and pure functions (states, state machine, tags, explanations)."""
