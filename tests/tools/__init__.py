"""Tests of the tools: simulators, demo, benchmark, chaos scenarios, scripts."""
