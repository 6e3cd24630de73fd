"""Chaos scenarios: real peers on loopback, faults injected, a real Home Assistant measured."""
