"""Sample master data for the demo and the tests."""
