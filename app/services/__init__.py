"""Domain operations: async functions with keyword-only arguments; no web or socket imports."""
