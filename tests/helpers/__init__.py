"""What the test modules share: helpers, peers and data access (never a test module)."""
